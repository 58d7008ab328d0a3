"""``compile_policy_set`` and ``PolicySet``: policies and data compiled once, then queried.

Compilation validates bundle data, rejects duplicate ids, and turns every enabled policy into a
``CompiledPolicy`` filed under the query it belongs to. A ``PolicySet`` is immutable after
construction (its one cache, the formatted time of the current second, is replaced atomically), so
one instance is safely shared by every request of every thread.

Evaluation never raises on input data: a non-object input reads as ``{}``, absent fields are
absent, and an exception inside a policy becomes a violation of that policy (fail closed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pdp.core.access import AccessIndex, decide_access, denial_by_policy, match_route
from pdp.core.compile import CompiledSet, compile_policies
from pdp.core.consumption import RateCounter, decide_consumption
from pdp.core.document import PolicyDocument
from pdp.core.errors import FieldError, PolicyValidationError, UnknownQueryError
from pdp.core.findings import CompiledPolicy, Tally, apply_policies, collect

QUERIES: tuple[str, ...] = ("validate_service", "check_access", "validate_consumption",
                            "authorize_http")


def compile_policy_set(policies: Iterable[PolicyDocument], data: Mapping[str, Any], *,
                       revision: str = "draft") -> PolicySet:
    """Compile policies and bundle data; raises ``PolicyValidationError`` naming the problem."""
    documents = tuple(policies)
    # The set owns a private copy, so later edits of the caller's dicts cannot leak into it.
    try:
        owned = copy.deepcopy(dict(data)) if isinstance(data, Mapping) else data
    except RecursionError:
        raise PolicyValidationError("data", [FieldError("data", "bundle data nests too deeply")]
                                    ) from None
    return PolicySet(documents, owned, compile_policies(documents, owned), revision)


def _as_object(value: object) -> dict[str, Any]:
    if type(value) is dict:
        return value
    return dict(value) if isinstance(value, Mapping) else {}


class PolicySet:
    """Compiled policies and data of one revision; answers the four queries."""

    def __init__(self, documents: tuple[PolicyDocument, ...], data: Mapping[str, Any],
                 compiled: CompiledSet, revision: str) -> None:
        self.revision = revision
        self.policies = documents
        self.data: Mapping[str, Any] = MappingProxyType(data)
        self._by_id = {policy.id: policy for policy in documents}
        self._compiled = compiled
        self._access: AccessIndex = compiled.access
        # (second, its RFC 3339 text): validate_service formats a time once per second. One
        # tuple, replaced whole, so threads never see a second paired with another's text.
        self._second: tuple[float, str] = (-1.0, "")
        self._queries: dict[str, Callable[..., dict[str, Any]]] = {
            "validate_service": self.validate_service,
            "check_access": self.check_access,
            "validate_consumption": self.validate_consumption,
            "authorize_http": self.authorize_http,
        }

    def get(self, policy_id: str) -> PolicyDocument | None:
        """The policy with this id, enabled or not, or None."""
        return self._by_id.get(policy_id)

    def evaluate(self, query: str, input: Mapping[str, Any], *, now: float, decision_id: str,
                 counters: RateCounter | None = None, explain: bool = False) -> dict[str, Any]:
        """Answer ``query`` (one of ``QUERIES``); raises only ``UnknownQueryError``."""
        answer = self._queries.get(query)
        if answer is None:
            raise UnknownQueryError(query, QUERIES)
        return answer(input, now=now, decision_id=decision_id, counters=counters,
                      explain=explain)

    def _timestamp(self, now: float) -> str:
        """RFC 3339 UTC time of ``now`` to the second, formatted once per second."""
        try:
            second = float(now // 1)
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, ValueError, OSError, TypeError):
            return "1970-01-01T00:00:00Z"  # a clock this broken is not worth caching
        self._second = (second, text)
        return text

    def validate_service(self, input: Mapping[str, Any], *, now: float, decision_id: str,
                         counters: RateCounter | None = None,
                         explain: bool = False) -> dict[str, Any]:
        """Check a service listing against the listing policies (§5 ValidateServiceResponse)."""
        doc = input if type(input) is dict else _as_object(input)
        tally: Tally | None
        if explain:
            tally = Tally(explain=True)
            apply_policies(self._compiled.service, doc, doc, tally)
            violations, failed = tally.violations, tally.failed
        else:
            violations, failed, tally = collect(self._compiled.service, doc)
        cached = self._second
        evaluated = self._compiled.service_counted
        revision = self.revision
        answer = {
            "compliant": not violations,
            "violations": violations,
            "warnings": tally.warnings if tally else [],
            "policy_version": revision,
            "validated_at": cached[1] if cached[0] == now // 1 else self._timestamp(now),
            "metadata": {
                "policies_evaluated": evaluated,
                "policies_passed": evaluated - failed,
                "policies_failed": failed,
                "validation_duration_ms": 0,
            },
            "decision_id": decision_id,
            "bundle_revision": revision,
        }
        return tally.finish(answer) if tally else answer

    def check_access(self, input: Mapping[str, Any], *, now: float, decision_id: str,
                     counters: RateCounter | None = None,
                     explain: bool = False) -> dict[str, Any]:
        """May ``user_id`` do ``action`` on ``service_id``? (§5 CheckAccessResponse)."""
        request = input if type(input) is dict else _as_object(input)
        compiled = self._compiled
        context = request.get("context")
        answer, tally = decide_access(
            self._access, compiled.access_policies, compiled.access_scoped, request,
            (request.get("user_id"), request.get("service_id"), request.get("action")),
            context.get("ip_address") if type(context) is dict else None,
            Tally(explain=True) if explain else None, (decision_id, self.revision))
        if compiled.access_custom:
            if tally is None:
                tally = Tally(explain=False)
                answer["violations"], answer["warnings"] = tally.violations, tally.warnings
            self._apply_custom(compiled.access_custom, request, answer, tally)
        return tally.finish(answer) if tally is not None else answer

    def _apply_custom(self, policies: tuple[CompiledPolicy, ...], request: dict[str, Any],
                      answer: dict[str, Any], tally: Tally) -> None:
        """Run ``custom`` policies of an access query on the enriched input."""
        scope = self._access.enrich(request, request.get("user_id"), request.get("service_id"))
        apply_policies(policies, scope, scope, tally)
        if answer["allowed"] and tally.violations:
            answer["allowed"] = False
            answer["reason"] = denial_by_policy(tally.violations)

    def validate_consumption(self, input: Mapping[str, Any], *, now: float, decision_id: str,
                             counters: RateCounter | None = None,
                             explain: bool = False) -> dict[str, Any]:
        """Access, rate limits, content and classification of one consumer call (§4.3)."""
        request = _as_object(input)
        tally = Tally(explain)
        answer = decide_consumption(self._compiled, request, now, counters, tally,
                                    (decision_id, self.revision))
        if self._compiled.consumption_custom:
            self._apply_custom(self._compiled.consumption_custom,
                               {**request, "user_id": request.get("consumer_id")}, answer, tally)
        return tally.finish(answer)

    def authorize_http(self, input: Mapping[str, Any], *, now: float, decision_id: str,
                       counters: RateCounter | None = None,
                       explain: bool = False) -> dict[str, Any]:
        """ext_authz: match the HTTP request to ``data.routes``, then check access."""
        request = _as_object(input)
        route = match_route(self._compiled.routes, request)
        if route.access_request is None:
            answer: dict[str, Any] = {
                "allowed": False, "reason": route.reason, "required_permissions": [],
                "missing_permissions": [], "violations": [], "warnings": [],
                "decision_id": decision_id, "bundle_revision": self.revision,
            }
            if explain:
                answer["explain"] = []
        else:
            answer = self.check_access(route.access_request, now=now, decision_id=decision_id,
                                       explain=explain)
        answer["http_status"] = 200 if answer["allowed"] else route.denied_status
        answer["route"] = route.template
        return answer
