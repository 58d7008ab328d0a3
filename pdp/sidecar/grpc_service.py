"""``policyengine.v1.PolicyEngineService`` on the sidecar: the origin's nine methods.

Decisions go to the sidecar engine (``pdp.runtime.Engine``); the policy methods read the active
bundle, one snapshot per call, so a page of ``ListPolicies`` never mixes two revisions. Policies
change only through the control plane, so the three writes answer FAILED_PRECONDITION.

``ListPolicies`` speaks the origin's query language:

- ``filter``: ``key=value`` terms joined by ``AND`` (case-insensitive), keys ``type``
  (``SECURITY`` or ``security``), ``enabled``, ``severity``, ``enforcement``;
- ``order_by``: comma-separated keys ``id``, ``name``, ``type``, ``severity`` (critical first),
  ``enforcement``, ``created_at``, ``updated_at``, each optionally ``asc`` / ``desc``; ties are
  broken by ``id``. Bundled policies carry no timestamps, so on a sidecar the two time keys order
  by ``id``;
- ``page_size``: default 50, at most 1000 (larger values are lowered, as AIP-158 advises);
- ``page_token``: opaque; it encodes the offset and a digest of filter and order, so a token used
  with a different query is refused rather than silently paging something else.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from grpc import aio

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp.runtime.errors import NotReadyError
from pdp.sidecar import grpc_convert as convert
from pdp.sidecar import grpc_inputs as inputs
from pdp.sidecar.errors import RequestError
from pdp.sidecar.grpc_errors import PolicyNotFoundError, PolicyWriteRefusedError, grpc_errors

SERVICE_NAME = "policyengine.v1.PolicyEngineService"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
WRITE_REFUSAL = (
    "policies are managed by the control plane (pdp control): change them there "
    "(`pdp admin policy apply` or the control plane's PolicyEngineService) and publish; "
    "this sidecar serves the published bundle read-only"
)

_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
# The values each filter key accepts (lower case); a value outside them is a client mistake worth
# naming, not a query that silently matches nothing.
_FILTER_VALUES: dict[str, frozenset[str]] = {
    "type": frozenset(v.name.lower() for v in pb.PolicyType.DESCRIPTOR.values if v.number),
    "enabled": frozenset({"true", "false"}),
    "severity": frozenset(_SEVERITY_RANK),
    "enforcement": frozenset({"deny", "warn", "dryrun"}),
}
_ORDER_KEYS = frozenset({"id", "name", "type", "severity", "enforcement", "created_at",
                         "updated_at"})


class DecisionEngine(Protocol):
    """What the servicer needs of ``pdp.runtime.Engine`` (the control plane can supply its own)."""

    @property
    def active(self) -> Any:
        """The active snapshot (``.policy_set``, ``.revision``), or None before the first bundle."""

    def decide(
        self, query: str, raw_input: object, *, explain: bool = False,
        caller: str | Callable[[], str] = "", trusted_input: bool = False,
    ) -> dict[str, Any]:
        """Answer ``query`` for ``raw_input``; raises NotReadyError / InputValidationError.

        ``trusted_input``: the caller has checked ``raw_input``, the schema check may be skipped.
        """

    def ready(self) -> bool:
        """True when decisions are being answered."""

    def status(self) -> dict[str, Any]:
        """The engine's status object (state, revision, sequence, errors...)."""


# --------------------------------------------------------------------------------------------
# ListPolicies: filter, order, page


