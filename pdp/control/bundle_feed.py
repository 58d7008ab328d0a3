"""The latest published bundle, kept in memory and current, and the long-polls waiting on it.

A publish on any replica commits a ``NOTIFY pdp_bundles``; one dedicated LISTEN connection per
replica hears it and reloads the latest bundle at once, which wakes every waiting long-poll within
milliseconds. Notifications can be lost (the LISTEN connection drops, PostgreSQL restarts), so the
feed also re-checks the latest sequence every few seconds and reconnects the listener when it is
gone: a lost notification delays an update by seconds, never loses it (DESIGN §8.6). When the
LISTEN connection closes (terminated backend, PostgreSQL restart) the feed re-opens it at once,
retrying within seconds while the database refuses; until it is back, ``listening`` is false and
readiness says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from pdp.control.bundle_store import BUNDLE_CHANNEL, BundleRecord, BundleStore
from pdp.control.database import CONNECTION_ERRORS
from pdp.control.metrics import ControlMetrics

log = logging.getLogger(__name__)

# What a lost database means to the feed: log, keep the last bundle, try again at the next re-check.
_FEED_ERRORS = (*CONNECTION_ERRORS, asyncpg.PostgresError)
# How soon a lost LISTEN connection is tried again: 0.1 s, doubling, at most every 2 s.
LISTEN_RETRY_MIN_SECONDS = 0.1
LISTEN_RETRY_MAX_SECONDS = 2.0


class BundleFeed:
    """Holds the latest bundle; ``wait_for_change`` is the long-poll primitive."""

    def __init__(self, dsn: str, store: BundleStore, *, metrics: ControlMetrics,
                 recheck_seconds: float = 2.0) -> None:
        self._dsn = dsn
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
        """Reload the latest bundle if a newer sequence exists, and wake waiters if it changed."""
        async with self._refresh_lock:
            known = self._latest.sequence if self._latest else 0
            if await self._store.latest_sequence() == known:
                return
            latest = await self._store.latest()
            if latest is None:
                return
            self._latest = latest
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def wait_for_change(self, etag: str | None, seconds: float) -> BundleRecord | None:
        """The latest bundle as soon as its ETag differs from `etag`, or after `timeout` seconds.

        Returns at once when the client's copy is already out of date; returns the unchanged latest
        bundle (possibly None) when `seconds` pass first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(seconds, 0.0)
        while True:
            event = self._changed
            latest = self._latest
            if latest is not None and latest.etag != etag:
                return latest
            remaining = deadline - loop.time()
            if remaining <= 0 or self._released:
                return latest
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return self._latest

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
                if not self.listening:
                    await self._listen()
                    retry = (LISTEN_RETRY_MIN_SECONDS if self.listening
                             else min(retry * 2, LISTEN_RETRY_MAX_SECONDS))
                # Also after a re-opened LISTEN: notifications sent while it was down are lost.
                await self.refresh()
            except _FEED_ERRORS as exc:
                log.warning("bundle feed: cannot reach PostgreSQL, retrying: %s", exc)

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
