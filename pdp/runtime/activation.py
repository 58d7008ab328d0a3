"""`Activator`: read → verify → compile → test → anti-rollback → swap → persist (DESIGN §7.1).

Activation consumes what sources yield. Each candidate is loaded by the bundle layer in a worker
thread (verification and compilation of a big bundle take CPU time, and decisions must keep
flowing meanwhile), compared with the active snapshot, and swapped in with one assignment. A refused
candidate changes nothing that serves: it only shows in status, logs and metrics. Activations are
serialised by one lock, so two sources can never interleave their checks and swaps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from pdp.bundle import (
    BundleError,
    Keyring,
    Limits,
    LoadedBundle,
    UnsafeArchiveError,
    check_candidate,
    compile_bundle,
    open_bundle,
    read_directory,
    write_archive,
)
from pdp.runtime.errors import ActivationError, SourceError
from pdp.runtime.health import LastError, RuntimeStatus
from pdp.runtime.metrics import RuntimeMetrics
from pdp.runtime.persist import BundleStore, CorruptPersistedFile, max_archive_bytes
from pdp.runtime.snapshot import ActiveBundle, make_active
from pdp.runtime.source import BundleUnchanged, BundleUpdate, SourceEvent

logger = logging.getLogger(__name__)

PERSISTED = "persisted"
"""The source name of a bundle restored from the persist directory."""


def read_candidate(data: bytes | Path, limits: Limits) -> bytes:
    """The bytes of a candidate bundle: read once, so what is verified is what is persisted.

    A file larger than the unpacked-size limit cannot be a valid bundle (gzip never makes a
    bundle's files bigger by more than headers), so it is refused before it is read into memory.
    """
    if isinstance(data, bytes):
        return data
    if data.is_dir():
        # A directory is read (with the archive rules) and packed, so the persisted copy is a
        # plain .tar.gz whose content hash equals the directory's.
        return write_archive(read_directory(data, limits))
    ceiling = max_archive_bytes(limits)
    with data.open("rb") as handle:
        raw = handle.read(ceiling + 1)
    if len(raw) > ceiling:
        raise UnsafeArchiveError(
            "total_too_large",
            f"{data}: the file is larger than the {limits.max_total_bytes}-byte bundle limit",
            file=str(data))
    return raw


class Activator:
    """Turns source events into activations of the engine's one active snapshot."""

    def __init__(
        self,
        *,
        keyring: Keyring,
        status: RuntimeStatus,
        metrics: RuntimeMetrics,
        current: Callable[[], ActiveBundle | None],
        swap: Callable[[ActiveBundle], None],
        clock: Callable[[], float],
        store: BundleStore | None = None,
        limits: Limits | None = None,
        skip_verification: bool = False,
        allow_downgrade: bool = False,
        max_age_seconds: float | None = None,
    ) -> None:
        self.keyring = keyring
        self._status = status
        self._metrics = metrics
        self._current = current
        self._swap = swap
        self._clock = clock
        self._store = store
        self._limits = limits or Limits()
        self._skip_verification = skip_verification
        self._allow_downgrade = allow_downgrade
        self._max_age = max_age_seconds
        self._lock = asyncio.Lock()

    async def handle(self, event: SourceEvent) -> None:
        """Act on one source event; failures are recorded, never raised (the source goes on)."""
        if isinstance(event, BundleUpdate):
            try:
                await self.activate(event)
            except ActivationError:
                pass  # already in status, logs and metrics
        elif isinstance(event, BundleUnchanged):
            await self.confirm(event.source, event.etag)
        else:
            self.record_source_error(event)

    async def activate(self, update: BundleUpdate) -> ActiveBundle:
        """Verify, compile and test ``update``, then make it the active bundle.

        Returns the snapshot now active (the current one when the content is unchanged); raises
        :class:`ActivationError` when the candidate is refused, leaving the active bundle as it was.
        """
        async with self._lock:
            now = self._clock()
            persisted = update.source == PERSISTED
            if not persisted:
                self._status.record_download(now)
            active = self._current()
            try:
                data, loaded = await asyncio.to_thread(self._load, update, active, now)
            except BundleError as exc:
                raise self._refused(update.source, exc.reason, str(exc)) from exc
            except OSError as exc:
                raise self._refused(update.source, "read_error",
                                    f"cannot read bundle: {exc}") from exc
            except Exception as exc:
                # A bug or an unforeseen input must refuse this candidate, not kill the source.
                logger.exception("unexpected error while loading a bundle")
                raise self._refused(update.source, "internal_error",
                                    f"unexpected error while loading the bundle: {exc!r}") from exc
            if loaded is None:
                return await self._confirm_locked(update.source, update.etag, now)
            return await self._swap_in(loaded, data, update, now)

    async def confirm(self, source: str, etag: str | None) -> None:
        """A source says its bundle is unchanged: the active bundle is fresh again, if the
        bundle it means is the active one.

        An HTTP source's ETag is that of the last bundle it *delivered*, which may have been
        refused: a 304 for that one says nothing about the bundle being served, which stays
        last-known-good (and goes stale with ``max_bundle_age``).
        """
        async with self._lock:
            now = self._clock()
            self._status.record_download(now)
            active = self._current()
            if active is not None and (etag is None or etag == active.etag):
                await self._confirm_locked(source, etag, now)

    def record_source_error(self, error: SourceError) -> None:
        """A source failed to fetch: the active bundle is now only last-known-good."""
        now = self._clock()
        self._status.record_download(now)
        self._status.record_failure(LastError(error.reason, str(error), error.source, now))
        self._metrics.bundle_loads.labels(error.source, "failure").inc()
        logger.error("bundle source failed",
                     extra={"source": error.source, "reason": error.reason, "error": str(error)})

    async def restore(self) -> ActiveBundle | None:
        """Cold start: activate the persisted bundle, re-verified; a bad file is reported only."""
        if self._store is None:
            return None
        try:
            persisted = await asyncio.to_thread(self._store.load)
        except CorruptPersistedFile as exc:
            # Readable, but not a file save() wrote (a link, a FIFO, oversized): not an I/O fault.
            self._persist_problem("load", "persisted_corrupt", str(exc))
            return None
        except OSError as exc:
            self._persist_problem("load", "persisted_unreadable",
                                  f"cannot read the persisted bundle: {exc}")
            return None
        if persisted is None:
            return None
        try:
            active = await self.activate(BundleUpdate(persisted.data, source=PERSISTED))
        except ActivationError as exc:
            self._metrics.persist_failures.labels("load").inc()
            logger.error("persisted bundle refused; starting without it",
                         extra={"path": str(persisted.path), "reason": exc.reason})
            return None
        if active.source == PERSISTED:
            # Keep the age it had before the restart, so max_bundle_age spans restarts.
            restored = active.confirmed(at=min(persisted.confirmed_at, active.confirmed_at),
                                        source=PERSISTED, etag=None,
                                        max_age_seconds=self._max_age)
            self._swap(restored)
            return restored
        return active

    async def reload_keyring(self) -> bool:
        """Re-read the trusted keys (their files changed); True if the trusted set changed.

        A failure (an unreadable or invalid key file) keeps the previous keys and is reported.
        """
        try:
            change = await asyncio.to_thread(self.keyring.reload)
        except BundleError as exc:
            now = self._clock()
            self._status.record_failure(LastError(exc.reason, str(exc), "keyring", now),
                                        affects_freshness=False)
            logger.error("keyring reload failed; keeping the previous keys",
                         extra={"reason": exc.reason, "error": str(exc)})
            return False
        self._status.keyring_ids = tuple(self.keyring.key_ids)
        if change:
            logger.info("keyring reloaded", extra={
                "key_ids": list(self.keyring.key_ids), "added": list(change.added),
                "changed": list(change.changed), "removed": list(change.removed)})
        return bool(change)

    def _load(self, update: BundleUpdate, active: ActiveBundle | None,
              now: float) -> tuple[bytes, LoadedBundle | None]:
        # Runs in a worker thread. The sequence and content hash are checked before compiling,
        # so an unchanged or rolled-back candidate costs a verification, never a compilation.
        raw = read_candidate(update.data, self._limits)
        opened = open_bundle(raw, self.keyring, limits=self._limits,
                             skip_verification=self._skip_verification)
        verdict = check_candidate(active.loaded if active else None, opened,
                                  allow_downgrade=self._allow_downgrade)
        if verdict == "unchanged":
            return raw, None
        # A persisted bundle may be served past expires_at (as stale, per stale_action); a new
        # candidate that is already expired is refused.
        loaded = compile_bundle(opened, now=now, allow_expired=update.source == PERSISTED)
        return raw, loaded

    async def _swap_in(self, loaded: LoadedBundle, data: bytes, update: BundleUpdate,
                       now: float) -> ActiveBundle:
        new = make_active(loaded, source=update.source, etag=update.etag, activated_at=now,
                          confirmed_at=now, max_age_seconds=self._max_age)
        self._swap(new)
        if update.source != PERSISTED:
            self._status.record_success(now, activated=True)
        self._metrics.show_bundle(revision=new.revision, sequence=new.sequence,
                                  policies=len(new.policy_set.policies), success_at=now)
        self._metrics.bundle_loads.labels(update.source, "success").inc()
        logger.info("bundle activated", extra={
            "revision": new.revision, "sequence": new.sequence, "source": update.source,
            "key_id": loaded.key_id, "verified": loaded.verified,
            "content_hash": new.content_hash})
        if self._store is not None and update.source != PERSISTED:
            try:
                await asyncio.to_thread(self._store.save, data, confirmed_at=now)
            except OSError as exc:
                self._persist_problem("save", "persist_failed",
                                      f"cannot persist the bundle: {exc}")
        return new

    async def _confirm_locked(self, source: str, etag: str | None, now: float) -> ActiveBundle:
        active = self._current()
        assert active is not None  # callers check; kept for the type checker
        confirmed = active.confirmed(at=now, source=source, etag=etag,
                                     max_age_seconds=self._max_age)
        self._swap(confirmed)
        self._status.record_success(now, activated=False)
        self._metrics.bundle_last_success.set(now)
        self._metrics.bundle_loads.labels(source, "unchanged").inc()
        if self._store is not None and source != PERSISTED:
            try:
                await asyncio.to_thread(self._store.touch, now)
            except OSError as exc:
                self._persist_problem("save", "persist_failed",
                                      f"cannot update the persisted bundle: {exc}")
        return confirmed

    def _refused(self, source: str, reason: str, message: str) -> ActivationError:
        now = self._clock()
        # A bad persisted copy says nothing about the sources: it does not make them "failing".
        self._status.record_failure(LastError(reason, message, source, now),
                                    affects_freshness=source != PERSISTED)
        self._metrics.bundle_loads.labels(source, "failure").inc()
        active = self._current()
        logger.error("bundle refused; the active bundle keeps serving", extra={
            "source": source, "reason": reason, "error": message,
            "active_revision": active.revision if active else None})
        return ActivationError(message, reason=reason, source=source)

    def _persist_problem(self, operation: str, reason: str, message: str) -> None:
        now = self._clock()
        self._status.record_failure(LastError(reason, message, PERSISTED, now),
                                    affects_freshness=False)
        self._metrics.persist_failures.labels(operation).inc()
        logger.error(message, extra={"reason": reason, "operation": operation})
