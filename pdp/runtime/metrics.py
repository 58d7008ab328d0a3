"""Prometheus metrics of the sidecar (DESIGN §7.5), registered on an injected registry.

Nothing registers on prometheus-client's global registry, so two engines (or two tests) in one
process never collide. The shells expose ``registry`` on ``GET /metrics`` and count their requests
with :attr:`RuntimeMetrics.http_requests` / :attr:`RuntimeMetrics.grpc_requests`.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Decisions take microseconds to a few milliseconds; the default buckets start at 5 ms.
DECISION_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                     0.01, 0.025, 0.05, 0.1, 0.25, 1.0, float("inf"))
# The ``le`` label values, spelled as prometheus-client spells them ("1e-05", "1.0", "+Inf").
_BUCKET_LABELS: tuple[str, ...] = tuple(
    floatToGoString(bound) for bound in DECISION_BUCKETS)  # type: ignore[no-untyped-call]


class _QueryDurations:
    """One query's histogram: per-bucket (not cumulative) counts, the sum, when it was created."""

    __slots__ = ("buckets", "created", "total")

    def __init__(self, created: float) -> None:
        self.buckets = [0] * len(DECISION_BUCKETS)
        self.total = 0.0
        self.created = created


class DecisionStats(Collector):
    """``policy_engine_validations`` and ``policy_engine_validation_duration_seconds`` (§7.5).

    The same series prometheus-client's Counter and Histogram expose (``_total``, ``_created``,
    ``_bucket``, ``_count``, ``_sum``), kept in plain numbers under one lock: the library's
    objects take a lock per value and check observability on every call, about 3 µs per
    decision against well under 1 µs here, and this is paid on every request.
    """

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], list[float]] = {}  # (query, result) -> [n, created]
        self._durations: dict[str, _QueryDurations] = {}
        registry.register(self)

    def count(self, query: str, result: str) -> None:
        """Count one decision (or refusal) of ``query`` with ``result``."""
        key = (query, result)
        with self._lock:
            entry = self._counts.get(key)
            if entry is None:
                entry = self._counts[key] = [0.0, self._clock()]
            entry[0] += 1

    def observe(self, query: str, result: str, seconds: float) -> None:
        """Count one decision and add its duration to the query's histogram."""
        key = (query, result)
        with self._lock:
            entry = self._counts.get(key)
            if entry is None:
                entry = self._counts[key] = [0.0, self._clock()]
            entry[0] += 1
            durations = self._durations.get(query)
            if durations is None:
                durations = self._durations[query] = _QueryDurations(self._clock())
            # A bucket's bound is inclusive, as prometheus-client's ``amount <= bound``.
            durations.buckets[bisect_left(DECISION_BUCKETS, seconds)] += 1
            durations.total += seconds

    def collect(self) -> Iterator[Metric]:
        """The two families, read under the lock so a scrape sees one consistent state."""
        with self._lock:
            counts = [(key, entry[0], entry[1]) for key, entry in self._counts.items()]
            durations = [(query, list(d.buckets), d.total, d.created)
                         for query, d in self._durations.items()]
        validations = CounterMetricFamily(
            "policy_engine_validations", "Decisions by query and result.",
            labels=["query", "result"])
        for (query, result), value, created in counts:
            validations.add_metric([query, result], value, created=created)
        yield validations
        histogram = HistogramMetricFamily(
            "policy_engine_validation_duration_seconds", "Time to validate input and decide.",
            labels=["query"])
        for query, buckets, total, created in durations:
            cumulative, running = [], 0.0
            for label, hits in zip(_BUCKET_LABELS, buckets, strict=True):
                running += hits
                cumulative.append((label, running))
            histogram.add_metric([query], cumulative, total)
            histogram.add_sample(
                "policy_engine_validation_duration_seconds_created", {"query": query}, created)
        yield histogram


class RuntimeMetrics:
    """The runtime's metric families on one registry, with cached children for the hot path."""

    def __init__(self, registry: CollectorRegistry, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.decisions = DecisionStats(registry, clock)
        self.active_policies = Gauge(
            "policy_engine_active_policies", "Policies in the active bundle.", registry=registry)
        self.bundle_info = Gauge(
            "pdp_bundle_info", "The active bundle (value 1).", ["revision", "sequence"],
            registry=registry)
        self.bundle_age = Gauge(
            "pdp_bundle_age_seconds",
            "Seconds since a source last delivered or confirmed the active bundle.",
            registry=registry)
        self.bundle_loads = Counter(
            "pdp_bundle_loads", "Bundle loads by source and result "
            "(success, unchanged, failure).", ["source", "result"], registry=registry)
        self.bundle_last_success = Gauge(
            "pdp_bundle_last_success_timestamp",
            "Unix time of the last activation or confirmation.", registry=registry)
        self.decision_logs_dropped = Counter(
            "pdp_decision_logs_dropped", "Decision-log events dropped, by reason.", ["reason"],
            registry=registry)
        self.persist_failures = Counter(
            "pdp_bundle_persist_failures", "Failures to persist or read the persisted bundle.",
            ["operation"], registry=registry)
        self.dryrun_findings = Counter(
            "pdp_dryrun_findings", "Findings of dryrun-enforced policies (never in answers).",
            ["query", "policy_id"], registry=registry)
        self.http_requests = Counter(
            "pdp_http_requests", "HTTP requests by route and status code.", ["route", "code"],
            registry=registry)
        self.grpc_requests = Counter(
            "pdp_grpc_requests", "gRPC requests by method and status code.", ["method", "code"],
            registry=registry)

    def observe_decision(self, query: str, result: str, seconds: float) -> None:
        """Count one decision and its duration (this is per request)."""
        self.decisions.observe(query, result, seconds)

    def count_dryrun(self, query: str, findings: list[dict[str, Any]]) -> None:
        """Count the findings of dryrun policies: shadow mode is visible here and in the log."""
        for finding in findings:
            self.dryrun_findings.labels(query, str(finding.get("policy_id", ""))).inc()

    def count_refusal(self, query: str, result: str) -> None:
        """Count a decision that was refused before evaluation (bad input, not ready)."""
        self.decisions.count(query, result)

    def show_bundle(self, *, revision: str, sequence: int, policies: int,
                    success_at: float) -> None:
        """Publish the active bundle's identity after an activation."""
        self.bundle_info.clear()
        self.bundle_info.labels(revision, str(sequence)).set(1)
        self.active_policies.set(policies)
        self.bundle_last_success.set(success_at)

    def track_age(self, age: Callable[[], float]) -> None:
        """Read the bundle age from ``age()`` at every scrape."""
        self.bundle_age.set_function(age)
