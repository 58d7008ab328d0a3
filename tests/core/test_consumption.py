"""validate_consumption (DESIGN §4.3): access, rate limits, content filtering, classification."""

from __future__ import annotations

import time
from typing import Any

import pytest
import re2
from core_kit import NOW, DictCounter, compile_set, decide, policy, violated
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pdp.core import PolicySet, patterns
from pdp.core.patterns import luhn_valid


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
                                  "max_requests_per_hour": 0, "max_requests_per_day": 0,
                                  "max_cost_per_request": 0.0}


def test_access_control_policies_apply_to_consumers() -> None:
    """Blocked consumers and IP ranges are checked with context.ip_address."""
    policy_set = compile_set(policy("access_control", {"allowed_ip_ranges": ["10.0.0.0/8"]}))
    assert consume(policy_set, ip_address="10.9.9.9")["allowed"] is True
    assert consume(policy_set, ip_address="8.8.8.8")["allowed"] is False


@pytest.mark.parametrize("when", [
    pytest.param({"field": "action", "op": "eq", "value": "consume"}, id="action"),
    pytest.param({"field": "user_id", "op": "starts_with", "value": "ca"}, id="user_id"),
    pytest.param({"field": "context.region", "op": "eq", "value": "eu"}, id="context"),
])
def test_access_policy_conditions_see_the_consumer_as_check_access_would(
        when: dict[str, Any]) -> None:
    """An access_control ``when`` reads user_id = consumer, action = consume, and context."""
    policy_set = compile_set(policy("access_control", {"blocked_user_ids": ["carl"]}, when=when))
    checked = decide(policy_set, "check_access", {
        "user_id": "carl", "service_id": "svc-public", "action": "consume",
        "context": {"region": "eu"}})
    consumed = consume(policy_set, region="eu")
    assert checked["allowed"] is consumed["allowed"] is False
    assert violated(consumed) == violated(checked) == {"p-access-control"}
    assert consume(policy_set, consumer="ada", region="eu")["allowed"] is True


def test_other_consumption_policies_still_see_the_consumption_request() -> None:
    """Rate limits and content policies are scoped by consumer_id, not by the access input."""
    policy_set = compile_set(
        policy("rate_limiting", {"max_tokens_per_request": 10},
               when={"field": "consumer_id", "op": "eq", "value": "carl"}),
        policy("content_filtering", {"blocked_terms": ["x"]},
               when={"field": "consumer_id", "op": "eq", "value": "carl"}))
    decision = consume(policy_set, "x", metadata={"max_tokens": 50})
    assert violated(decision) == {"p-rate-limiting", "p-content-filtering"}
    assert consume(policy_set, "x", consumer="ada", metadata={"max_tokens": 50})["allowed"]


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


@pytest.mark.parametrize("requested", ["²", "٣", " ¹2 "])
def test_requested_tokens_in_other_digits_are_not_whole_numbers(requested: str) -> None:
    """A max_tokens written in non-ASCII digits is a violation, never an exception (a 500)."""
    policy_set = compile_set(policy("rate_limiting", {"max_tokens_per_request": 100}))
    decision = consume(policy_set, metadata={"max_tokens": requested})
    assert decision["allowed"] is False
    assert decision["violations"][0]["message"] == (
        "context.metadata.max_tokens is not a whole number")


def test_limits_are_the_tightest_applicable() -> None:
    """``limits`` takes the smallest value of every matching, non-dryrun policy."""
    policy_set = compile_set(
        policy("rate_limiting", {"max_requests_per_minute": 60, "max_tokens_per_request": 4000},
               id="wide"),
        policy("rate_limiting", {"max_requests_per_minute": 10, "max_requests_per_day": 500,
                                 "max_requests_per_hour": 200}, id="tight"),
        policy("rate_limiting", {"max_requests_per_hour": 300}, id="hourly"),
        policy("rate_limiting", {"max_requests_per_minute": 1}, id="shadow",
               enforcement="dryrun"),
        policy("rate_limiting", {"max_requests_per_day": 5}, id="elsewhere",
               when={"field": "service_id", "op": "eq", "value": "svc-secret"}),
        policy("pricing", {"max_rate_per_request": 0.05}, id="price"),
    )
    assert consume(policy_set)["limits"] == {"max_tokens": 4000, "max_requests_per_minute": 10,
                                             "max_requests_per_hour": 200,
                                             "max_requests_per_day": 500,
                                             "max_cost_per_request": 0.05}


def test_the_hourly_limit_is_returned_like_the_others() -> None:
    """max_requests_per_hour reaches ``limits`` (0, "no limit", when no policy sets it)."""
    policy_set = compile_set(policy("rate_limiting", {"max_requests_per_hour": 100}))
    assert consume(policy_set)["limits"]["max_requests_per_hour"] == 100
    assert consume(compile_set())["limits"]["max_requests_per_hour"] == 0


