"""The control plane's Prometheus metrics, on a registry the caller owns (never the global one).

``GET /metrics`` is served without a token on the control plane's own address: that is how
Prometheus scrapes, and nothing here is secret (counts of publishes, downloads and sidecars per
revision). Operators who must hide it keep the admin port off the public network, as they should
anyway; see docs/decisions.md (Fleet convergence).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

# The text exposition format, version 0.0.4, as prometheus_client writes it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ControlMetrics:
    """Publishes, bundle downloads, waiting long-polls, LISTEN state and fleet size per revision."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.publishes = Counter(
            "pdp_control_publishes_total",
            "Publish and rollback attempts on this replica, by action and result.",
            ["action", "result"], registry=registry,
        )
        self.bundle_downloads = Counter(
            "pdp_control_bundle_downloads_total",
            "Answers of GET /bundles/main on this replica, by HTTP status (200 or 304).",
            ["status"], registry=registry,
        )
        self.long_polls_waiting = Gauge(
            "pdp_control_long_polls_waiting",
            "Bundle requests held by this replica until a newer bundle or their wait ends.",
            registry=registry,
        )
        self.listening = Gauge(
            "pdp_control_listen_connected",
            "1 while this replica's LISTEN connection to PostgreSQL is up, else 0.",
            registry=registry,
        )
        self.fleet_sidecars = Gauge(
            "pdp_control_fleet_sidecars",
            "Sidecars that reported within the expiry window, by the revision they run.",
            ["revision"], registry=registry,
        )
        self.sidecars_expired = Counter(
            "pdp_control_sidecars_expired_total",
            "Sidecar records deleted by this replica because they stopped reporting.",
            registry=registry,
        )

    def set_fleet(self, per_revision: Mapping[str, int]) -> None:
        """Replace the fleet gauge: revisions no sidecar runs any more disappear from it."""
        self.fleet_sidecars.clear()
        for revision, count in per_revision.items():
            self.fleet_sidecars.labels(revision=revision).set(count)

    def exposition(self) -> bytes:
        """Every metric of the registry in Prometheus' text format."""
        return generate_latest(self.registry)
