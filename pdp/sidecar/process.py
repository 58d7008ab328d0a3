"""One sidecar process: the engine, its bundle source, the HTTP and gRPC servers, and shutdown.

:class:`Sidecar` assembles the parts on the running event loop (DESIGN §2): one
:class:`~pdp.runtime.Engine` holds the active bundle, a source feeds it, and the aiohttp and
grpc.aio servers both read it. :func:`run_sidecar` is the `pdp run` entry point: it turns
SIGTERM/SIGINT into a graceful stop — both servers stop accepting, in-flight requests get
``shutdown_grace`` seconds to finish, the decision log is flushed, and the exit code is 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from pdp.runtime import DecisionLog, Engine, RuntimeConfig, configure_process_logging
from pdp.runtime.config import DecisionLogConfig
from pdp.runtime.decision_log import create_private
from pdp.runtime.errors import ConfigurationError
from pdp.runtime.source import BundleSource
from pdp.sidecar.dev import prepare_dev_bundle
from pdp.sidecar.errors import ConfigError, StartupError
from pdp.sidecar.grpc_server import SidecarGrpcServer
from pdp.sidecar.http_app import IN_FLIGHT, make_app
from pdp.sidecar.settings import ListenAddress, RunSettings

if TYPE_CHECKING:
    from pdp.runtime.status_report import StatusReporter

logger = logging.getLogger(__name__)

# After in-flight HTTP requests drained (or the grace period ended), how long aiohttp may take
# to finish a request that arrived on a keep-alive connection in the meantime.
CLOSE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class BundleInputs:
    """Where the bundle comes from and which keys verify it, after ``--dev`` is resolved."""

    bundle_path: Path | None
    verification_keys: tuple[Path, ...]


def resolve_bundle_inputs(settings: RunSettings, *, workdir: Path, now: float) -> BundleInputs:
    """The bundle path and keys to use: the settings', or a freshly built dev bundle."""
    if settings.dev:
        dev = prepare_dev_bundle(workdir, environ=os.environ, now=now)
        logger.info(
            "development mode: built-in bundle signed with the local dev key",
            extra={"bundle": str(dev.bundle), "key": str(dev.verification_key)},
        )
        keys = (dev.verification_key, *settings.verification_key)
        return BundleInputs(bundle_path=dev.bundle, verification_keys=keys)
    return BundleInputs(settings.bundle, tuple(settings.verification_key))


def decision_log_config(settings: RunSettings) -> DecisionLogConfig:
    """The runtime's decision-log settings from ``--decision-log`` and its masks."""
    mask = tuple(settings.decision_log_mask)
    if settings.decision_log == "upload":
        # The engine's own sinks are local; the shell attaches the UploadSink (see Sidecar.start).
        return DecisionLogConfig(sink="none", mask=mask)
    if settings.decision_log in {"none", "stdout"}:
        return DecisionLogConfig(sink=settings.decision_log, mask=mask)
    return DecisionLogConfig(sink="file", path=Path(settings.decision_log), mask=mask)


def check_decision_log_file(config: DecisionLogConfig) -> None:
    """Raise :class:`ConfigError` if the decision-log file cannot be opened for appending.

    The file sink opens its file at the first write; a directory that is missing or read-only
    would otherwise only show as dropped events once decisions flow, after a sidecar that looked
    healthy at start had already been put in service.
    """
    if config.sink != "file" or config.path is None:
        return
    try:
        # Created as the sink creates it (0600), since this check is what creates the file.
        os.close(create_private(config.path))
    except OSError as exc:
        detail = exc.strerror or str(exc)
        raise ConfigError(f"decision_log: cannot open {config.path} for appending: {detail}"
                          ) from None


