"""The decision metrics of DESIGN §7.5: the same series prometheus-client's own types expose."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from pdp.runtime.metrics import DECISION_BUCKETS, RuntimeMetrics

DURATIONS = (0.000004, 0.00001, 0.00003, 0.0009, 0.001, 0.2, 1.0, 7.5)


def _without_created(text: str) -> list[str]:
    return [line for line in text.splitlines() if "_created" not in line]


def _decision_lines(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in _without_created(text) if "policy_engine_validation" in line]


def test_exposition_matches_prometheus_counter_and_histogram() -> None:
    """/metrics shows exactly the lines a prometheus-client Counter and Histogram would."""
    ours = RuntimeMetrics(CollectorRegistry(), clock=lambda: 1_700_000_000.0)
    reference_registry = CollectorRegistry()
    counter = Counter("policy_engine_validations", "Decisions by query and result.",
                      ["query", "result"], registry=reference_registry)
    histogram = Histogram("policy_engine_validation_duration_seconds",
                          "Time to validate input and decide.", ["query"],
                          buckets=DECISION_BUCKETS, registry=reference_registry)
    for seconds in DURATIONS:
        ours.observe_decision("check_access", "allow", seconds)
        counter.labels("check_access", "allow").inc()
        histogram.labels("check_access").observe(seconds)
    ours.count_refusal("validate_service", "invalid")
    counter.labels("validate_service", "invalid").inc()
    assert _decision_lines(ours.registry) == _decision_lines(reference_registry)


def test_a_duration_on_a_bucket_bound_counts_in_that_bucket() -> None:
    """Bucket bounds are inclusive (le), as Prometheus defines them."""
    metrics = RuntimeMetrics(CollectorRegistry())
    metrics.observe_decision("check_access", "allow", 0.0001)
    def bucket(le: str) -> float | None:
        return metrics.registry.get_sample_value(
            "policy_engine_validation_duration_seconds_bucket", {"query": "check_access", "le": le})

    assert (bucket("5e-05"), bucket("0.0001")) == (0.0, 1.0)


def test_created_series_come_from_the_injected_clock() -> None:
    """_created timestamps are the time a series first appeared, read from the injected clock."""
    metrics = RuntimeMetrics(CollectorRegistry(), clock=lambda: 1_700_000_123.0)
    metrics.observe_decision("check_access", "deny", 0.001)
    registry = metrics.registry
    assert registry.get_sample_value(
        "policy_engine_validations_created", {"query": "check_access", "result": "deny"}
    ) == 1_700_000_123.0
    assert registry.get_sample_value(
        "policy_engine_validation_duration_seconds_created", {"query": "check_access"}
    ) == 1_700_000_123.0


def test_refusals_are_counted_without_a_duration() -> None:
    """A refused request counts in validations_total but adds nothing to the histogram."""
    metrics = RuntimeMetrics(CollectorRegistry())
    metrics.count_refusal("check_access", "unavailable")
    registry = metrics.registry
    assert registry.get_sample_value(
        "policy_engine_validations_total", {"query": "check_access", "result": "unavailable"}
    ) == 1.0
    assert registry.get_sample_value(
        "policy_engine_validation_duration_seconds_count", {"query": "check_access"}) is None
