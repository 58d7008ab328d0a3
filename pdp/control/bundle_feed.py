"""The latest published bundle, kept in memory and current, and the long-polls waiting on it.

A publish on any replica commits a ``NOTIFY pdp_bundles``; one dedicated LISTEN connection per
replica hears it and reloads the latest bundle at once, which wakes every waiting long-poll within
milliseconds. Notifications can be lost (the LISTEN connection drops, PostgreSQL restarts), so the
feed also re-checks the latest sequence every few seconds and reconnects the listener when it is
gone: a lost notification delays an update by seconds, never loses it (DESIGN §8.6). When the
LISTEN connection closes (terminated backend, PostgreSQL restart) the feed re-opens it at once,
retrying within seconds while the database refuses; until it is back, ``listening`` is false and
readiness says so.

With ``--bundle-dir`` the feed is also the one writer of ``DIR/main.tar.gz``: whatever way this
replica learns of a newer bundle (start-up, its own publish, a NOTIFY, the re-check) the same step
writes it, so every replica's directory follows publishes made on any replica. A write that fails
is tried again at the next re-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from pdp.bundle.atomic import write_atomically
from pdp.control.bundle_store import BUNDLE_CHANNEL, BundleRecord, BundleStore
from pdp.control.database import CONNECTION_ERRORS, problem
from pdp.control.metrics import ControlMetrics

log = logging.getLogger(__name__)

# What a lost database means to the feed: log, keep the last bundle, try again at the next re-check.
_FEED_ERRORS = (*CONNECTION_ERRORS, asyncpg.PostgresError)
# How soon a lost LISTEN connection is tried again: 0.1 s, doubling, at most every 2 s.
LISTEN_RETRY_MIN_SECONDS = 0.1
LISTEN_RETRY_MAX_SECONDS = 2.0
# How long the LISTEN connection may take to answer a ping before it is re-opened.
LISTEN_PING_TIMEOUT_SECONDS = 5.0
# How often a held long-poll looks whether its client is still there.
ABANDONED_CHECK_SECONDS = 1.0
# The file in --bundle-dir holding the latest bundle (DESIGN §8.4; `main` is the bundle's name).
BUNDLE_FILE_NAME = "main.tar.gz"


class BundleDirectory:
    """``--bundle-dir``: the latest bundle, written atomically, never replaced by an older one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Guarded by a thread lock, not by the event loop: writes run in worker threads, and one
        # left running by a cancelled task must not land after a newer bundle's write.
        self._lock = threading.Lock()
        self._sequence = 0  # the highest sequence written

    async def write(self, record: BundleRecord) -> None:
        """Write `record` unless a bundle of its sequence or higher was written already.

        A failure is logged, not raised: the bundle is committed and served whatever the disk
        says, and the caller tries again later.
        """
        if record.sequence <= self._sequence:
            return
        try:
            await asyncio.to_thread(self._write, record)
        except OSError as exc:
            log.error("bundle %d not written to %s (tried again at the next re-check): %s",
                      record.sequence, self.path, exc)

    def _write(self, record: BundleRecord) -> None:
        with self._lock:
            if record.sequence <= self._sequence:
                return
            self.path.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path / BUNDLE_FILE_NAME, record.content)
            self._sequence = record.sequence


