"""Helpers of the sidecar HTTP and process tests (no tests here): signed bundles, `pdp run`.

Everything is real: bundles are built and signed with a key generated for the test session, the
engine verifies them, and processes are ``python -m pdp run`` listening on 127.0.0.1 with ports
chosen by the kernel (the process logs the bound ports, which :class:`SidecarProcess` reads).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from pdp.bundle import JwsSigner, build_bundle
from pdp.runtime import BundleUpdate, Engine

REPO = Path(__file__).resolve().parents[2]
MARKETPLACE = REPO / "bundles" / "marketplace"
KEY_ID = "sidecar-test"
# Generous: the machine is shared, and a slow start is reported by the start-up benchmark.
STARTUP_SECONDS = 20.0

CHECK_ACCESS_INPUT: dict[str, Any] = {
    "user_id": "user-456",
    "service_id": "svc-1",
    "action": "consume",
    "context": {"ip_address": "10.0.0.7"},
}


@dataclass(frozen=True)
class SigningKey:
    """A key pair on disk: ``public`` is what ``--verification-key`` takes."""

    private: Path
    public: Path
    signer: JwsSigner


class BundleFactory:
    """Builds signed marketplace bundles with chosen revision, sequence and expiry."""

    def __init__(self, key: SigningKey, directory: Path) -> None:
        self.key = key
        self.directory = directory

    def build(self, revision: int, *, expires_at: float | None = None) -> bytes:
        """A signed bundle whose revision is ``str(revision)`` and sequence ``revision``."""
        return build_bundle(
            MARKETPLACE,
            signer=self.key.signer,
            revision=str(revision),
            sequence=revision,
            created_at=datetime.now(tz=UTC),
            expires_at=None if expires_at is None else datetime.fromtimestamp(expires_at, UTC),
        )

    def replace(self, path: Path, data: bytes) -> None:
        """Put ``data`` at ``path`` the way deployments do: write a temp file, rename over."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def write(self, revision: int, *, name: str = "bundle.tar.gz", **kwargs: Any) -> Path:
        """Build and atomically place a bundle file in the factory's directory."""
        path = self.directory / name
        self.replace(path, self.build(revision, **kwargs))
        return path


async def activate(engine: Engine, factory: BundleFactory, revision: int) -> None:
    """Activate a freshly built bundle on ``engine``."""
    await engine.activate(BundleUpdate(factory.build(revision), source="test"))


class SidecarProcess:
    """A `pdp run` subprocess; its stderr (JSON logs) is collected by a reader thread."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "pdp", "run", "--http-addr", "127.0.0.1:0",
                   "--grpc-addr", "127.0.0.1:0", *args]
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            command, cwd=cwd, env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.logs: list[dict[str, Any]] = []
        self.raw_stderr: list[str] = []
        self._listening = threading.Event()
        self.http_port = 0
        self.grpc_port = 0
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw_stderr.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.logs.append(event)
            if event.get("msg") == "sidecar listening":
                self.http_port = int(str(event["http"]).rsplit(":", 1)[1])
                self.grpc_port = int(str(event["grpc"]).rsplit(":", 1)[1])
                self._listening.set()

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this sidecar's HTTP listener."""
        return f"http://127.0.0.1:{self.http_port}{path}"

    async def wait_listening(self) -> None:
        """Wait for the "sidecar listening" log event, failing with the stderr if it exits."""
        try:
            async with asyncio.timeout(STARTUP_SECONDS):
                while not self._listening.is_set():
                    if self.proc.poll() is not None:
                        raise AssertionError(
                            f"pdp run exited {self.proc.returncode}: {self.stderr()}")
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"pdp run did not listen in time: {self.stderr()}") from None

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        """Wait until ``/health/ready`` answers 200."""
        await self.wait_listening()
        try:
            async with asyncio.timeout(STARTUP_SECONDS):
                while True:
                    async with session.get(self.url("/health/ready")) as answer:
                        if answer.status == 200:
                            return
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"pdp run was not ready in time: {self.stderr()}") from None

    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        return "".join(self.raw_stderr)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``signum`` and wait for the exit code."""
        self.proc.send_signal(signum)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Kill the process if it still runs (teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
