"""One control-plane process: the store, the HTTP server and the gRPC server, started and stopped
together. SIGTERM or SIGINT stops both listeners, gives in-flight requests a grace period (a
long-poll is answered 304 as the process goes), and closes the database pool."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from grpc import aio
from prometheus_client import CollectorRegistry

from pdp.control.errors import ConfigurationError
from pdp.control.grpc_service import make_grpc_server
from pdp.control.http_app import make_app
from pdp.control.plane import ControlPlane, open_control_plane
from pdp.control.publish_pause import PublishPause
from pdp.control.settings import ControlSettings
from pdp.sidecar.settings import ListenAddress

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0


class ControlServer:
    """The listeners of one replica over one :class:`ControlPlane`."""

    def __init__(self, settings: ControlSettings, *, seed_dir: Path | None,
                 clock: Callable[[], float] = time.time,
                 registry: CollectorRegistry | None = None,
                 publish_pause: PublishPause | None = None) -> None:
        self.settings = settings
        self._seed_dir = seed_dir
        self._clock = clock
        self._registry = registry
        self._publish_pause = publish_pause
        self.plane: ControlPlane | None = None
        self._runner: web.AppRunner | None = None
        self._grpc: aio.Server | None = None
        self.http_address: ListenAddress | None = None
        self.grpc_address: ListenAddress | None = None

    async def start(self) -> None:
        """Open the store (migrate, seed), then bind HTTP and gRPC."""
        self.plane = await open_control_plane(self.settings, seed_dir=self._seed_dir,
                                              clock=self._clock, registry=self._registry,
                                              publish_pause=self._publish_pause)
        http = self.settings.http_listen
        # The grace period belongs to the runner (on the site it is deprecated since aiohttp 3.9).
        self._runner = web.AppRunner(make_app(self.plane), access_log=None,
                                     shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
        await self._runner.setup()
        site = web.TCPSite(self._runner, http.host, http.port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigurationError(f"cannot listen for HTTP on {http}: {exc.strerror}") from None
        # With port 0 the kernel picks one; report the port actually bound.
        self.http_address = ListenAddress(http.host, int(self._runner.addresses[0][1]))
        try:
            grpc_server, grpc_port = make_grpc_server(self.plane, self.settings.grpc_addr)
        except RuntimeError as exc:
            raise ConfigurationError(
                f"cannot listen for gRPC on {self.settings.grpc_addr}: {exc}") from None
        await grpc_server.start()
        self._grpc = grpc_server
        self.grpc_address = ListenAddress(self.settings.grpc_listen.host, grpc_port)
        log.info("control plane listening",
                 extra={"http": str(self.http_address), "grpc": str(self.grpc_address)})

    async def stop(self) -> None:
        """Stop both listeners and close the store."""
        started = self.plane is not None  # a start that failed early has nothing to report stopped
        if self.plane is not None:
            # Held long-polls answer 304 now instead of holding the shutdown for their full wait.
            self.plane.feed.release_waiters()
        if self._grpc is not None:
            await self._grpc.stop(SHUTDOWN_GRACE_SECONDS)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.plane is not None:
            await self.plane.close()
        if started:
            log.info("control plane stopped")


async def serve_until_signalled(settings: ControlSettings, *, seed_dir: Path | None,
                                publish_pause: PublishPause | None = None) -> None:
    """Run a replica until SIGTERM or SIGINT, its metrics on a registry of its own."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = ControlServer(settings, seed_dir=seed_dir, registry=CollectorRegistry(),
                           publish_pause=publish_pause)
    try:
        await server.start()
        await stop.wait()
    finally:
        await server.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
