"""`BundleStore`: the last activated bundle kept on local disk for a cold start (DESIGN §7.1).

The bundle's signed bytes are written atomically: a temporary file in the same directory is
written and fsynced, renamed over ``bundle.tar.gz``, and the directory is fsynced so the rename
itself survives a crash. A reader therefore sees either the previous bundle or the new one, whole.
The file's modification time records when a source last confirmed the bundle, so staleness by
``max_bundle_age`` carries across restarts. Nothing here trusts the file: it is re-verified like
any other candidate when it is loaded.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from pdp.bundle.atomic import write_atomically

BUNDLE_FILE = "bundle.tar.gz"


@dataclass(frozen=True, slots=True)
class PersistedBundle:
    """Bytes read back from the persist directory and when they were last confirmed."""

    data: bytes
    confirmed_at: float
    path: Path


class BundleStore:
    """One persisted bundle in ``directory``; every method blocks (call it in a worker thread)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / BUNDLE_FILE

    def save(self, data: bytes, *, confirmed_at: float) -> None:
        """Replace the persisted bundle with ``data`` atomically and durably."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, data, mtime=confirmed_at)

    def touch(self, confirmed_at: float) -> None:
        """Record that the persisted bundle was confirmed current at ``confirmed_at``."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path, (confirmed_at, confirmed_at))

    def load(self) -> PersistedBundle | None:
        """The persisted bundle, or None when there is none; raises OSError if unreadable."""
        try:
            with self.path.open("rb") as handle:
                data = handle.read()
                confirmed_at = os.fstat(handle.fileno()).st_mtime
        except FileNotFoundError:
            return None
        return PersistedBundle(data=data, confirmed_at=confirmed_at, path=self.path)
