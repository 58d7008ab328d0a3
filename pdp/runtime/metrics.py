"""Prometheus metrics of the sidecar (DESIGN §7.5), registered on an injected registry.

Nothing registers on prometheus-client's global registry, so two engines (or two tests) in one
process never collide. The shells expose ``registry`` on ``GET /metrics`` and count their requests
with :attr:`RuntimeMetrics.http_requests` / :attr:`RuntimeMetrics.grpc_requests`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Decisions take microseconds to a few milliseconds; the default buckets start at 5 ms.
_DECISION_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                     0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class RuntimeMetrics:
    """The runtime's metric families on one registry, with cached children for the hot path."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.validations = Counter(
            "policy_engine_validations", "Decisions by query and result.",
            ["query", "result"], registry=registry)
        self.validation_duration = Histogram(
            "policy_engine_validation_duration_seconds", "Time to validate input and decide.",
            ["query"], buckets=_DECISION_BUCKETS, registry=registry)
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
        self._validation_children: dict[tuple[str, str], Counter] = {}
        self._duration_children: dict[str, Histogram] = {}

    def observe_decision(self, query: str, result: str, seconds: float) -> None:
        """Count one decision and its duration (label children are cached: this is per request)."""
        key = (query, result)
        counter = self._validation_children.get(key)
        if counter is None:
            counter = self._validation_children[key] = self.validations.labels(query, result)
        counter.inc()
        histogram = self._duration_children.get(query)
        if histogram is None:
            histogram = self._duration_children[query] = self.validation_duration.labels(query)
        histogram.observe(seconds)

    def count_dryrun(self, query: str, findings: list[dict[str, Any]]) -> None:
        """Count the findings of dryrun policies: shadow mode is visible here and in the log."""
        for finding in findings:
            self.dryrun_findings.labels(query, str(finding.get("policy_id", ""))).inc()

    def count_refusal(self, query: str, result: str) -> None:
        """Count a decision that was refused before evaluation (bad input, not ready)."""
        self.validations.labels(query, result).inc()

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
