"""`Engine`: the sidecar's one active policy set, and the decisions, status and lifecycle around it.

The engine holds exactly one reference to the active :class:`ActiveBundle`. A decision reads it
once and finishes on that snapshot, whatever activation swaps in meanwhile, so every answer is
attributable to one revision. Decisions are synchronous and thread-safe: the aiohttp handlers call
them on the event loop, gRPC servicers may call them from worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from prometheus_client import CollectorRegistry

from pdp.bundle import BundleError, Keyring, Limits
from pdp.core import InputValidationError, UnknownQueryError, parse_input
from pdp.runtime.activation import Activator
from pdp.runtime.config import RuntimeConfig
from pdp.runtime.decision_log import DecisionLog, sink_for
from pdp.runtime.errors import ConfigurationError, NotReadyError, SourceError
from pdp.runtime.file_source import FileSource, signature, watch_paths
from pdp.runtime.health import HealthState, RuntimeStatus
from pdp.runtime.metrics import RuntimeMetrics
from pdp.runtime.persist import BundleStore, max_archive_bytes
from pdp.runtime.ratelimit import RateCounter
from pdp.runtime.snapshot import ActiveBundle
from pdp.runtime.source import BundleSource, BundleUpdate

logger = logging.getLogger(__name__)

# The metrics label for a query name the core does not know: callers choose those names, and
# using them as labels would let any client grow the metrics without bound.
UNKNOWN_QUERY_LABEL = "<unknown>"


class DecisionIds:
    """UUID-shaped decision ids: a random per-engine prefix and a counter.

    ``str(uuid.uuid4())`` costs about 4 µs, a quarter of a whole decision; this costs a tenth of
    that. Ids are unique within the engine by the counter and across sidecars by the 74 random
    bits of the prefix; they need to be unique, not unpredictable.
    """

    def __init__(self, seed: bytes | None = None) -> None:
        prefix = uuid.UUID(bytes=seed if seed is not None else os.urandom(16), version=4)
        self._prefix = str(prefix)[:24]  # "xxxxxxxx-xxxx-4xxx-yxxx-"
        self._counter = itertools.count(int(str(prefix)[24:], 16))

    def __call__(self) -> str:
        """The next id (thread-safe: ``next`` on a count is atomic)."""
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


def open_keyring(config: RuntimeConfig) -> Keyring:
    """The keyring named by ``config``; raises :class:`ConfigurationError` if it is unusable."""
    if not config.verification_keys:
        # Only possible with insecure_skip_verification (RuntimeConfig checks): nothing to trust.
        return Keyring({}, revoked=config.revoked_key_ids)
    try:
        return Keyring.from_paths(config.verification_keys, revoked=config.revoked_key_ids)
    except BundleError as exc:
        raise ConfigurationError(f"cannot load the verification keys: {exc}") from exc


def _default_sources(config: RuntimeConfig) -> list[BundleSource]:
    # --bundle PATH is the one source the runtime builds itself; others are passed in.
    if config.bundle_path is None:
        return []
    # The file is looked at twice per max age, so an unchanged file keeps its bundle fresh.
    age = config.max_bundle_age_seconds
    return [FileSource(config.bundle_path, debounce_ms=config.watch_debounce_ms,
                       confirm_seconds=None if age is None else age / 2)]


def _signatures(paths: Sequence[Path]) -> list[object]:
    return [_signature_or_error(path) for path in paths]


def _signature_or_error(path: Path) -> object:
    # A key path unreadable for now is a state of its own: the reload it triggers reports it,
    # and the watch goes on to see the path readable again.
    try:
        return signature(path)
    except OSError as exc:
        return ("unreadable", exc.errno)


def _outcome(result: dict[str, Any]) -> str:
    verdict = result.get("allowed", result.get("compliant"))
    if verdict is None:
        return "decided"
    return "allow" if verdict else "deny"


def _failed_open(result: dict[str, Any], revision: str) -> dict[str, Any]:
    # The stale bundle's own findings stay in the answer for diagnosis; only the verdict flips.
    if "allowed" in result:
        result["allowed"] = True
    if "compliant" in result:
        result["compliant"] = True
    if "reason" in result:
        result["reason"] = (f"allowed because the policy bundle (revision {revision}) is stale "
                            f"and stale_action is fail_open; it said: {result['reason']}")
    result["fail_open"] = True
    return result


class Engine:
    """One sidecar's policy engine: the active snapshot, its sources, health, metrics and log.

    Build it with the configuration and an injected metrics registry; ``await start()`` restores
    the persisted bundle and starts the sources; ``await stop()`` ends everything cleanly.
    ``clock`` is wall time (Unix seconds) for validity and logs, ``monotonic`` measures latency,
    ``new_id`` makes decision ids.
    """

    def __init__(
        self,
        config: RuntimeConfig,
        *,
        registry: CollectorRegistry,
        sources: Sequence[BundleSource] | None = None,
        keyring: Keyring | None = None,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.perf_counter,
        new_id: Callable[[], str] | None = None,
        decision_stream: TextIO | None = None,
    ) -> None:
        self.config = config
        self.metrics = RuntimeMetrics(registry, clock=clock)
        self.counters = RateCounter(config.rate_counter_max_keys)
        self.active: ActiveBundle | None = None
        self._clock = clock
        self._monotonic = monotonic
        self._new_id = new_id if new_id is not None else DecisionIds()
        self._status = RuntimeStatus(
            instance_id=config.instance_id or str(uuid.uuid4()), labels=config.labels,
            stale_action=config.stale_action, started_at=clock())
        self._status.verification_skipped = config.insecure_skip_verification
        self.keyring = keyring if keyring is not None else open_keyring(config)
        self._status.keyring_ids = tuple(self.keyring.key_ids)
        self._activated = asyncio.Event()
        limits = limits if limits is not None else Limits()
        self.activator = Activator(
            keyring=self.keyring, status=self._status, metrics=self.metrics,
            current=lambda: self.active, swap=self._swap, clock=clock,
            # The persisted file is bounded like any other candidate under the same limits.
            store=(BundleStore(config.persist_dir, max_bytes=max_archive_bytes(limits))
                   if config.persist_dir else None),
            limits=limits, skip_verification=config.insecure_skip_verification,
            allow_downgrade=config.allow_downgrade,
            max_age_seconds=config.max_bundle_age_seconds)
        self.sources: list[BundleSource] = (
            list(sources) if sources is not None else _default_sources(config))
        sink = sink_for(config.decision_log, decision_stream)
        self.decision_log = (DecisionLog(config.decision_log, sink=sink, metrics=self.metrics)
                             if sink is not None else None)
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_watching = asyncio.Event()
        self.metrics.track_age(self._age)

    # -- decisions -------------------------------------------------------------------------

    def decide(self, query: str, raw_input: object, *, explain: bool = False,
               caller: str | Callable[[], str] = "",
               trusted_input: bool = False) -> dict[str, Any]:
        """Validate ``raw_input`` for ``query`` and decide it on the active bundle.

        ``caller`` names who asked, for the decision log only; a function is called only when a
        log will record it, so a shell need not look up a peer address nobody reads.
        ``trusted_input`` skips the schema check (``parse_input``): only for a caller that has
        established that ``raw_input`` is a dict the check would accept unchanged, such as the
        gRPC shell for a typed request it has checked (``pdp.sidecar.grpc_inputs``).

        Raises :class:`NotReadyError` when no bundle may answer (none yet, or stale with
        fail_closed), and the core's ``InputValidationError`` / ``UnknownQueryError`` for a bad
        request. Under fail_open a stale bundle's answer is turned into an allow flagged with
        ``"fail_open": true``. The answer is also the decision-log event's ``result``, written
        shortly after: callers wrap it, they do not mutate it.
        """
        active = self.active  # read once: this decision finishes on this snapshot
        if active is None:
            self.metrics.count_refusal(query, "unavailable")
            raise NotReadyError("no policy bundle is active yet", state=HealthState.STARTING)
        started = self._monotonic()
        now = self._clock()
        fail_open = False
        if now >= active.stale_at:
            if self.config.stale_action == "fail_closed":
                self.metrics.count_refusal(query, "unavailable")
                raise NotReadyError(
                    f"the policy bundle (revision {active.revision}) is stale and "
                    "stale_action is fail_closed", state=HealthState.STALE)
            fail_open = self.config.stale_action == "fail_open"
        try:
            parsed = (raw_input if trusted_input and isinstance(raw_input, dict)
                      else parse_input(query, raw_input))
        except UnknownQueryError:
            self.metrics.count_refusal(UNKNOWN_QUERY_LABEL, "invalid")
            raise
        except InputValidationError:
            self.metrics.count_refusal(query, "invalid")
            raise
        decision_id = self._new_id()
        result: dict[str, Any] = active.policy_set.evaluate(
            query, parsed, now=now, decision_id=decision_id, counters=self.counters,
            explain=explain)
        # Shadow mode: dryrun findings go to metrics and the decision log, never to the caller.
        dryrun = result.pop("dryrun", None)
        if dryrun:
            self.metrics.count_dryrun(query, dryrun)
        if fail_open:
            result = _failed_open(result, active.revision)
        elapsed = self._monotonic() - started
        metadata = result.get("metadata")
        if isinstance(metadata, dict):
            metadata["validation_duration_ms"] = round(elapsed * 1000.0, 3)
        outcome = _outcome(result)
        self.metrics.observe_decision(query, outcome, elapsed)
        if self.decision_log is not None:
            self.decision_log.record({
                "decision_id": decision_id, "timestamp": now, "query": query, "input": parsed,
                "result": result, "revision": active.revision,
                "latency_ms": round(elapsed * 1000.0, 3),
                "caller": caller() if callable(caller) else caller,
                "instance_id": self._status.instance_id,
                **({"dryrun": dryrun} if dryrun else {})})
        return result

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The status document: state, readiness, active bundle, times, last error, keyring."""
        return self._status.as_dict(self.active, self._clock())

    def state(self) -> HealthState:
        """The health state now."""
        return self._status.state(self.active, self._clock())

    def ready(self) -> bool:
        """Whether decisions are being answered (readiness probes, gRPC health)."""
        return self._status.ready(self.active, self._clock())

    # -- activation and lifecycle ----------------------------------------------------------

    async def activate(self, update: BundleUpdate) -> ActiveBundle:
        """Verify → compile → test → swap ``update``; raises ``ActivationError`` if refused."""
        return await self.activator.activate(update)

    def request_sync(self) -> None:
        """Ask every source for an immediate fetch (``POST /v1/bundles/sync``)."""
        for source in self.sources:
            source.request_sync()

    async def wait_active(self, within_seconds: float) -> bool:
        """Wait up to ``within_seconds`` for a bundle to be active; True if one is."""
        if self.active is not None:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._activated.wait(), within_seconds)
        return self.active is not None

    async def start(self) -> None:
        """Restore the persisted bundle, then start the sources, keyring watch and decision log."""
        if self.config.insecure_skip_verification:
            logger.warning("bundle signature verification is DISABLED for this sidecar")
        await self.activator.restore()
        if self.decision_log is not None:
            self.decision_log.start()
        for source in self.sources:
            self._spawn(self._consume(source), f"source-{source.name}")
        if self.config.verification_keys:
            self._spawn(self._watch_keyring(), "keyring-watch")

    async def stop(self) -> None:
        """Stop the sources and watchers, then flush the decision log within its deadline."""
        self._stop_watching.set()
        for source in self.sources:
            await source.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                # A task that died earlier must not turn a clean shutdown into a crash that
                # skips the decision-log flush below.
                logger.exception("background task had failed", extra={"task": task.get_name()})
        self._tasks.clear()
        if self.decision_log is not None:
            await self.decision_log.close()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work, name=name))

    async def _consume(self, source: BundleSource) -> None:
        try:
            async for event in source.updates():
                try:
                    await self.activator.handle(event)
                except Exception:
                    # A bug in handling one event must not stop every later update.
                    logger.exception("bundle event handling failed", extra={"source": source.name})
        except Exception as exc:
            logger.exception("bundle source stopped unexpectedly", extra={"source": source.name})
            self.activator.record_source_error(SourceError(
                f"bundle source {source.name} stopped: {exc!r}", reason="source_crashed",
                source=source.name))

    async def _watch_keyring(self) -> None:
        paths = self.config.verification_keys
        seen = await asyncio.to_thread(_signatures, paths)
        async for _ in watch_paths(paths, debounce_ms=self.config.watch_debounce_ms,
                                   stop=self._stop_watching):
            current = await asyncio.to_thread(_signatures, paths)
            if current == seen:
                continue  # something else changed next to the key files
            seen = current
            try:
                changed = await self.activator.reload_keyring()
            except Exception:
                # Whatever went wrong with this look, the next change must still be seen: a
                # watch that died here ignored every later key rotation until a restart.
                logger.exception("keyring reload failed unexpectedly; keeping the previous keys")
                continue
            if changed:
                # A bundle refused for an unknown key may be acceptable now.
                self.request_sync()

    def _swap(self, snapshot: ActiveBundle) -> None:
        self.active = snapshot
        self._activated.set()

    def _age(self) -> float:
        active = self.active
        return 0.0 if active is None else max(0.0, self._clock() - active.confirmed_at)
