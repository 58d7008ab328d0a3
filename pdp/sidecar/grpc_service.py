"""``policyengine.v1.PolicyEngineService`` on the sidecar: the origin's nine methods.

Decisions go to the sidecar engine (``pdp.runtime.Engine``); the policy methods read the active
bundle, one snapshot per call, so a page of ``ListPolicies`` never mixes two revisions. Policies
change only through the control plane, so the three writes answer FAILED_PRECONDITION.

``ListPolicies`` speaks the origin's query language (filter, order_by, page_size, page_token),
parsed by :func:`pdp.core.parse_list_request` exactly as on the control plane; this module only
executes the query over the policy documents in memory (:func:`select_policies`), in the order the
control plane's SQL gives. Bundled policies carry no timestamps, so on a sidecar ``created_at``
and ``updated_at`` leave the order to the ``id`` tie-break.
"""

from __future__ import annotations

import functools
import json
import string
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from grpc import aio

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp.core import SEVERITIES, PolicyQuery, parse_list_request
from pdp.runtime.errors import NotReadyError
from pdp.sidecar import grpc_convert as convert
from pdp.sidecar import grpc_inputs as inputs
from pdp.sidecar.errors import RequestError
from pdp.sidecar.grpc_errors import PolicyNotFoundError, PolicyWriteRefusedError, grpc_errors

SERVICE_NAME = "policyengine.v1.PolicyEngineService"
WRITE_REFUSAL = (
    "policies are managed by the control plane (pdp control): change them there "
    "(`pdp admin policy apply` or the control plane's PolicyEngineService) and publish; "
    "this sidecar serves the published bundle read-only"
)

_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}
# What PostgreSQL's lower() does under the C collation, which the control plane orders names by:
# only ASCII letters are folded, so both servers put names in the same order.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


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
# ListPolicies: the core parses the request, this executes it over documents


def select_policies(
    query: PolicyQuery, documents: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The documents matching `query`'s filter, in its order (the whole result, not one page)."""
    filters = query.filters
    matching = [doc for doc in documents if all(_field(doc, key) == value
                                                  for key, value in filters.items())]
    # Stable sorts applied from the least significant key (the id tie-break) to the most give
    # the combined order; reverse=True keeps equal keys in their order, so ties stay by id.
    for key, descending in reversed(query.full_order):
        matching.sort(key=functools.partial(_sort_key, key=key), reverse=descending)
    return matching


def _field(document: Mapping[str, Any], key: str) -> object:
    if key == "enabled":
        return bool(document.get("enabled", True))
    return document.get(key)


def _sort_key(document: Mapping[str, Any], key: str) -> Any:
    # Each key orders as pdp.core.policy_query documents it, as the control plane's SQL does.
    if key == "severity":
        return _SEVERITY_RANK.get(str(document.get("severity")), len(_SEVERITY_RANK))
    if key == "version":
        return int(document.get("version", 1))
    if key == "name":
        return str(document.get("name", "")).translate(_ASCII_LOWER)
    return str(document.get(key) or "")


# --------------------------------------------------------------------------------------------
# The servicer


def _bad(field: str, message: str) -> RequestError:
    return RequestError(f"invalid {field}: {message}")


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
        query = parse_list_request(request)
        selected = select_policies(query, self._documents())
        page = selected[query.offset : query.offset + query.page_size]
        return pb.ListPoliciesResponse(
            policies=[convert.policy_to_proto(document) for document in page],
            next_page_token=query.next_page_token(len(selected)),
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
