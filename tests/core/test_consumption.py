"""validate_consumption (DESIGN §4.3): access, rate limits, content filtering, classification."""

from __future__ import annotations

from typing import Any

import pytest
from core_kit import NOW, DictCounter, compile_set, decide, policy, violated

from pdp.core import PolicySet


def consume(policy_set: PolicySet, payload: str = "hello", *, consumer: str = "carl",
            service: str = "svc-public", counters: Any = None, now: float = NOW,
            **context: Any) -> dict[str, Any]:
    """Ask validate_consumption about one call."""
    request: dict[str, Any] = {"consumer_id": consumer, "service_id": service,
                               "request_payload": payload}
    if context:
        request["context"] = context
    return decide(policy_set, "validate_consumption", request, counters=counters, now=now)


def test_consumption_needs_the_consume_permission() -> None:
    """The access part checks service.consume for the consumer."""
    policy_set = compile_set()
    assert consume(policy_set)["allowed"] is True
    decision = consume(policy_set, consumer="vera")
    assert decision["allowed"] is False
    assert decision["missing_permissions"] == ["service.consume"]


def test_the_answer_has_the_origin_shape() -> None:
    """allowed, reason, violations and limits, plus warnings and ids."""
    decision = consume(compile_set())
    assert set(decision) == {"allowed", "reason", "required_permissions",
                             "missing_permissions", "violations", "warnings", "limits",
                             "decision_id", "bundle_revision"}
    assert decision["limits"] == {"max_tokens": 0, "max_requests_per_minute": 0,
                                  "max_requests_per_day": 0, "max_cost_per_request": 0.0}


def test_access_control_policies_apply_to_consumers() -> None:
    """Blocked consumers and IP ranges are checked with context.ip_address."""
    policy_set = compile_set(policy("access_control", {"allowed_ip_ranges": ["10.0.0.0/8"]}))
    assert consume(policy_set, ip_address="10.9.9.9")["allowed"] is True
    assert consume(policy_set, ip_address="8.8.8.8")["allowed"] is False


