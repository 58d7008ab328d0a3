"""validate_consumption (DESIGN §4.3): access, rate limits, content, classification, limits.

Rate counting is the one stateful part of a decision, so it goes through the injected
``RateCounter`` (the bounded in-memory implementation lives in the runtime). Counters are keyed
by consumer and service, and each window (minute, hour, day) is hit at most once per decision,
however many rate-limiting policies read it. Without counters (offline evaluation) request
rates are not checked; ``max_tokens_per_request`` still is.

The payload checks compile like the listing checks: ``compile_content_filter`` compiles blocked
terms into one case-insensitive RE2 alternation and blocked patterns with RE2;
``compile_classification`` returns a check over a ``PayloadScan``, which runs each detector at
most once per decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pdp.core.access import decide_access, denial_by_policy
from pdp.core.findings import Check, CompiledPolicy, Finding, Tally, apply_policies, display
from pdp.core.patterns import DETECTOR_LEVELS, Detectors, matcher, term_finder, utf8_safe
from pdp.core.rules import (
    LEVELS,
    ContentFilteringRule,
    DataClassificationRule,
    RateLimitingRule,
)

if TYPE_CHECKING:
    from pdp.core.compile import CompiledSet

WINDOWS: tuple[tuple[str, int, str], ...] = (
    ("max_requests_per_minute", 60, "minute"),
    ("max_requests_per_hour", 3600, "hour"),
    ("max_requests_per_day", 86400, "day"),
)


class RateCounter(Protocol):
    """Per-sidecar request counters, injected into ``validate_consumption``."""

    def hit(self, key: str, window_seconds: int, now: float) -> int:
        """Count one request in the window containing `now`; return the count including it."""
        ...


def rate_key(consumer_id: str, service_id: str) -> str:
    """The counter key of a consumer and a service (a separator ids cannot contain)."""
    return f"{consumer_id}\x1f{service_id}"


def _requested_tokens(metadata: Any) -> tuple[Any, int | None]:
    """``context.metadata.max_tokens`` as given and as an int (None if absent or invalid)."""
    raw = metadata.get("max_tokens") if type(metadata) is dict else None
    if type(raw) is int:
        return raw, raw
    # ASCII digits only: str.isdigit() is also true of "²", which int() refuses (an exception
    # here escaped the decision as a 500), and of other scripts' digits.
    if type(raw) is str and len(raw) < 20 and raw.strip().isascii() and raw.strip().isdigit():
        return raw, int(raw)
    return raw, None


def _rate_findings(limit: RateLimit, counts: dict[int, int], key: str | None, now: float,
                   counters: RateCounter | None, tokens: tuple[Any, int | None]) -> list[Finding]:
    rule = limit.rule
    findings = []
    if counters is not None and key is not None:
        for attribute, window, label in WINDOWS:
            ceiling = getattr(rule, attribute)
            if ceiling is None:
                continue
            if window not in counts:
                counts[window] = counters.hit(key, window, now)
            if counts[window] > ceiling:
                findings.append((
                    f"rate.{label}", str(counts[window]), f"at most {ceiling} per {label}",
                    f"{counts[window]} requests this {label}, over the limit of {ceiling}",
                    f"wait for the next {label} or ask for a higher limit"))
    ceiling = rule.max_tokens_per_request
    raw, requested = tokens
    if ceiling is not None and raw is not None and (requested is None or requested > ceiling):
        findings.append((
            "context.metadata.max_tokens", str(raw)[:64], f"at most {ceiling}",
            f"the request asks for {str(raw)[:64]} tokens, over the limit of {ceiling}"
            if requested is not None else "context.metadata.max_tokens is not a whole number",
            f"ask for at most {ceiling} tokens per request"))
    return findings


def decide_consumption(compiled: CompiledSet, request: dict[str, Any], now: float,
                       counters: RateCounter | None, tally: Tally,
                       stamp: tuple[str, str]) -> dict[str, Any]:
    """The consumption decision: allowed, reason, permissions, violations and ``limits``;
    ``stamp`` is (decision_id, bundle_revision)."""
    consumer_id, service_id = request.get("consumer_id"), request.get("service_id")
    context = request.get("context")
    if type(context) is not dict:
        context = {}
    answer, _ = decide_access(compiled.access, compiled.access_policies, compiled.access_scoped,
                              _access_request(request, consumer_id, service_id)
                              if compiled.access_policies else request,
                              (consumer_id, service_id, "consume"),
                              context.get("ip_address"), tally, stamp)
    limits = {"max_tokens": 0, "max_requests_per_minute": 0, "max_requests_per_hour": 0,
              "max_requests_per_day": 0,
              "max_cost_per_request": compiled.max_cost_per_request or 0.0}
    # Conditions of the consumption policies see the consumer as ``user``, like access checks.
    scope = compiled.access.enrich(request, consumer_id, service_id)
    if compiled.rate_limits:
        key = (rate_key(consumer_id, service_id)
               if type(consumer_id) is str and type(service_id) is str else None)
        counts: dict[int, int] = {}
        tokens = _requested_tokens(context.get("metadata"))
        for limit in compiled.rate_limits:
            policy = limit.policy
            try:
                matched = policy.when is None or policy.when(scope)
                findings = (_rate_findings(limit, counts, key, now, counters, tokens)
                            if matched else [])
            except Exception as exc:  # a failing counter must fail closed, not crash
                tally.record_error(policy, exc)
                continue
            if findings:
                tally.record(policy, findings, policy.enforcement)
            tally.note(policy, matched, findings, policy.enforcement)
            if matched and policy.enforcement != "dryrun":
                _tighten(limits, limit)
    payload = request.get("request_payload")
    if type(payload) is not str:
        payload = ""
    if compiled.content:
        apply_policies(compiled.content, scope, payload, tally)
    if compiled.classification and compiled.detectors is not None:
        scan = PayloadScan(payload, service_level(compiled.access.services, service_id),
                           compiled.detectors)
        apply_policies(compiled.classification, scope, scan, tally)
    if answer["allowed"] and tally.violations:
        answer["allowed"] = False
        answer["reason"] = denial_by_policy(tally.violations)
    answer["limits"] = limits
    return answer


def _access_request(request: dict[str, Any], consumer_id: Any,
                    service_id: Any) -> dict[str, Any]:
    """The check_access input of this call: access_control conditions are written (and
    type-checked) against check_access, so they must see ``user_id`` and ``action``, not the
    consumption fields."""
    access = {"user_id": consumer_id, "service_id": service_id, "action": "consume"}
    if "context" in request:
        access["context"] = request["context"]
    return access


def _tighten(limits: dict[str, Any], limit: RateLimit) -> None:
    """Lower ``limits`` to this policy's where it is tighter (0 means "no limit", as in proto)."""
    rule = limit.rule
    for name, value in (("max_tokens", rule.max_tokens_per_request),
                        ("max_requests_per_minute", rule.max_requests_per_minute),
                        ("max_requests_per_hour", rule.max_requests_per_hour),
                        ("max_requests_per_day", rule.max_requests_per_day)):
        if value is not None and (limits[name] == 0 or value < limits[name]):
            limits[name] = value