class BundleFeed:
    """Holds the latest bundle; ``wait_for_change`` is the long-poll primitive."""

    def __init__(self, dsn: str, store: BundleStore, *, metrics: ControlMetrics,
                 recheck_seconds: float = 2.0, bundle_dir: Path | None = None) -> None:
        self._dsn = dsn
        self._directory = None if bundle_dir is None else BundleDirectory(bundle_dir)
        self._store = store
        self._metrics = metrics
        self._recheck_seconds = recheck_seconds
        # Set when the LISTEN connection closes, so the re-check loop re-opens it without waiting.
        self._listener_lost = asyncio.Event()
        self._latest: BundleRecord | None = None
        # Replaced after every change; each waiter holds the event current when it began.
        self._changed = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._released = False

    @property
    def latest(self) -> BundleRecord | None:
        """The latest published bundle as last seen, or None before the first publish."""
        return self._latest

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (status and tests)."""
        return self._listener is not None and not self._listener.is_closed()

    async def start(self) -> None:
        """Load the latest bundle, start listening and start the periodic re-check."""
        await self._listen()
        await self.refresh()
        self._task = asyncio.create_task(self._recheck_forever(), name="pdp-bundle-feed")

    async def close(self) -> None:
        """Stop the re-check and close the LISTEN connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._pending):
            task.cancel()
        await self._close_listener()

    def release_waiters(self) -> None:
        """Answer every waiting long-poll now and make later ones return at once (shutdown)."""
        self._released = True
        self._changed.set()

    async def refresh(self) -> None:
        """Reload the latest bundle if a newer sequence exists, wake waiters if it changed, and
        bring the bundle directory up to date."""
        async with self._refresh_lock:
            known = self._latest.sequence if self._latest else 0
            if await self._store.latest_sequence() > known:
                latest = await self._store.latest()
                if latest is not None:
                    self._adopt(latest)
        await self._export()

    async def adopt(self, record: BundleRecord) -> None:
        """Take `record`, a bundle just committed, as the latest unless a newer one is known.

        The publisher calls this after its commit, so its own replica serves and writes the
        bundle without waiting for the NOTIFY round trip.
        """
        async with self._refresh_lock:
            self._adopt(record)
        await self._export()

    def _adopt(self, record: BundleRecord) -> None:
        # Notifications and refreshes race (several may be in flight); only ever move forward.
        if self._latest is not None and record.sequence <= self._latest.sequence:
            return
        self._latest = record
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _export(self) -> None:
        # Outside the refresh lock, so a slow disk never delays waking long-polls; the directory
        # itself refuses to go back a sequence, whatever order these calls finish in.
        latest = self._latest
        if self._directory is not None and latest is not None:
            await self._directory.write(latest)

    async def wait_for_change(self, etag: str | None, seconds: float, *,
                              abandoned: Callable[[], bool] | None = None) -> BundleRecord | None:
        """The latest bundle as soon as its ETag differs from `etag`, or after `timeout` seconds.

        Returns at once when the client's copy is already out of date; returns the unchanged latest
        bundle (possibly None) when `seconds` pass first, or within a second of `abandoned()`
        becoming true (the client went away: nobody is left to answer).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(seconds, 0.0)
        while True:
            event = self._changed
            latest = self._latest
            if latest is not None and latest.etag != etag:
                return latest
            remaining = deadline - loop.time()
            if remaining <= 0 or self._released or (abandoned is not None and abandoned()):
                return latest
            # Nothing tells a handler that its client is gone (aiohttp cancels it only with
            # handler_cancellation, which would also cancel publishes), so look every second.
            if abandoned is not None:
                remaining = min(remaining, ABANDONED_CHECK_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def _recheck_forever(self) -> None:
        retry = LISTEN_RETRY_MIN_SECONDS
        while True:
            # Without LISTEN, try again soon (doubling up to a cap), not at the next re-check:
            # a replica with a long --recheck-seconds must not stay deaf that long.
            pause = self._recheck_seconds if self.listening else min(retry, self._recheck_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listener_lost.wait(), pause)
            self._listener_lost.clear()
            try:
                if self.listening:
                    await self._ping_listener()
                if not self.listening:
                    await self._listen()
                    retry = (LISTEN_RETRY_MIN_SECONDS if self.listening
                             else min(retry * 2, LISTEN_RETRY_MAX_SECONDS))
                # Also after a re-opened LISTEN: notifications sent while it was down are lost.
                await self.refresh()
            except _FEED_ERRORS as exc:
                log.warning("bundle feed: cannot reach PostgreSQL, retrying: %s", exc)

    async def _ping_listener(self) -> None:
        """One round trip on the LISTEN connection at each re-check.

        A LISTEN connection only ever waits, so PostgreSQL's ``idle_session_timeout`` (or a
        NAT's idle expiry) closed it again and again: a warning and a moment deaf and unready
        every few seconds. The ping keeps it busy enough, and finds one that no longer answers.
        """
        conn = self._listener
        if conn is None:
            return
        try:
            # LISTEN again (a no-op) rather than SELECT 1: pg_stat_activity keeps showing the
            # connection's last statement as LISTEN, which is how people find it.
            await conn.execute(f'LISTEN "{BUNDLE_CHANNEL}"', timeout=LISTEN_PING_TIMEOUT_SECONDS)
        except _FEED_ERRORS as exc:
            log.warning("bundle feed: LISTEN connection not answering; re-opening it: %s",
                        problem(exc))
            await self._close_listener()

    async def _listen(self) -> None:
        await self._close_listener()
        try:
            conn = await asyncpg.connect(self._dsn, timeout=10)
            await conn.add_listener(BUNDLE_CHANNEL, self._on_notify)
        except _FEED_ERRORS as exc:
            log.warning("bundle feed: LISTEN connection failed, polling until it is back: %s", exc)
            return
        conn.add_termination_listener(self._on_listener_closed)
        self._listener = conn
        self._metrics.listening.set(1)
        log.info("bundle feed: listening for published bundles")

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        self._metrics.listening.set(0)
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(*CONNECTION_ERRORS):
                await conn.close(timeout=2)

    def _on_listener_closed(self, conn: asyncpg.Connection) -> None:
        if conn is self._listener:
            log.warning("bundle feed: LISTEN connection lost; re-opening it")
            self._metrics.listening.set(0)
            self._listener_lost.set()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        task = asyncio.get_running_loop().create_task(self.refresh_quietly())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def refresh_quietly(self) -> None:
        """`refresh`, logging rather than raising when PostgreSQL is unreachable (the periodic
        re-check catches up)."""
        try:
            await self.refresh()
        except _FEED_ERRORS as exc:
            log.warning("bundle feed: refresh after NOTIFY failed; the re-check retries: %s", exc)