CONTENT = [
    ("term, any case", {"blocked_terms": ["Drop Table"]}, "please drop TABLE users", False),
    ("term absent", {"blocked_terms": ["drop table"]}, "select 1", True),
    ("pattern", {"blocked_patterns": [r"\b\d{3}-\d{2}-\d{4}\b"]}, "id 123-45-6789", False),
    ("pattern absent", {"blocked_patterns": [r"\bsecret\b"]}, "secretive", True),
    ("size over", {"max_payload_bytes": 4}, "héllo", False),   # 6 bytes in UTF-8
    ("size at limit", {"max_payload_bytes": 5}, "hello", True),
    ("empty payload", {"blocked_terms": ["x"], "max_payload_bytes": 1}, "", True),
    ("dotted I, as written", {"blocked_terms": ["İstanbul"]}, "trip to İstanbul", False),
    ("dotted I, lower case", {"blocked_terms": ["İstanbul"]}, "trip to istanbul", False),
    ("dotted I, upper case", {"blocked_terms": ["İstanbul"]}, "trip to ISTANBUL", False),
    ("dotted I, Turkish upper", {"blocked_terms": ["İstanbul"]}, "trip to İSTANBUL", False),
    ("dotted I, as lower() writes it", {"blocked_terms": ["İstanbul"]}, "trip to i\u0307stanbul",
     False),
    ("dotless i, upper case", {"blocked_terms": ["kırmızı"]}, "KIRMIZI", False),
    ("plain i, Turkish upper", {"blocked_terms": ["İzmir"]}, "İZMİR", False),
    ("ASCII term, Turkish text", {"blocked_terms": ["istanbul"]}, "İSTANBUL", False),
    ("dotted I, other word", {"blocked_terms": ["İstanbul"]}, "trip to Ankara", True),
    ("ASCII term, mixed case", {"blocked_terms": ["secret", "Top Secret"]}, "TOP sEcReT", False),
    ("ASCII term absent", {"blocked_terms": ["secret"]}, "secre t", True),
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
    ("credit_card", "pay with 4111 1111 1111 1111 12/25", "restricted"),
    ("credit_card", "4111 1111 1111 1111 123", "restricted"),
    ("credit_card", "qty 2 4111111111111111", "restricted"),
    ("credit_card", "ref 12-4111-1111-1111-1111-77", "restricted"),
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


def test_a_card_is_found_among_long_runs_of_digit_groups_in_linear_time() -> None:
    """A megabyte of digit groups is scanned well under a second, and a card at its end found."""
    policy_set = compile_set(policy("data_classification", {"detect": ["credit_card"],
                                                            "max_level": "internal"}))
    for filler in ("1 " * 500_000, "1234-" * 200_000):
        started = time.perf_counter()
        assert consume(policy_set, filler + "1")["allowed"] is True
        assert time.perf_counter() - started < 1.0
        assert consume(policy_set, filler + "4111 1111 1111 1111")["allowed"] is False


@pytest.mark.parametrize(("detector", "payload"), [
    ("email", "no address here @ all"),
    ("phone", "version 2024"),
    ("ip_address", "time 12:30:45 and 999.1.1.1"),
    ("credit_card", "card 4111 1111 1111 1112"),   # fails the Luhn check
    ("credit_card", "id 41111111111111111111111"),  # 23 digits: too long, however it is cut
    ("credit_card", "id 4111111111111111x"),        # a card-like run inside a word
    ("credit_card", "call +1 415 555 0123 or 415-555-0199"),
    ("credit_card", "order 1234 5678 9012 3456"),   # 16 digits, fails the Luhn check
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


def test_a_blocked_term_is_named_as_the_policy_writes_it() -> None:
    """The violation names the blocked term (lowercased), whichever case variant was sent."""
    policy_set = compile_set(policy("content_filtering", {"blocked_terms": ["İstanbul", "Ankara"]}))
    decision = consume(policy_set, "ISTANBUL, İstanbul and ANKARA")
    assert decision["violations"][0]["actual_value"] == "istanbul, ankara"


@settings(max_examples=300, deadline=None)
@given(groups=st.lists(st.text("0123456789", min_size=1, max_size=6), min_size=1, max_size=12),
       separators=st.lists(st.sampled_from([" ", "-"]), min_size=11, max_size=11))
def test_a_run_of_digit_groups_holds_a_card_exactly_when_some_span_of_groups_is_one(
        groups: list[str], separators: list[str]) -> None:
    """The one-pass search agrees with trying every span of whole groups: 13-19 digits that
    pass Luhn."""
    joined = zip(separators, groups[1:], strict=False)
    run = groups[0] + "".join(sep + group for sep, group in joined)
    assume(len("".join(groups)) >= 13)
    expected = any(13 <= len(span) <= 19 and luhn_valid(span)
                   for i in range(len(groups)) for j in range(i + 1, len(groups) + 1)
                   for span in ["".join(groups[i:j])])
    match = re2.search(r"\b\d(?:[ -]?\d){12,}\b", run)
    assert match is not None and match.group(0) == run
    assert patterns._card(match) is expected
