"""`BundleStore`: the last activated bundle kept on local disk for a cold start (DESIGN §7.1).

The bundle's signed bytes are written atomically: a temporary file in the same directory is
written and fsynced, renamed over ``bundle.tar.gz``, and the directory is fsynced so the rename
itself survives a crash. A reader therefore sees either the previous bundle or the new one, whole.
The file's modification time records when a source last confirmed the bundle, so staleness by
``max_bundle_age`` carries across restarts. Nothing here trusts the file: it is re-verified like
any other candidate when it is loaded, and before that it must be a regular file (not a symbolic
link, a FIFO that would block the start-up for good, or a link to ``/dev/zero`` that would fill
the memory) no larger than a bundle can be; anything else is a :class:`CorruptPersistedFile`,
which the activator reports and ignores (DESIGN §7.1). The directory is created 0700: it holds
the policies and data, which are no one else's to read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pdp.bundle import Limits
from pdp.bundle.atomic import write_atomically

BUNDLE_FILE = "bundle.tar.gz"

ARCHIVE_OVERHEAD_BYTES = 16 * 1024 * 1024
"""Tar headers and gzip framing on top of a bundle's files: generous, only a memory bound."""


def max_archive_bytes(limits: Limits) -> int:
    """The largest bundle file worth reading under ``limits``: its files' bytes plus framing."""
    return limits.max_total_bytes + ARCHIVE_OVERHEAD_BYTES


MAX_PERSISTED_BYTES = max_archive_bytes(Limits())
"""The largest persisted file loaded under the default limits, as for any other candidate."""


class CorruptPersistedFile(OSError):
    """The persisted path holds something that cannot be a persisted bundle."""


@dataclass(frozen=True, slots=True)
class PersistedBundle:
    """Bytes read back from the persist directory and when they were last confirmed."""

    data: bytes
    confirmed_at: float
    path: Path


class BundleStore:
    """One persisted bundle in ``directory``; every method blocks (call it in a worker thread)."""

    def __init__(self, directory: Path, *, max_bytes: int = MAX_PERSISTED_BYTES) -> None:
        self.directory = directory
        self.path = directory / BUNDLE_FILE
        self._max_bytes = max_bytes

    def save(self, data: bytes, *, confirmed_at: float) -> None:
        """Replace the persisted bundle with ``data`` atomically and durably."""
        # Not left to the umask (0777 under umask 000): the bundle's policies and data are private.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(self.path, data, mtime=confirmed_at)

    def touch(self, confirmed_at: float) -> None:
        """Record that the persisted bundle was confirmed current at ``confirmed_at``."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path, (confirmed_at, confirmed_at))

    def load(self) -> PersistedBundle | None:
        """The persisted bundle, or None when there is none; raises OSError if unreadable
        (:class:`CorruptPersistedFile` if it is not a regular file of a bundle's size)."""
        try:
            # Never follow a link nor wait for a FIFO's writer: only save()'s regular file counts.
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CorruptPersistedFile(f"{self.path}: corrupt persisted bundle: a symbolic "
                                           "link, not a regular file") from None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise CorruptPersistedFile(f"{self.path}: corrupt persisted bundle: not a "
                                           "regular file")
            with open(fd, "rb", closefd=False) as handle:
                data = handle.read(self._max_bytes + 1)
        finally:
            os.close(fd)
        if len(data) > self._max_bytes:
            raise CorruptPersistedFile(f"{self.path}: corrupt persisted bundle: larger than "
                                       f"the {self._max_bytes}-byte limit")
        return PersistedBundle(data=data, confirmed_at=info.st_mtime, path=self.path)
