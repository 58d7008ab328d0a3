"""A fleet of real processes for the fleet tests: `pdp control` replicas on one database and
`pdp run` sidecars long-polling them, plus the questions the tests ask of them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from control_support import MARKETPLACE, SigningKeys
from ports import free_port
from process_support import RunningProcess, run_pdp, start, wait_until_ready

SHORT = aiohttp.ClientTimeout(total=5)


@dataclass
class Replica:
    """One `pdp control` process (restartable on the same ports)."""

    name: str
    http_port: int
    grpc_port: int
    env: dict[str, str]
    extra: list[str]
    process: RunningProcess | None = None

    @property
    def url(self) -> str:
        """The replica's base URL."""
        return f"http://127.0.0.1:{self.http_port}"


@dataclass
class Sidecar:
    """One `pdp run` process (restartable with the same persisted bundle and ports)."""

    name: str
    http_port: int
    grpc_port: int
    args: list[str]
    process: RunningProcess | None = None

    @property
    def url(self) -> str:
        """The sidecar's base URL."""
        return f"http://127.0.0.1:{self.http_port}"


@dataclass
class FleetHarness:
    """Starts, kills and restarts the processes of one test; asks them questions over HTTP."""

    workdir: Path
    database_url: str
    keys: SigningKeys
    replicas: list[Replica] = field(default_factory=list)
    sidecars: list[Sidecar] = field(default_factory=list)
    _tokens_made: bool = False

    @property
    def admin_token(self) -> Path:
        """The admin token file."""
        return self.workdir / "admin.token"

    @property
    def sidecar_token(self) -> Path:
        """The sidecar token file."""
        return self.workdir / "sidecar.token"

    async def start_replica(self, name: str, *, env: dict[str, str] | None = None,
                            extra: list[str] | None = None) -> Replica:
        """Start a control-plane replica and wait until it is ready; create tokens once."""
        replica = Replica(name, free_port(), free_port(), env or {}, extra or [])
        self.replicas.append(replica)
        await self.restart_replica(replica)
        if not self._tokens_made:
            await self._token("admin", self.admin_token)
            await self._token("sidecar", self.sidecar_token)
            self._tokens_made = True
        return replica

    async def restart_replica(self, replica: Replica, *,
                              env: dict[str, str] | None = None) -> None:
        """(Re)start `replica` on its ports, with `env` replacing its extra environment."""
        if env is not None:
            replica.env = env
        log = self.workdir / f"control-{replica.name}.log"
        # Keep earlier runs' output: a failing test shows the whole history.
        previous = log.read_text() if log.exists() else ""
        log.with_suffix(".previous").write_text(previous)
        replica.process = await start(
            ["control", "--database-url", self.database_url, "--signing-key",
             str(self.keys.private), "--key-id", self.keys.key_id, "--seed-dir", str(MARKETPLACE),
             "--http-addr", f"127.0.0.1:{replica.http_port}",
             "--grpc-addr", f"127.0.0.1:{replica.grpc_port}", *replica.extra],
            log, cwd=self.workdir, env=replica.env)
        await wait_until_ready(f"{replica.url}/health/ready", replica.process)

    async def kill(self, replica: Replica) -> None:
        """SIGKILL a replica: no shutdown, no goodbye to PostgreSQL."""
        assert replica.process is not None
        replica.process.process.kill()
        await replica.process.process.wait()

    async def start_sidecar(self, name: str, replica: Replica, *, extra: list[str] | None = None,
                            ready: bool = True) -> Sidecar:
        """Start a sidecar long-polling `replica` (and reporting to it); wait until ready."""
        http_port, grpc_port = free_port(), free_port()
        args = ["run", "--bundle-url", f"{replica.url}/bundles/main",
                "--bundle-token-file", str(self.sidecar_token),
                "--verification-key", str(self.keys.public),
                "--http-addr", f"127.0.0.1:{http_port}", "--grpc-addr", f"127.0.0.1:{grpc_port}",
                "--persist-dir", str(self.workdir / f"persist-{name}"),
                "--instance-id", name, "--label", f"test={name}", "--status-interval", "1",
                *(extra or [])]
        sidecar = Sidecar(name, http_port, grpc_port, args)
        self.sidecars.append(sidecar)
        await self.restart_sidecar(sidecar, ready=ready)
        return sidecar

    async def restart_sidecar(self, sidecar: Sidecar, *, ready: bool = True) -> None:
        """(Re)start a sidecar with its persist directory; wait for readiness if asked."""
        run = len(list(self.workdir.glob(f"sidecar-{sidecar.name}*.log")))
        sidecar.process = await start(sidecar.args,
                                      self.workdir / f"sidecar-{sidecar.name}-{run}.log",
                                      cwd=self.workdir)
        if ready:
            await wait_until_ready(f"{sidecar.url}/health/ready", sidecar.process)

    async def admin(self, replica: Replica, *args: str) -> tuple[int, str, str]:
        """Run `pdp admin ARGS` against `replica` with the admin token."""
        return await run_pdp("admin", "--server", replica.url, "--token-file",
                             str(self.admin_token), *args, cwd=self.workdir)

    async def publish(self, replica: Replica) -> dict[str, Any]:
        """POST /v1/publish on `replica`; the new bundle's record."""
        token = self.admin_token.read_text().strip()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session, \
                session.post(f"{replica.url}/v1/publish",
                             headers={"Authorization": f"Bearer {token}"}) as answer:
            assert answer.status == 201, await answer.text()
            record: dict[str, Any] = await answer.json()
            return record

    async def bundle(self, replica: Replica, sequence: int) -> dict[str, Any]:
        """The admin API's record of published bundle `sequence`."""
        token = self.admin_token.read_text().strip()
        async with aiohttp.ClientSession(timeout=SHORT) as session, session.get(
                f"{replica.url}/v1/bundles/{sequence}",
                headers={"Authorization": f"Bearer {token}"}) as answer:
            assert answer.status == 200, await answer.text()
            record: dict[str, Any] = await answer.json()
            return record

    async def fleet(self, replica: Replica) -> dict[str, Any]:
        """``GET /v1/fleet`` on `replica`."""
        token = self.admin_token.read_text().strip()
        async with aiohttp.ClientSession(timeout=SHORT) as session, session.get(
                f"{replica.url}/v1/fleet", headers={"Authorization": f"Bearer {token}"}) as answer:
            assert answer.status == 200, await answer.text()
            fleet: dict[str, Any] = await answer.json()
            return fleet

    async def status(self, sidecar: Sidecar) -> dict[str, Any]:
        """The sidecar's own /v1/status document."""
        async with aiohttp.ClientSession(timeout=SHORT) as session, \
                session.get(f"{sidecar.url}/v1/status") as answer:
            assert answer.status == 200, await answer.text()
            document: dict[str, Any] = (await answer.json())["result"]
            return document

    async def wait_until(self, what: str, check: Callable[[], Awaitable[bool]], *,
                         within: float) -> float:
        """Poll `check` every 20 ms until true; seconds it took, or fail naming `what`."""
        started = time.monotonic()
        while not await check():
            if time.monotonic() - started > within:
                raise AssertionError(f"{what}: not after {within} s\n{self.logs()}")
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    async def all_on(self, sequence: int, sidecars: list[Sidecar] | None = None) -> bool:
        """Whether every sidecar (or those given) runs bundle `sequence`."""
        for sidecar in sidecars if sidecars is not None else self.sidecars:
            if (await self.status(sidecar))["sequence"] != sequence:
                return False
        return True

    async def decide(self, sidecar: Sidecar) -> int:
        """Ask `sidecar` to validate a compliant listing; the HTTP status of the answer."""
        listing = json.loads((MARKETPLACE / "examples" / "compliant-listing.json").read_text())
        async with aiohttp.ClientSession(timeout=SHORT) as session, session.post(
                f"{sidecar.url}/v1/data/policyengine/validate_service",
                json={"input": listing}) as answer:
            return answer.status

    def logs(self) -> str:
        """Every process's output so far, for failure messages."""
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    async def close(self) -> None:
        """Stop every process still running: sidecars first (together), then the replicas."""
        for group in ([s.process for s in self.sidecars], [r.process for r in self.replicas]):
            await asyncio.gather(*(p.stop(grace=5.0) for p in group if p is not None))

    async def _token(self, role: str, path: Path) -> None:
        code, out, err = await run_pdp("control", "create-token", "--database-url",
                                       self.database_url, "--role", role, cwd=self.workdir)
        assert code == 0, err
        await asyncio.to_thread(path.write_text, out.strip())


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one RFC 3339 timestamp to another."""
    return (datetime.fromisoformat(later.replace("Z", "+00:00"))
            - datetime.fromisoformat(earlier.replace("Z", "+00:00"))).total_seconds()

