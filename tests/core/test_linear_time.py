"""Admin-supplied patterns run in linear time (RE2), so no payload can stall a decision."""

from __future__ import annotations

import time
from typing import Any

from core_kit import compile_set, decide, policy

EVIL_PATTERNS = ["(a+)+$", "(a|aa)+$", "(a*)*b", "^(([a-z])+.)+[A-Z]([a-z])+$"]


def seconds_to_decide(payload: str) -> tuple[float, dict[str, Any]]:
    """Time one validate_consumption on a payload against catastrophic patterns."""
    policy_set = compile_set(policy("content_filtering", {"blocked_patterns": EVIL_PATTERNS}))
    request = {"consumer_id": "carl", "service_id": "svc-public", "request_payload": payload}
    started = time.perf_counter()
    decision = decide(policy_set, "validate_consumption", request)
    return time.perf_counter() - started, decision


def test_a_catastrophic_pattern_on_a_long_input_is_fast() -> None:
    """``(a+)+$`` against 100k ``a``s followed by ``!`` finishes well under a second."""
    elapsed, decision = seconds_to_decide("a" * 100_000 + "!")
    assert elapsed < 1.0
    assert decision["allowed"] is True  # none of the patterns matches: the ! spoils the end


def test_the_time_grows_linearly_with_the_input() -> None:
    """Ten times the input takes about ten times as long (generously: under 40x)."""
    seconds_to_decide("a" * 1000)  # warm-up
    short = min(seconds_to_decide("a" * 100_000 + "!")[0] for _ in range(3))
    long = min(seconds_to_decide("a" * 1_000_000 + "!")[0] for _ in range(3))
    assert long < 2.0
    assert long < 40 * max(short, 1e-4)


def test_a_catastrophic_pattern_still_matches_what_it_should() -> None:
    """Linear time does not change the answer: a payload ending in a's is blocked."""
    _, decision = seconds_to_decide("a" * 50_000)
    assert decision["allowed"] is False


def test_conditions_use_the_same_engine() -> None:
    """A ``matches`` condition with a catastrophic pattern is fast on a long field too."""
    policy_set = compile_set(policy("custom", {
        "violation_if": {"field": "description", "op": "matches", "value": "(a+)+$"},
        "field": "description"}))
    started = time.perf_counter()
    decision = decide(policy_set, "validate_service", {"description": "a" * 100_000 + "!"})
    assert time.perf_counter() - started < 1.0
    assert decision["compliant"] is True


def test_text_that_is_not_valid_utf8_is_still_matched() -> None:
    """A lone surrogate (legal in JSON) neither crashes nor hides a blocked pattern."""
    policy_set = compile_set(policy("content_filtering", {"blocked_patterns": ["forbidden"]}),
                             policy("data_classification", {"detect": ["email"],
                                                            "max_level": "public"}))
    request = {"consumer_id": "carl", "service_id": "svc-public",
               "request_payload": "\ud800 forbidden a@b.io"}
    decision = decide(policy_set, "validate_consumption", request)
    assert {v["policy_id"] for v in decision["violations"]} == {"p-content-filtering",
                                                                "p-data-classification"}
    assert "internal error" not in str(decision)


def test_many_blocked_terms_on_a_large_payload_are_fast() -> None:
    """Two thousand blocked terms against a 1 MB payload: one linear pass, well under a second."""
    terms = [f"forbidden-{i}" for i in range(2000)]
    policy_set = compile_set(policy("content_filtering", {"blocked_terms": terms}))
    request = {"consumer_id": "carl", "service_id": "svc-public",
               "request_payload": "lorem ipsum " * 87_000 + "FORBIDDEN-1999"}
    started = time.perf_counter()
    decision = decide(policy_set, "validate_consumption", request)
    assert time.perf_counter() - started < 1.0
    assert decision["violations"][0]["actual_value"] == "forbidden-1999"
