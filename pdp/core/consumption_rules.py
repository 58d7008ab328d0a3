"""Checks of a consumer call's payload: content filtering and data classification.

``compile_content_filter`` lowercases blocked terms once and compiles blocked patterns with RE2.
``compile_classification`` returns a check over a ``PayloadScan``, which runs each detector at
most once per decision however many policies ask for it. Rate limits need the injected counters,
so they are evaluated in ``consumption``; here they are only carried as ``RateLimit`` values.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pdp.core.detectors import DETECTOR_LEVELS, Detectors
from pdp.core.findings import Check, CompiledPolicy, Finding, display
from pdp.core.patterns import matcher, utf8_safe
from pdp.core.rules import (
    LEVELS,
    ContentFilteringRule,
    DataClassificationRule,
    RateLimitingRule,
)

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
    terms = tuple(dict.fromkeys(term.lower() for term in rule.blocked_terms))
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
        if terms:
            lowered = payload.lower()
            hits = [term for term in terms if term in lowered]
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
        found = [name for name in detect if scan.found(name)]
        over = [name for name in found if _RANK[DETECTOR_LEVELS[name]] > ceiling]
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
