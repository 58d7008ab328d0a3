"""What a bundle source hands to activation: the downloader → callback split of OPA.

A source only fetches. It yields one value per outcome, and activation consumes them:

- :class:`BundleUpdate`: candidate bundle bytes (or a path to a .tar.gz or directory) to verify;
- :class:`BundleUnchanged`: the source checked and its bundle is still the one it last delivered
  (an HTTP 304); this keeps the active bundle fresh without reading it again;
- :class:`~pdp.runtime.errors.SourceError`: this fetch failed; the source keeps trying.

Because the values are plain data, activation is tested by feeding hand-built updates, and each
source is tested alone by reading what it yields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pdp.runtime.errors import SourceError


@dataclass(frozen=True, slots=True)
class BundleUpdate:
    """A candidate bundle from a source.

    ``data`` is the bundle itself (bytes of a .tar.gz) or a path to a .tar.gz file or a bundle
    directory; ``etag`` is the source's version tag, if it has one; ``source`` names the source
    in status, logs and metrics (``file``, ``http``, ``persisted``...).
    """

    data: bytes | Path
    etag: str | None = None
    source: str = "file"


@dataclass(frozen=True, slots=True)
class BundleUnchanged:
    """The source confirmed that the bundle it last delivered is still current (HTTP 304)."""

    etag: str | None = None
    source: str = "http"


SourceEvent = BundleUpdate | BundleUnchanged | SourceError
"""One outcome of a source's fetch."""


@runtime_checkable
class BundleSource(Protocol):
    """Where bundles come from: a file watched on disk, the control plane's bundle server...

    ``updates()`` runs until ``close()`` is called (then the iterator ends); a failed fetch is
    yielded as a :class:`SourceError` value, never raised. ``request_sync()`` asks for an
    immediate fetch (``POST /v1/bundles/sync``) and returns at once.
    """

    name: str

    def updates(self) -> AsyncIterator[SourceEvent]:
        """Yield one event per fetch outcome until the source is closed."""
        ...

    def request_sync(self) -> None:
        """Ask for a fetch now instead of at the next scheduled time; never blocks."""
        ...

    async def close(self) -> None:
        """Stop fetching; the iterator returned by :meth:`updates` then ends."""
        ...
