"""Health states (DESIGN §7.3) derived from one status object: "status is data".

:class:`RuntimeStatus` records what happened (downloads, activations, the last error); the health
state and readiness are *computed* from it and the active snapshot, never stored separately, so
they cannot disagree.

- ``starting``: no bundle yet; not ready; decisions fail closed.
- ``fresh``: a source delivered or confirmed the active bundle and its last fetch succeeded.
- ``last_known_good``: serving a persisted bundle no source has confirmed yet, or the latest
  fetch or activation failed while an older bundle keeps serving.
- ``stale``: past the manifest's ``expires_at`` or not confirmed within ``max_bundle_age``; what
  that means for decisions and readiness is the configured ``stale_action``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pdp.runtime.config import StaleAction
from pdp.runtime.snapshot import ActiveBundle


class HealthState(StrEnum):
    """The sidecar's health state."""

    STARTING = "starting"
    FRESH = "fresh"
    LAST_KNOWN_GOOD = "last_known_good"
    STALE = "stale"


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC text of Unix seconds, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class LastError:
    """The most recent failure of a source, an activation or the persisted bundle."""

    reason: str
    message: str
    source: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for status."""
        return {"reason": self.reason, "message": self.message, "source": self.source,
                "at": iso(self.at)}


def health_state(active: ActiveBundle | None, *, failing: bool, now: float) -> HealthState:
    """The health state for this snapshot at ``now``; ``failing``: the latest fetch failed."""
    if active is None:
        return HealthState.STARTING
    if now >= active.stale_at:
        return HealthState.STALE
    if failing or active.from_persisted:
        return HealthState.LAST_KNOWN_GOOD
    return HealthState.FRESH


def is_ready(state: HealthState, stale_action: StaleAction) -> bool:
    """Readiness follows the state: never while starting; when stale, only if still answering."""
    if state is HealthState.STARTING:
        return False
    if state is HealthState.STALE:
        return stale_action != "fail_closed"
    return True


class RuntimeStatus:
    """What happened to the bundle pipeline, as data; written by activation, read by anyone.

    Only the event loop writes it; readers on other threads see each attribute either before or
    after an update, which is all status needs.
    """

    def __init__(self, *, instance_id: str, labels: dict[str, str], stale_action: StaleAction,
                 started_at: float) -> None:
        self.instance_id = instance_id
        self.labels = dict(labels)
        self.stale_action: StaleAction = stale_action
        self.started_at = started_at
        self.last_download_at: float | None = None
        self.last_activation_at: float | None = None
        self.last_success_at: float | None = None
        self.last_error: LastError | None = None
        self.failing = False
        self.keyring_ids: tuple[str, ...] = ()
        self.verification_skipped = False

    def record_download(self, now: float) -> None:
        """A source produced something (a bundle, a confirmation or an error)."""
        self.last_download_at = now

    def record_success(self, now: float, *, activated: bool) -> None:
        """A source's bundle was activated, or confirmed unchanged; clears ``failing``."""
        self.last_success_at = now
        if activated:
            self.last_activation_at = now
        self.failing = False

    def record_failure(self, error: LastError, *, affects_freshness: bool = True) -> None:
        """Something failed; ``affects_freshness`` is False for failures that leave the served
        bundle as current as before (persisting a copy, a corrupt persisted file)."""
        self.last_error = error
        if affects_freshness:
            self.failing = True

    def state(self, active: ActiveBundle | None, now: float) -> HealthState:
        """The health state now."""
        return health_state(active, failing=self.failing, now=now)

    def ready(self, active: ActiveBundle | None, now: float) -> bool:
        """Readiness now, derived from the state and the stale action."""
        return is_ready(self.state(active, now), self.stale_action)

    def as_dict(self, active: ActiveBundle | None, now: float) -> dict[str, Any]:
        """The status document of ``GET /v1/status`` and the control-plane report."""
        state = self.state(active, now)
        bundle: dict[str, Any] | None = None
        if active is not None:
            bundle = {
                "revision": active.revision,
                "sequence": active.sequence,
                "content_hash": active.content_hash,
                "source": active.source,
                "etag": active.etag,
                "key_id": active.loaded.key_id,
                "verified": active.loaded.verified,
                "policies": len(active.policy_set.policies),
                "activated_at": iso(active.activated_at),
                "confirmed_at": iso(active.confirmed_at),
                "expires_at": iso(active.expires_at),
                "age_seconds": round(max(0.0, now - active.confirmed_at), 3),
            }
        return {
            "instance_id": self.instance_id,
            "labels": dict(self.labels),
            "state": state.value,
            "ready": is_ready(state, self.stale_action),
            "stale_action": self.stale_action,
            "revision": active.revision if active else None,
            "sequence": active.sequence if active else None,
            "age_seconds": bundle["age_seconds"] if bundle else None,
            "bundle": bundle,
            "last_download_at": iso(self.last_download_at),
            "last_activation_at": iso(self.last_activation_at),
            "last_success_at": iso(self.last_success_at),
            "last_error": self.last_error.as_dict() if self.last_error else None,
            "keyring": list(self.keyring_ids),
            "verification_skipped": self.verification_skipped,
            "started_at": iso(self.started_at),
        }