_RANK: dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}


class RateLimit(NamedTuple):
    """A rate-limiting policy and its limits."""

    policy: CompiledPolicy
    rule: RateLimitingRule


class PayloadScan:
    """A payload, the service's level, and detector results computed on first use."""

    __slots__ = ("_found", "detectors", "payload", "service_level")

    def __init__(self, payload: str, service_level: str | None, detectors: Detectors) -> None:
        self.payload = utf8_safe(payload)
        self.service_level = service_level
        self.detectors = detectors
        self._found: dict[str, bool] = {}

    def found(self, name: str) -> bool:
        """Whether the payload holds data of kind ``name`` (memoised)."""
        result = self._found.get(name)
        if result is None:
            result = self._found[name] = self.detectors.found(name, self.payload)
        return result


def compile_content_filter(rule: ContentFilteringRule) -> Check:
    """Blocked terms (case-insensitive), blocked RE2 patterns, a payload size ceiling."""
    find_terms = term_finder(tuple(rule.blocked_terms)) if rule.blocked_terms else None
    patterns = tuple((pattern, matcher(pattern)) for pattern in rule.blocked_patterns)
    max_bytes = rule.max_payload_bytes

    def check(payload: str) -> list[Finding] | None:
        findings = None
        if max_bytes is not None:
            size = len(payload.encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                findings = [(
                    "request_payload", f"{size} bytes", f"at most {max_bytes} bytes",
                    f"the payload is {size} bytes, over the {max_bytes}-byte limit",
                    "send a smaller payload")]
        if find_terms is not None:
            hits = find_terms(payload)
            if hits:
                findings = (findings or []) + [(
                    "request_payload", display(hits), "none of the blocked terms",
                    f"the payload contains blocked terms: {display(hits)}",
                    "remove the blocked terms from the request")]
        for pattern, matches in patterns:
            if matches(payload):
                findings = (findings or []) + [(
                    "request_payload", f"matches {pattern}", f"no match for {pattern}",
                    "the payload matches a blocked pattern",
                    "remove the blocked content from the request")]
        return findings

    return check


def compile_classification(rule: DataClassificationRule) -> Check:
    """The payload's highest detected level must not exceed min(max_level, service level)."""
    detect = tuple(dict.fromkeys(rule.detect))
    policy_rank = _RANK[rule.max_level] if rule.max_level else None

    def check(scan: PayloadScan) -> list[Finding] | None:
        service_rank = _RANK.get(scan.service_level) if scan.service_level else None
        ranks = [rank for rank in (policy_rank, service_rank) if rank is not None]
        if not ranks:
            return None  # neither the policy nor the service sets a ceiling
        ceiling = min(ranks)
        # Only detectors whose level is above the ceiling can matter: run just those.
        over = [name for name in detect
                if _RANK[DETECTOR_LEVELS[name]] > ceiling and scan.found(name)]
        if not over:
            return None
        level = LEVELS[max(_RANK[DETECTOR_LEVELS[name]] for name in over)]
        return [("request_payload", f"{level} ({display(over)})",
                 f"at most {LEVELS[ceiling]}",
                 f"the payload contains {level} data ({display(over)}), above the "
                 f"allowed {LEVELS[ceiling]}",
                 "remove or mask the sensitive data before sending it")]

    return check


def service_level(services: dict[str, Any], service_id: Any) -> str | None:
    """``data.services[service_id].level`` when it is a known level, else None."""
    record = services.get(service_id) if type(service_id) is str else None
    level = record.get("level") if type(record) is dict else None
    return level if type(level) is str and level in _RANK else None