def runtime_config(settings: RunSettings, inputs: BundleInputs) -> RuntimeConfig:
    """Translate the shell's settings into the runtime's configuration."""
    try:
        return RuntimeConfig(
            bundle_path=inputs.bundle_path,
            verification_keys=inputs.verification_keys,
            revoked_key_ids=tuple(settings.revoked_key_ids),
            insecure_skip_verification=settings.insecure_skip_verification,
            allow_downgrade=settings.allow_downgrade,
            persist_dir=settings.persist_dir,
            max_bundle_age_seconds=settings.max_bundle_age,
            stale_action=settings.stale_action,
            watch_debounce_ms=settings.watch_debounce_ms,
            decision_log=decision_log_config(settings),
            instance_id=settings.instance_id or f"{socket.gethostname()}-{os.getpid()}",
            labels=settings.labels,
        )
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


def http_source(settings: RunSettings) -> BundleSource:
    """The long-polling source for ``--bundle-url`` (token file re-read on every request)."""
    # Imported here, like the reporter and the uploader below: a sidecar fed from a file never
    # runs their HTTP client code, and importing it is a measurable part of start-up.
    from pdp.runtime.http_source import HttpSource

    if settings.bundle_url is None:
        raise ConfigError("bundle_url is not set")
    # Only an answer from the server confirms the bundle (and resets its age), so a long-poll
    # must come back well within max_bundle_age or a healthy sidecar would turn stale. The same
    # holds for the polling interval used with a server that does not hold requests (a static
    # file server): polled every 10 s, a 4 s max age was stale more often than fresh.
    age = settings.max_bundle_age
    wait = 30.0 if age is None else min(30.0, max(1.0, age / 2))
    poll = 10.0 if age is None else min(10.0, max(1.0, age / 2))
    return HttpSource(
        settings.bundle_url,
        token_file=settings.bundle_token_file,
        ca_file=settings.bundle_ca_file,
        wait_seconds=wait,
        poll_interval=poll,
    )


