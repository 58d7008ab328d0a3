"""`FileSource`: ``--bundle PATH`` (a .tar.gz or a bundle directory) watched with watchfiles.

The *parent* directory is watched, not only the path, because the common ways of publishing a
file replace it rather than write to it: ``mv new.tar.gz bundle.tar.gz`` (an atomic rename), or a
Kubernetes ConfigMap volume swapping its ``..data`` symlink. Events there are gathered for the
debounce interval, then the path's signature (inode, size, modification time of every file) is
compared with the last one delivered; only a change, or an explicit sync request, yields an update.
Rewriting the file in place changes its size or modification time, so it is caught as well.

With ``confirm_seconds`` the path is also looked at on that period, and an unchanged file is
reported as :class:`BundleUnchanged`: a bundle's age counts from its source's last confirmation,
and a file nobody changed must not make the sidecar stale under ``max_bundle_age``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path

from watchfiles import awatch

from pdp.runtime.errors import SourceError
from pdp.runtime.source import BundleUnchanged, BundleUpdate, SourceEvent

logger = logging.getLogger(__name__)

# How often a watcher whose directory does not exist (yet) looks for it again.
_MISSING_DIR_POLL_SECONDS = 0.5

Signature = tuple[tuple[str, int, int, int], ...]


def _watch_roots(paths: Sequence[Path]) -> tuple[list[Path], bool]:
    # Directories to watch and whether recursively: a bundle or key *directory* needs its
    # contents watched too; a file only its parent's entries.
    roots: set[Path] = set()
    recursive = False
    for path in paths:
        parent = path.absolute().parent
        if _is_dir(parent):
            roots.add(parent)
        if _is_dir(path):
            recursive = True
    return sorted(roots), recursive


def _is_dir(path: Path) -> bool:
    # Path.is_dir() raises PermissionError (a directory made unreadable for a moment), which
    # ended the watch for good; unreadable counts as absent until it is readable again.
    try:
        return path.is_dir()
    except OSError:
        return False


def _identity(roots: Sequence[Path]) -> list[tuple[Path, int, int]]:
    # A directory removed and created again is a new inode that the old watch no longer sees.
    found = []
    for root in roots:
        with contextlib.suppress(OSError):
            st = root.stat()
            found.append((root, st.st_dev, st.st_ino))
    return found


async def watch_paths(paths: Sequence[Path], *, debounce_ms: int,
                      stop: asyncio.Event) -> AsyncIterator[None]:
    """Yield once per debounced batch of filesystem changes near ``paths``, until ``stop``.

    Yields nothing by itself at start (callers read their files once before watching). When a
    watched directory is removed or replaced, the watch is rebuilt on the new directory as soon as
    it exists, with one extra yield so the caller looks again.
    """
    watched: list[tuple[Path, int, int]] | None = None
    while not stop.is_set():
        roots, recursive = _watch_roots(paths)
        identity = _identity(roots)
        if watched is not None and identity != watched:
            yield None
        watched = identity
        if not roots:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _MISSING_DIR_POLL_SECONDS)
            continue
        try:
            batches = awatch(*roots, debounce=debounce_ms, step=min(50, debounce_ms),
                             recursive=recursive, stop_event=stop,
                             ignore_permission_denied=True)
            async with contextlib.aclosing(batches):
                async for _changes in batches:
                    yield None
                    if _identity(roots) != watched:
                        break  # closing the generator releases its OS watch
        except (FileNotFoundError, RuntimeError) as exc:
            # The directory went away between looking and watching: look for it again.
            logger.warning("file watch interrupted; restarting", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _MISSING_DIR_POLL_SECONDS)


def signature(path: Path) -> Signature | None:
    """What identifies the current content of ``path`` cheaply; None when it does not exist."""
    try:
        top = path.stat()
    except FileNotFoundError:
        return None
    if not path.is_dir():
        return (("", top.st_ino, top.st_size, top.st_mtime_ns),)
    entries: list[tuple[str, int, int, int]] = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = Path(root, name)
            try:
                st = full.stat()
            except FileNotFoundError:
                continue  # removed while we walked: the next event will catch up
            entries.append((str(full.relative_to(path)), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(sorted(entries))


# What `last` holds after a look that failed: unequal to any signature, so the next good look
# counts as a change.
_UNREADABLE: Signature = (("<unreadable>", -1, -1, -1),)


def _etag(current: Signature) -> str:
    return hashlib.sha256(repr(current).encode()).hexdigest()[:16]


class FileSource:
    """A bundle file or directory on local disk, yielding an update whenever it changes."""

    def __init__(self, path: Path, *, debounce_ms: int = 200, name: str = "file",
                 confirm_seconds: float | None = None) -> None:
        self.path = path
        self.name = name
        self._debounce_ms = debounce_ms
        self._confirm_seconds = confirm_seconds
        self._wake: asyncio.Queue[str] = asyncio.Queue()
        self._stop = asyncio.Event()

    def request_sync(self) -> None:
        """Read the bundle again now, even if nothing seems to have changed."""
        self._wake.put_nowait("sync")

    async def close(self) -> None:
        """Stop watching; :meth:`updates` then ends."""
        self._stop.set()
        self._wake.put_nowait("stop")

    async def updates(self) -> AsyncGenerator[SourceEvent, None]:
        """Yield the bundle now, then again after every change, until closed."""
        watcher = asyncio.get_running_loop().create_task(self._forward_changes(),
                                                         name=f"watch-{self.name}")
        try:
            last: Signature | None = None
            reason = "start"
            while not self._stop.is_set():
                try:
                    current = await asyncio.to_thread(signature, self.path)
                except OSError as exc:
                    # Unreadable for now (permissions being changed, no file descriptors
                    # left): say so and keep watching; the source used to end here for good.
                    yield SourceError(f"cannot read bundle path {self.path}: "
                                      f"{exc.strerror or exc}", reason="unreadable",
                                      source=self.name)
                    last = _UNREADABLE
                else:
                    if current != last or reason == "sync" or reason == "start":
                        last = current
                        yield self._event(current)
                    elif reason == "confirm" and current is not None:
                        yield BundleUnchanged(etag=_etag(current), source=self.name)
                try:
                    reason = await asyncio.wait_for(self._wake.get(), self._confirm_seconds)
                except TimeoutError:
                    reason = "confirm"
                # Changes that piled up while a slow activation ran need one look, not many.
                while not self._wake.empty():
                    queued = self._wake.get_nowait()
                    if reason == "change":
                        reason = queued
        finally:
            self._stop.set()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _event(self, current: Signature | None) -> SourceEvent:
        if current is None:
            return SourceError(f"bundle path {self.path} does not exist", reason="not_found",
                               source=self.name)
        return BundleUpdate(data=self.path, etag=_etag(current), source=self.name)

    async def _forward_changes(self) -> None:
        async for _ in watch_paths([self.path], debounce_ms=self._debounce_ms, stop=self._stop):
            self._wake.put_nowait("change")