@dataclass(frozen=True)
class PolicyListing:
    """A validated ``ListPoliciesRequest``."""

    terms: tuple[tuple[str, str], ...]
    order: tuple[tuple[str, bool], ...]  # (key, descending)
    page_size: int
    offset: int
    digest: str

    def select(self, documents: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The documents matching the filter, in the requested order (the whole result)."""
        matching = [doc for doc in documents if all(_matches(doc, k, v) for k, v in self.terms)]
        matching.sort(key=lambda doc: str(doc.get("id", "")))
        # Stable sorts applied from the last key to the first give the combined order.
        for key, descending in reversed(self.order):
            matching.sort(key=functools.partial(_sort_key, key=key), reverse=descending)
        return matching

    def next_page_token(self, total: int) -> str:
        """The token of the following page, or "" when this page is the last."""
        following = self.offset + self.page_size
        if following >= total:
            return ""
        raw = json.dumps({"o": following, "q": self.digest}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_listing(request: pb.ListPoliciesRequest) -> PolicyListing:
    """Validate filter, order_by, page_size and page_token; raises RequestError naming the field."""
    if request.page_size < 0:
        raise _bad("page_size", f"must not be negative, got {request.page_size}")
    page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    terms = _parse_filter(request.filter)
    order = _parse_order(request.order_by)
    digest = hashlib.sha256(json.dumps([terms, order]).encode()).hexdigest()[:16]
    offset = _decode_page_token(request.page_token, digest) if request.page_token else 0
    return PolicyListing(terms, order, page_size, offset, digest)


def _parse_filter(text: str) -> tuple[tuple[str, str], ...]:
    terms = []
    for raw in _split_and(text):
        key, sep, value = raw.partition("=")
        key, value = key.strip().lower(), value.strip().strip("\"'").lower()
        if not sep or not key or not value:
            raise _bad("filter", f"expected key=value, got {raw.strip()!r}")
        allowed = _FILTER_VALUES.get(key)
        if allowed is None:
            raise _bad("filter", f"unknown key {key!r}; use {', '.join(sorted(_FILTER_VALUES))}")
        if value not in allowed:
            raise _bad("filter", f"{key} must be one of {', '.join(sorted(allowed))}, "
                                 f"got {value!r}")
        terms.append((key, value))
    return tuple(terms)


def _split_and(text: str) -> list[str]:
    if not text.strip():
        return []
    words = text.replace("\t", " ").split(" ")
    parts: list[str] = []
    current: list[str] = []
    for word in words:
        if word.upper() == "AND":
            parts.append(" ".join(current))
            current = []
        else:
            current.append(word)
    parts.append(" ".join(current))
    return parts


def _parse_order(text: str) -> tuple[tuple[str, bool], ...]:
    order = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        words = raw.split()
        key = words[0].lower()
        direction = words[1].lower() if len(words) > 1 else "asc"
        if key not in _ORDER_KEYS:
            raise _bad("order_by", f"unknown key {key!r}; use {', '.join(sorted(_ORDER_KEYS))}")
        if len(words) > 2 or direction not in ("asc", "desc"):
            raise _bad("order_by", f"expected '{key} [asc|desc]', got {raw!r}")
        order.append((key, direction == "desc"))
    return tuple(order)


def _decode_page_token(token: str, digest: str) -> int:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset, token_digest = raw["o"], raw["q"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise _bad("page_token", "not a token returned by a previous ListPolicies") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _bad("page_token", "not a token returned by a previous ListPolicies")
    if token_digest != digest:
        raise _bad("page_token", "the token belongs to a listing with another filter or order_by")
    return offset


def _matches(document: Mapping[str, Any], key: str, value: str) -> bool:
    if key == "enabled":
        return bool(document.get("enabled", True)) == (value == "true")
    return str(document.get(key, "")).lower() == value


def _sort_key(document: Mapping[str, Any], key: str) -> Any:
    if key == "severity":
        return _SEVERITY_RANK.get(str(document.get("severity")), len(_SEVERITY_RANK))
    if key in ("created_at", "updated_at"):
        return str(document.get(key) or "")
    return str(document.get(key, "")).lower()


def _bad(field: str, message: str) -> RequestError:
    return RequestError(f"invalid {field}: {message}")


# --------------------------------------------------------------------------------------------
# The servicer


class PolicyEngineServicer:
    """The nine methods of ``PolicyEngineService`` over one sidecar engine."""

    def __init__(self, engine: DecisionEngine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        # Policy documents of the last policy set listed, dumped once per activation.
        self._dumped: tuple[object, list[dict[str, Any]]] = (None, [])

    def _decide(
        self, query: str, typed: tuple[dict[str, Any], bool], explain: bool,
        context: aio.ServicerContext,
    ) -> dict[str, Any]:
        # A plainly valid typed request skips the core's schema check; any other goes through
        # it, so a refusal names the field exactly as over HTTP (see pdp.sidecar.grpc_inputs).
        raw_input, plainly_valid = typed
        return self._engine.decide(
            query, raw_input, explain=explain, caller=context.peer, trusted_input=plainly_valid
        )

    @grpc_errors
    async def ValidateService(
        self, request: pb.ValidateServiceRequest, context: aio.ServicerContext
    ) -> pb.ValidateServiceResponse:
        """Validate a service listing against the active policies."""
        decision = self._decide(
            "validate_service", inputs.listing_input(request), request.explain, context)
        return convert.validate_service_response(decision)

    @grpc_errors
    async def CheckAccess(
        self, request: pb.CheckAccessRequest, context: aio.ServicerContext
    ) -> pb.CheckAccessResponse:
        """Decide whether a user may perform an action on a service."""
        decision = self._decide(
            "check_access", inputs.access_input(request), request.explain, context)
        return convert.check_access_response(decision)

    @grpc_errors
    async def ValidateConsumption(
        self, request: pb.ValidateConsumptionRequest, context: aio.ServicerContext
    ) -> pb.ValidateConsumptionResponse:
        """Decide whether a consumer's call may go through (access, limits, content)."""
        decision = self._decide(
            "validate_consumption", inputs.consumption_input(request), request.explain, context)
        return convert.validate_consumption_response(decision)

    def _policy_set(self) -> Any:
        # Read the reference once: the whole answer comes from one snapshot.
        active = self._engine.active
        if active is None:
            raise NotReadyError("no bundle is active yet", state="starting")
        return active.policy_set

    def _documents(self) -> list[dict[str, Any]]:
        policy_set = self._policy_set()
        cached_for, documents = self._dumped
        if cached_for is not policy_set:
            documents = [p.model_dump(mode="json", exclude_none=True) for p in policy_set.policies]
            self._dumped = (policy_set, documents)
        return documents

    @grpc_errors
    async def GetPolicy(
        self, request: pb.GetPolicyRequest, context: aio.ServicerContext
    ) -> pb.GetPolicyResponse:
        """One policy of the active bundle, or NOT_FOUND."""
        if not request.policy_id:
            raise _bad("policy_id", "required")
        policy = self._policy_set().get(request.policy_id)
        if policy is None:
            raise PolicyNotFoundError(request.policy_id)
        document = policy.model_dump(mode="json", exclude_none=True)
        return pb.GetPolicyResponse(policy=convert.policy_to_proto(document))

    @grpc_errors
    async def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: aio.ServicerContext
    ) -> pb.ListPoliciesResponse:
        """A page of the active bundle's policies, filtered and ordered as asked."""
        listing = parse_listing(request)
        selected = listing.select(self._documents())
        page = selected[listing.offset : listing.offset + listing.page_size]
        return pb.ListPoliciesResponse(
            policies=[convert.policy_to_proto(document) for document in page],
            next_page_token=listing.next_page_token(len(selected)),
            total_count=len(selected),
        )

    @grpc_errors
    async def CreatePolicy(
        self, request: pb.CreatePolicyRequest, context: aio.ServicerContext
    ) -> pb.CreatePolicyResponse:
        """Refused: a sidecar's policies come from signed bundles only."""
        raise PolicyWriteRefusedError(WRITE_REFUSAL)

    @grpc_errors
    async def UpdatePolicy(
        self, request: pb.UpdatePolicyRequest, context: aio.ServicerContext
    ) -> pb.UpdatePolicyResponse:
        """Refused: a sidecar's policies come from signed bundles only."""
        raise PolicyWriteRefusedError(WRITE_REFUSAL)

    @grpc_errors
    async def DeletePolicy(
        self, request: pb.DeletePolicyRequest, context: aio.ServicerContext
    ) -> pb.DeletePolicyResponse:
        """Refused: a sidecar's policies come from signed bundles only."""
        raise PolicyWriteRefusedError(WRITE_REFUSAL)

    @grpc_errors
    async def HealthCheck(
        self, request: pb.HealthCheckRequest, context: aio.ServicerContext
    ) -> pb.HealthCheckResponse:
        """SERVING iff the engine answers decisions; details carry the status summary."""
        serving = self._engine.ready()
        status = self._engine.status()
        details = {
            key: value if isinstance(value, str) else json.dumps(value, default=str)
            for key, value in status.items()
            if value is not None
        }
        answer = pb.HealthCheckResponse
        response = answer(status=answer.SERVING if serving else answer.NOT_SERVING, details=details)
        response.timestamp.FromNanoseconds(int(self._clock() * 1_000_000_000))
        return response
