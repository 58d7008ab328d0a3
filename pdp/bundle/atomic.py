"""Writing a bundle (or key) file so that a reader sees the old file or the new one, never half.

Every writer of bundle files goes through :func:`write_atomically`: the sidecar's persisted
last-known-good bundle, the control plane's ``--bundle-dir``, ``pdp bundle build -o`` and the
``--dev`` bundle. A watcher (the sidecar's FileSource) or a crash mid-write must never observe a
truncated archive.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644,
                     mtime: float | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory, fsync it, rename it
    over ``path`` and fsync the directory, so the rename itself survives a crash.

    ``mode`` is applied before the rename (``mkstemp`` creates 0600); ``mtime``, when given, sets
    the file's access and modification times (the sidecar stores "last confirmed" there).
    An ``OSError`` names ``path``, never the temporary file: ``path`` is the name the caller gave
    and can act on (a missing directory, a directory in the way, permissions).
    """
    try:
        _replace_with(path, data, mode=mode, mtime=mtime)
    except OSError as exc:
        if exc.errno is None or exc.filename == str(path):
            raise
        # OSError(errno, ...) builds the matching subclass (FileNotFoundError, IsADirectoryError).
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _replace_with(path: Path, data: bytes, *, mode: int, mtime: float | None) -> None:
    directory = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        if mtime is not None:
            os.utime(temp, (mtime, mtime))
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
