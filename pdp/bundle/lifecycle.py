"""A bundle's place in time: anti-rollback between the active bundle and a candidate, and
freshness (DESIGN §6 and §7.3)."""

from __future__ import annotations

from typing import Literal, Protocol

from pdp.bundle.errors import ExpiredBundleError, RollbackError
from pdp.bundle.manifest import MANIFEST_FILE, Manifest, format_timestamp

Verdict = Literal["activate", "unchanged"]
Freshness = Literal["fresh", "stale"]


class Versioned(Protocol):
    """Anything with a manifest and a content hash: parsed contents or a loaded bundle."""

    @property
    def manifest(self) -> Manifest:
        """The bundle's manifest."""
        ...

    @property
    def content_hash(self) -> str:
        """The bundle's content hash."""
        ...


def check_candidate(
    active: Versioned | None, candidate: Versioned, *, allow_downgrade: bool = False
) -> Verdict:
    """Decide whether ``candidate`` may replace ``active``.

    Returns ``"unchanged"`` for the same content (nothing to do) and ``"activate"`` otherwise;
    raises :class:`RollbackError` for a lower sequence, or the same sequence with other content,
    unless ``allow_downgrade`` is set.
    """
    if active is None:
        return "activate"
    if candidate.content_hash == active.content_hash:
        return "unchanged"
    current, offered = active.manifest.sequence, candidate.manifest.sequence
    if allow_downgrade or offered > current:
        return "activate"
    if offered < current:
        raise RollbackError(
            "sequence_rollback",
            f"{MANIFEST_FILE}: sequence {offered} is lower than the active bundle's {current} "
            "(anti-rollback; allow_downgrade is off)",
            file=MANIFEST_FILE,
        )
    raise RollbackError(
        "sequence_conflict",
        f"{MANIFEST_FILE}: sequence {offered} equals the active bundle's but the content differs",
        file=MANIFEST_FILE,
    )


def is_expired(manifest: Manifest, *, now: float) -> bool:
    """Whether ``now`` (Unix seconds) is at or past the manifest's ``expires_at``."""
    return manifest.expires_at is not None and now >= manifest.expires_at.timestamp()


def check_not_expired(manifest: Manifest, *, now: float) -> None:
    """Refuse a bundle already past its ``expires_at``."""
    expires = manifest.expires_at
    if expires is not None and now >= expires.timestamp():
        raise ExpiredBundleError(
            "bundle_expired",
            f"{MANIFEST_FILE}: the bundle expired at {format_timestamp(expires)}",
            file=MANIFEST_FILE,
        )


def freshness(
    manifest: Manifest, *, activated_at: float, now: float, max_age: float | None
) -> Freshness:
    """``"stale"`` when past ``expires_at`` or ``max_age`` seconds after ``activated_at``.

    ``activated_at`` is when the bundle was last confirmed current by its source (activated, or
    a 304 from the bundle server): a policy set nobody changed is not stale merely for being old.
    """
    if is_expired(manifest, now=now):
        return "stale"
    if max_age is not None and now - activated_at > max_age:
        return "stale"
    return "fresh"