@pytest.mark.parametrize(("limit", "window", "step"), [
    ("max_requests_per_minute", 60, 1.0),
    ("max_requests_per_hour", 3600, 30.0),
    ("max_requests_per_day", 86400, 600.0),
])
def test_request_rates_are_limited_per_window(limit: str, window: int, step: float,
                                              counter: DictCounter) -> None:
    """The third call in a window with a limit of two is a violation; a new window resets."""
    policy_set = compile_set(policy("rate_limiting", {limit: 2}))
    start = (NOW // window) * window
    results = [consume(policy_set, counters=counter, now=start + i * step)["allowed"]
               for i in range(3)]
    assert results == [True, True, False]
    assert consume(policy_set, counters=counter, now=start + window)["allowed"] is True


def test_counters_are_keyed_by_consumer_and_service(counter: DictCounter) -> None:
    """Another consumer or another service has its own count."""
    policy_set = compile_set(policy("rate_limiting", {"max_requests_per_minute": 1}))
    assert consume(policy_set, counters=counter)["allowed"] is True
    assert consume(policy_set, counters=counter, service="svc-internal")["allowed"] is True
    assert consume(policy_set, counters=counter, consumer="ada")["allowed"] is True
    assert consume(policy_set, counters=counter)["allowed"] is False


def test_each_window_is_counted_once_per_decision(counter: DictCounter) -> None:
    """Two policies reading the minute window count the call once."""
    policy_set = compile_set(
        policy("rate_limiting", {"max_requests_per_minute": 5}, id="a"),
        policy("rate_limiting", {"max_requests_per_minute": 1, "max_requests_per_day": 9},
               id="b"))
    consume(policy_set, counters=counter)
    assert sorted(window for _, window in counter.calls) == [60, 86400]


def test_without_counters_request_rates_are_not_checked() -> None:
    """Offline evaluation (no counters) checks tokens but cannot count requests."""
    policy_set = compile_set(policy("rate_limiting", {"max_requests_per_minute": 1}))
    assert [consume(policy_set)["allowed"] for _ in range(3)] == [True, True, True]


@pytest.mark.parametrize(("requested", "allowed"), [
    ("100", True), (100, True), ("101", False), ("lots", False), (None, True),
])
def test_requested_tokens_are_limited(requested: Any, allowed: bool) -> None:
    """context.metadata.max_tokens, when given, must not exceed max_tokens_per_request."""
    policy_set = compile_set(policy("rate_limiting", {"max_tokens_per_request": 100}))
    metadata = {} if requested is None else {"max_tokens": requested}
    decision = consume(policy_set, metadata=metadata)
    assert decision["allowed"] is allowed
    if not allowed:
        assert decision["violations"][0]["field"] == "context.metadata.max_tokens"


def test_limits_are_the_tightest_applicable() -> None:
    """``limits`` takes the smallest value of every matching, non-dryrun policy."""
    policy_set = compile_set(
        policy("rate_limiting", {"max_requests_per_minute": 60, "max_tokens_per_request": 4000},
               id="wide"),
        policy("rate_limiting", {"max_requests_per_minute": 10, "max_requests_per_day": 500},
               id="tight"),
        policy("rate_limiting", {"max_requests_per_minute": 1}, id="shadow",
               enforcement="dryrun"),
        policy("rate_limiting", {"max_requests_per_day": 5}, id="elsewhere",
               when={"field": "service_id", "op": "eq", "value": "svc-secret"}),
        policy("pricing", {"max_rate_per_request": 0.05}, id="price"),
    )
    assert consume(policy_set)["limits"] == {"max_tokens": 4000, "max_requests_per_minute": 10,
                                             "max_requests_per_day": 500,
                                             "max_cost_per_request": 0.05}


CONTENT = [
    ("term, any case", {"blocked_terms": ["Drop Table"]}, "please drop TABLE users", False),
    ("term absent", {"blocked_terms": ["drop table"]}, "select 1", True),
    ("pattern", {"blocked_patterns": [r"\b\d{3}-\d{2}-\d{4}\b"]}, "id 123-45-6789", False),
    ("pattern absent", {"blocked_patterns": [r"\bsecret\b"]}, "secretive", True),
    ("size over", {"max_payload_bytes": 4}, "héllo", False),   # 6 bytes in UTF-8
    ("size at limit", {"max_payload_bytes": 5}, "hello", True),
    ("empty payload", {"blocked_terms": ["x"], "max_payload_bytes": 1}, "", True),
]


@pytest.mark.parametrize(("rule", "payload", "allowed"),
                         [pytest.param(r, p, a, id=n) for n, r, p, a in CONTENT])
def test_content_filtering(rule: dict[str, Any], payload: str, allowed: bool) -> None:
    """Blocked terms (case-insensitive), RE2 patterns and the payload size in bytes."""
    policy_set = compile_set(policy("content_filtering", rule))
    decision = consume(policy_set, payload)
    assert decision["allowed"] is allowed
    if not allowed:
        assert decision["violations"][0]["field"] == "request_payload"


DETECTIONS = [
    ("email", "write to jane.doe@example.org", "internal"),
    ("phone", "call +14155550123 today", "internal"),
    ("phone", "call (415) 555-0123 today", "internal"),
    ("ip_address", "from 192.168.10.20", "internal"),
    ("ip_address", "from 2001:db8::42", "internal"),
    ("credit_card", "card 4111-1111-1111-1111", "restricted"),
    ("ssn", "ssn 123-45-6789", "restricted"),
    ("secret", "key AKIAIOSFODNN7EXAMPLE", "restricted"),
    ("secret", "password = hunter2hunter2", "restricted"),
    ("secret", "-----BEGIN RSA PRIVATE KEY-----", "restricted"),
]


@pytest.mark.parametrize(("detector", "payload", "level"), DETECTIONS)
def test_each_detector_finds_its_kind(detector: str, payload: str, level: str) -> None:
    """A detector's finding above max_level is a violation naming the level, not the data."""
    policy_set = compile_set(policy("data_classification", {"detect": [detector],
                                                            "max_level": "public"}))
    decision = consume(policy_set, payload)
    assert decision["allowed"] is False
    actual = decision["violations"][0]["actual_value"]
    assert actual == f"{level} ({detector})"
    assert payload.split()[-1] not in str(decision)


@pytest.mark.parametrize(("detector", "payload"), [
    ("email", "no address here @ all"),
    ("phone", "version 2024"),
    ("ip_address", "time 12:30:45 and 999.1.1.1"),
    ("credit_card", "card 4111 1111 1111 1112"),   # fails the Luhn check
    ("ssn", "ssn 000-12-3456"),                    # area 000 is never issued
    ("secret", "the word token alone"),
])
def test_detectors_ignore_lookalikes(detector: str, payload: str) -> None:
    """Near misses are not findings (Luhn, reserved SSN ranges, invalid addresses)."""
    policy_set = compile_set(policy("data_classification", {"detect": [detector],
                                                            "max_level": "public"}))
    assert consume(policy_set, payload)["allowed"] is True


@pytest.mark.parametrize(("max_level", "service", "payload", "allowed"), [
    ("internal", "svc-secret", "mail a@b.io", True),        # internal <= internal
    ("internal", "svc-secret", "card 4111111111111111", False),   # restricted > internal
    ("restricted", "svc-public", "mail a@b.io", False),     # service level public is lower
    ("restricted", "svc-secret", "card 4111111111111111", True),
    (None, "svc-internal", "mail a@b.io", True),            # only the service's level
    (None, "svc-public", "mail a@b.io", False),
    (None, "unknown-svc", "card 4111111111111111", True),   # no ceiling known at all
])
def test_the_payload_level_must_not_exceed_the_lower_ceiling(
        max_level: str | None, service: str, payload: str, allowed: bool) -> None:
    """The found level is compared with min(policy max_level, service level)."""
    rule: dict[str, Any] = {"detect": ["email", "credit_card"]}
    if max_level:
        rule["max_level"] = max_level
    policy_set = compile_set(policy("data_classification", rule))
    user = "rob"  # holds "*", so access never interferes
    assert consume(policy_set, payload, consumer=user, service=service)["allowed"] is allowed


def test_a_custom_consumption_policy_joins_the_decision() -> None:
    """A custom policy with query validate_consumption can deny a call."""
    policy_set = compile_set(policy("custom", {
        "violation_if": {"field": "context.region", "op": "eq", "value": "cn"},
        "field": "context.region", "query": "validate_consumption"}))
    assert consume(policy_set, region="eu")["allowed"] is True
    decision = consume(policy_set, region="cn")
    assert decision["allowed"] is False and violated(decision) == {"p-custom"}


def test_a_failing_counter_fails_closed() -> None:
    """A counter that raises makes its policy a violation, not a crash."""
    class Broken:
        def hit(self, key: str, window_seconds: int, now: float) -> int:
            raise RuntimeError("counter store is gone")

    policy_set = compile_set(policy("rate_limiting", {"max_requests_per_minute": 5}))
    decision = consume(policy_set, counters=Broken())
    assert decision["allowed"] is False
    assert "internal error" in decision["violations"][0]["message"]


def test_consumption_conditions_see_the_consumer_as_user() -> None:
    """A rate limit can be scoped by the consumer's attributes from bundle data."""
    policy_set = compile_set(policy(
        "rate_limiting", {"max_tokens_per_request": 10},
        when={"field": "user.attributes.tenant", "op": "eq", "value": "acme"}))
    assert consume(policy_set, consumer="carl", metadata={"max_tokens": 50})["allowed"] is False
    assert consume(policy_set, consumer="ada", metadata={"max_tokens": 50})["allowed"] is True


@pytest.mark.parametrize(("type", "rule", "allowed"), [
    ("content_filtering", {"blocked_terms": ["x"]}, True),
    ("content_filtering", {"blocked_patterns": ["x"]}, True),
    ("content_filtering", {"max_payload_bytes": 1}, True),
    ("data_classification", {"detect": ["email"], "max_level": "public"}, True),
    ("rate_limiting", {"max_tokens_per_request": 1}, True),
    ("access_control", {"allowed_ip_ranges": ["10.0.0.0/8"]}, False),
])
def test_absent_payload_and_context(type: str, rule: dict[str, Any], allowed: bool) -> None:
    """Without request_payload or context, only rules that require a field fail."""
    policy_set = compile_set(policy(type, rule))
    decision = decide(policy_set, "validate_consumption",
                      {"consumer_id": "carl", "service_id": "svc-public"})
    assert decision["allowed"] is allowed


def test_blocked_terms_are_literal_text_not_patterns() -> None:
    """A term with regex characters matches only itself: ``a.b`` does not block ``axb``."""
    policy_set = compile_set(policy("content_filtering", {"blocked_terms": ["a.b", "(x)"]}))
    assert consume(policy_set, "axb and x")["allowed"] is True
    decision = consume(policy_set, "A.B and (X)")
    assert decision["violations"][0]["actual_value"] == "a.b, (x)"