class Sidecar:
    """The parts of one running sidecar, started and stopped together on one event loop."""

    def __init__(
        self,
        settings: RunSettings,
        *,
        workdir: Path,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self._workdir = workdir
        self._clock = clock
        self._registry = registry or CollectorRegistry()
        self.engine: Engine | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._grpc: SidecarGrpcServer | None = None
        self._reporter: StatusReporter | None = None
        self.http_address: ListenAddress | None = None
        self.grpc_address: ListenAddress | None = None
        # stop() also cleans up after a start() that failed half-way; only a sidecar that was
        # listening is reported as stopped, so a start-up error is the last word in the log.
        self._started = False

    async def start(self) -> None:
        """Build the engine, restore or load the first bundle, and open both listeners."""
        settings = self.settings
        inputs = resolve_bundle_inputs(settings, workdir=self._workdir, now=self._clock())
        config = runtime_config(settings, inputs)
        check_decision_log_file(config.decision_log)
        # None lets the engine watch config.bundle_path with its own FileSource.
        sources = [http_source(settings)] if settings.bundle_url is not None else None
        try:
            engine = Engine(config, registry=self._registry, sources=sources, clock=self._clock)
        except ConfigurationError as exc:
            raise ConfigError(str(exc)) from None
        self.engine = engine
        control = settings.control_base_url
        if settings.decision_log == "upload" and control is not None:
            from pdp.runtime.log_upload import UploadSink

            engine.decision_log = DecisionLog(
                config.decision_log, metrics=engine.metrics,
                sink=UploadSink(f"{control}/v1/logs", metrics=engine.metrics,
                                token_file=settings.bundle_token_file,
                                ca_file=settings.bundle_ca_file))
        await engine.start()
        if control is not None:
            from pdp.runtime.status_report import StatusReporter

            self._reporter = StatusReporter(
                f"{control}/v1/status", engine.status, registry=engine.metrics.registry,
                token_file=settings.bundle_token_file, ca_file=settings.bundle_ca_file,
                interval=settings.status_interval)
            self._reporter.start()
        await self._start_http(engine)
        await self._start_grpc(engine)
        self._started = True
        logger.info(
            "sidecar listening",
            extra={"http": str(self.http_address), "grpc": str(self.grpc_address)},
        )

    async def _start_http(self, engine: Engine) -> None:
        sync = engine.request_sync if engine.sources else None
        app = make_app(
            engine,
            metrics=engine.metrics,
            bundle_sync=sync,
            max_body_bytes=self.settings.max_body_bytes,
            listen_host=self.settings.http_listen.host,
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_SECONDS)
        await self._runner.setup()
        host, port = self.settings.http_listen
        site = self._site = web.TCPSite(
            self._runner, host, port, reuse_port=self.settings.reuse_port or None
        )
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror}") from None
        bound = self._runner.addresses[0]
        self.http_address = ListenAddress(host, int(bound[1]))

    async def _stop_http(self, grace: float) -> None:
        runner = self._runner
        if runner is None:
            return
        if self._site is not None:
            await self._site.stop()  # no new connections; open ones keep being served
        if not await runner.app[IN_FLIGHT].drained(grace):
            logger.warning("HTTP requests still running at the shutdown deadline")
        # cleanup() closes idle keep-alive connections; a request that slipped in on one of them
        # meanwhile gets CLOSE_SECONDS more before it is cancelled.
        await runner.cleanup()

    async def _start_grpc(self, engine: Engine) -> None:
        address = self.settings.grpc_listen
        self._grpc = SidecarGrpcServer(
            engine, str(address), request_counter=engine.metrics.grpc_requests,
            reuse_port=self.settings.reuse_port, clock=self._clock,
        )
        port = await self._grpc.start()
        self.grpc_address = ListenAddress(address.host, port)

    async def stop(self) -> None:
        """Stop accepting on both servers, let in-flight requests finish, then flush and close."""
        grace = self.settings.shutdown_grace
        stops = [self._stop_http(grace)]
        if self._grpc is not None:
            stops.append(self._grpc.stop(grace))
        for outcome in await asyncio.gather(*stops, return_exceptions=True):
            if isinstance(outcome, BaseException):
                logger.error("error while stopping a server", exc_info=outcome)
        if self._reporter is not None:
            await self._reporter.stop()
        if self.engine is not None:
            await self.engine.stop()  # stops the sources and flushes the decision log
        if self._started:
            logger.info("sidecar stopped")


def settle_heap() -> None:
    """Move everything alive after start-up out of the cyclic GC's reach (``gc.freeze``).

    Imported modules, compiled schemas and the first policy set live as long as the process; left
    in the collected generations, every full collection under load would walk them again (~90 ms
    for the ~70,000 objects of a `--dev` sidecar on this project's 2-core machine). Objects created
    later (requests, reloaded bundles) are collected as usual, and a frozen object is still freed
    when its reference count drops to zero. No ``gc.collect()`` first: it would cost those 90 ms
    before the first decision and finds no garbage at this point (measured with the built-in
    bundle); a cycle among start-up objects that did become garbage would only be kept, once.
    """
    gc.freeze()


async def serve_until_signalled(settings: RunSettings, *, workdir: Path) -> int:
    """Run a sidecar until SIGTERM or SIGINT, then stop it gracefully; return the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sidecar = Sidecar(settings, workdir=workdir)
    try:
        await sidecar.start()
        settle_heap()
        await stop.wait()
        logger.info("shutting down", extra={"grace_seconds": settings.shutdown_grace})
    finally:
        await sidecar.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)
    return 0


def run_sidecar(settings: RunSettings) -> int:
    """The `pdp run` entry point: JSON logs, then serve until told to stop."""
    configure_process_logging(settings.log_level.upper())
    if settings.insecure_skip_verification:
        logger.warning("bundle signature verification is DISABLED (--insecure-skip-verification)")
    return asyncio.run(serve_until_signalled(settings, workdir=Path.cwd()))
