"""`ActiveBundle`: the immutable snapshot that answers decisions.

The engine holds exactly one reference to an :class:`ActiveBundle` and replaces it by assignment,
so a decision that read the reference finishes on that snapshot whatever happens meanwhile, and
every answer is attributable to exactly one revision. Even a confirmation from the source (which
moves the staleness deadline) is a new snapshot, never a mutation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pdp.bundle import LoadedBundle
    from pdp.core import PolicySet


def stale_deadline(
    expires_at: float | None, confirmed_at: float, max_age_seconds: float | None
) -> float:
    """When a bundle confirmed at ``confirmed_at`` becomes stale (``inf``: never)."""
    deadline = math.inf
    if expires_at is not None:
        deadline = expires_at
    if max_age_seconds is not None:
        deadline = min(deadline, confirmed_at + max_age_seconds)
    return deadline


@dataclass(frozen=True, slots=True)
class ActiveBundle:
    """One verified, compiled bundle as it is being served.

    ``activated_at`` is when this content was swapped in; ``confirmed_at`` when a source last
    delivered or confirmed it (a persisted bundle keeps the time it was last confirmed before the
    restart); ``stale_at`` is precomputed so a decision checks staleness with one comparison.
    """

    loaded: LoadedBundle
    revision: str
    sequence: int
    content_hash: str
    source: str
    etag: str | None
    activated_at: float
    confirmed_at: float
    expires_at: float | None
    stale_at: float

    @property
    def policy_set(self) -> PolicySet:
        """The compiled policies and data of this bundle."""
        return self.loaded.policy_set

    @property
    def from_persisted(self) -> bool:
        """True while the bundle came from the persist directory and no source has confirmed it."""
        return self.source == "persisted"

    def confirmed(
        self, *, at: float, source: str, etag: str | None, max_age_seconds: float | None
    ) -> ActiveBundle:
        """This bundle as confirmed current by ``source`` at ``at`` (a new snapshot)."""
        return replace(
            self,
            source=source,
            etag=etag if etag is not None else self.etag,
            confirmed_at=at,
            stale_at=stale_deadline(self.expires_at, at, max_age_seconds),
        )


def make_active(
    loaded: LoadedBundle,
    *,
    source: str,
    etag: str | None,
    activated_at: float,
    confirmed_at: float,
    max_age_seconds: float | None,
) -> ActiveBundle:
    """Build the snapshot of a freshly loaded bundle."""
    manifest = loaded.contents.manifest
    expires_at = manifest.expires_at.timestamp() if manifest.expires_at else None
    return ActiveBundle(
        loaded=loaded,
        revision=str(manifest.revision),
        sequence=int(manifest.sequence),
        content_hash=loaded.contents.content_hash,
        source=source,
        etag=etag,
        activated_at=activated_at,
        confirmed_at=confirmed_at,
        expires_at=expires_at,
        stale_at=stale_deadline(expires_at, confirmed_at, max_age_seconds),
    )
