"""Propagation: how fast a publish reaches the fleet, and what it costs the control plane.

- **Publish -> fleet active**: one ``pdp control`` and 20 ``pdp run --bundle-url`` sidecar
  processes long-polling it. Each of 20 rounds waits until every sidecar's long-poll is held
  (``pdp_control_long_polls_waiting``), takes the wall clock, POSTs ``/v1/publish`` and waits until
  every sidecar reports the new sequence on its ``/v1/status``. The figure of a round is the
  latest sidecar's ``bundle.activated_at`` minus the moment the publish was asked for, so it
  includes building, signing and committing the bundle, NOTIFY, the long-poll answer, download,
  verification, compilation and the swap (target p99 <= 1 s, DESIGN §12).
- **1,000 long-poll clients**: the sidecars are stopped; 1,000 aiohttp client tasks in this
  process hold ``GET /bundles/main`` (``If-None-Match`` + ``Prefer: wait=60``) on the same control
  plane; once all are held, one publish; the figure is when the last client has read the whole new
  bundle, counted from the publish request (target <= 3 s).
- **Control-plane cost**: CPU seconds (user + system, from ``/proc``) and RSS of the ``pdp
  control`` process during each phase, and its peak RSS (``VmHWM``).

    .venv/bin/python bench/propagation.py [--sidecars 20] [--publishes 20] [--clients 1000]

Needs PostgreSQL: ``$PDP_BENCH_DATABASE_URL``, else ``postgresql://postgres@127.0.0.1:5432/
postgres``; a temporary database is created there and dropped at the end. Results are printed and
written to ``bench/results/propagation.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from _common import cpu_seconds, free_port, machine_summary, percentile, render_table, write_results

from pdp.bundle import write_key_pair

ROOT = Path(__file__).resolve().parent.parent
PDP = [sys.executable, "-m", "pdp"]
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
KEY_ID = "bench-propagation"
WAITING = re.compile(r"^pdp_control_long_polls_waiting ([0-9.e+]+)$", re.MULTILINE)


def seconds_of(stamp: str) -> float:
    """Unix seconds of an RFC 3339 timestamp."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class ProcessUsage:
    """CPU seconds and memory of one process, read from /proc."""

    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time so far."""
        return cpu_seconds(self.pid)

    def memory_mib(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MiB."""
        values = dict(line.split(":", 1) for line in
                      Path(f"/proc/{self.pid}/status").read_text().splitlines() if ":" in line)
        return (int(values["VmRSS"].split()[0]) / 1024, int(values["VmHWM"].split()[0]) / 1024)


class Bench:
    """The processes of one run and the HTTP questions asked of them."""

    def __init__(self, workdir: Path, dsn: str) -> None:
        self.workdir = workdir
        self.dsn = dsn
        self.control_port = free_port()
        self.url = f"http://127.0.0.1:{self.control_port}"
        self.control: subprocess.Popen[bytes] | None = None
        self.sidecars: list[tuple[subprocess.Popen[bytes], str]] = []
        self.admin = ""
        self.sidecar_token = workdir / "sidecar.token"
        self.private, self.public = write_key_pair(workdir / "keys", KEY_ID)

    def spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        """Start `pdp ARGS` with its output in the work directory."""
        with (self.workdir / log).open("wb") as out:
            return subprocess.Popen([*PDP, *args], stdout=out, stderr=subprocess.STDOUT,
                                    cwd=self.workdir)

    async def start_control(self) -> None:
        """Start the control plane, wait for it, create the tokens."""
        self.control = self.spawn(
            ["control", "--database-url", self.dsn, "--signing-key", str(self.private),
             "--key-id", KEY_ID, "--http-addr", f"127.0.0.1:{self.control_port}",
             "--grpc-addr", f"127.0.0.1:{free_port()}", "--log-level", "warning"], "control.log")
        await self.wait_ready(f"{self.url}/health/ready", self.control)
        self.admin = self.token("admin")
        self.sidecar_token.write_text(self.token("sidecar"))

    def token(self, role: str) -> str:
        """A new token of `role`."""
        done = subprocess.run([*PDP, "control", "create-token", "--database-url", self.dsn,
                               "--role", role], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    async def start_sidecars(self, count: int) -> None:
        """Start `count` sidecars long-polling the control plane; wait until all are ready."""
        for index in range(count):
            port = free_port()
            process = self.spawn(
                ["run", "--bundle-url", f"{self.url}/bundles/main", "--bundle-token-file",
                 str(self.sidecar_token), "--verification-key", str(self.public),
                 "--http-addr", f"127.0.0.1:{port}", "--grpc-addr", f"127.0.0.1:{free_port()}",
                 "--log-level", "warning"], f"sidecar-{index}.log")
            self.sidecars.append((process, f"http://127.0.0.1:{port}"))
        for process, url in self.sidecars:
            await self.wait_ready(f"{url}/health/ready", process, within=120)

    async def wait_ready(self, url: str, process: subprocess.Popen[bytes], *,
                         within: float = 60) -> None:
        """Poll `url` until 200."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise SystemExit(f"a process exited early; see {self.workdir}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as answer:
                        if answer.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise SystemExit(f"{url} not ready after {within} s; see {self.workdir}")

    async def publish(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """POST /v1/publish; the bundle record."""
        async with session.post(f"{self.url}/v1/publish",
                                headers={"Authorization": f"Bearer {self.admin}"}) as answer:
            if answer.status != 201:
                raise SystemExit(f"publish failed: {answer.status} {await answer.text()}")
            record: dict[str, Any] = await answer.json()
            return record

    async def long_polls_waiting(self, session: aiohttp.ClientSession) -> int:
        """The control plane's pdp_control_long_polls_waiting."""
        async with session.get(f"{self.url}/metrics") as answer:
            match = WAITING.search(await answer.text())
        return int(float(match.group(1))) if match else 0

    async def wait_for_long_polls(self, session: aiohttp.ClientSession, count: int,
                                  within: float = 60) -> None:
        """Wait until `count` long-polls are held."""
        deadline = time.monotonic() + within
        while await self.long_polls_waiting(session) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"fewer than {count} long-polls held after {within} s")
            await asyncio.sleep(0.05)

    def stop_sidecars(self) -> None:
        """SIGTERM every sidecar and wait."""
        for process, _ in self.sidecars:
            process.send_signal(signal.SIGTERM)
        for process, _ in self.sidecars:
            process.wait(timeout=30)
        self.sidecars = []

    def stop(self) -> None:
        """Stop whatever still runs."""
        for process in [p for p, _ in self.sidecars] + ([self.control] if self.control else []):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


async def fleet_rounds(bench: Bench, publishes: int) -> list[float]:
    """Seconds from each publish request to the last sidecar's activation of it."""
    figures = []
    async with aiohttp.ClientSession() as session:
        for _ in range(publishes):
            await bench.wait_for_long_polls(session, len(bench.sidecars))
            asked = time.time()
            record = await bench.publish(session)
            activated = []
            for _, url in bench.sidecars:
                while True:
                    async with session.get(f"{url}/v1/status") as answer:
                        status = (await answer.json())["result"]
                    if status["sequence"] == record["sequence"]:
                        activated.append(seconds_of(status["bundle"]["activated_at"]))
                        break
                    await asyncio.sleep(0.01)
            figures.append(max(activated) - asked)
    return figures


async def long_poll_burst(bench: Bench, clients: int) -> dict[str, Any]:
    """`clients` held long-polls, one publish: when each client had the whole new bundle."""
    token = bench.sidecar_token.read_text().strip()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.get(f"{bench.url}/bundles/main",
                               headers={"Authorization": f"Bearer {token}"}) as answer:
            etag = answer.headers["ETag"]
        headers = {"Authorization": f"Bearer {token}", "If-None-Match": etag,
                   "Prefer": "wait=60"}

        async def client() -> tuple[int, float, int]:
            async with session.get(f"{bench.url}/bundles/main", headers=headers) as answer:
                body = await answer.read()
                return answer.status, time.time(), len(body)

        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        await bench.wait_for_long_polls(session, clients)
        asked = time.time()
        await bench.publish(session)
        results = await asyncio.gather(*tasks)
    served = sorted(done - asked for status, done, _ in results if status == 200)
    return {"clients": clients, "served_200": len(served),
            "bundle_bytes": results[0][2],
            "p50_s": statistics.median(served), "p99_s": percentile(served, 99.0),
            "all_served_s": served[-1]}


def with_database(dsn: str, name: str) -> str:
    """`dsn` pointing at database `name`."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both phases; the figures."""
    maintenance = os.environ.get("PDP_BENCH_DATABASE_URL", DEFAULT_DSN)
    name = "pdp_bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(maintenance)
    await conn.execute(f'CREATE DATABASE "{name}"')
    workdir = Path(tempfile.mkdtemp(prefix="pdp-bench-propagation-"))
    bench = Bench(workdir, with_database(maintenance, name))
    try:
        await bench.start_control()
        assert bench.control is not None
        usage = ProcessUsage(bench.control.pid)
        async with aiohttp.ClientSession() as session:
            await bench.publish(session)
        await bench.start_sidecars(args.sidecars)
        cpu, started = usage.cpu_seconds(), time.monotonic()
        rounds = await fleet_rounds(bench, args.publishes)
        fleet_cpu = (usage.cpu_seconds() - cpu, time.monotonic() - started, usage.memory_mib())
        bench.stop_sidecars()
        cpu, started = usage.cpu_seconds(), time.monotonic()
        burst = await long_poll_burst(bench, args.clients)
        burst_cpu = (usage.cpu_seconds() - cpu, time.monotonic() - started, usage.memory_mib())
    finally:
        bench.stop()
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    ordered = sorted(rounds)
    return {
        "machine": machine_summary(),
        "fleet": {"sidecars": args.sidecars, "publishes": args.publishes,
                  "p50_s": statistics.median(ordered), "p99_s": percentile(ordered, 99.0),
                  "max_s": ordered[-1], "rounds_s": [round(r, 4) for r in rounds],
                  "control_cpu_s": fleet_cpu[0], "wall_s": fleet_cpu[1],
                  "control_rss_mib": fleet_cpu[2][0]},
        "long_polls": {**burst, "control_cpu_s": burst_cpu[0], "wall_s": burst_cpu[1],
                       "control_rss_mib": burst_cpu[2][0]},
        "control_peak_rss_mib": burst_cpu[2][1],
        "workdir": str(workdir),
    }


def report(result: dict[str, Any]) -> str:
    """The figures as Markdown."""
    fleet, polls = result["fleet"], result["long_polls"]
    rows = [
        [f"publish -> {fleet['sidecars']} sidecars active ({fleet['publishes']} publishes)",
         f"{fleet['p50_s'] * 1000:.0f} ms", f"{fleet['p99_s'] * 1000:.0f} ms", "p99 <= 1 s",
         f"{fleet['control_cpu_s']:.2f} s CPU in {fleet['wall_s']:.1f} s",
         f"{fleet['control_rss_mib']:.0f} MiB"],
        [f"{polls['clients']} long-poll clients served ({polls['served_200']} got 200)",
         f"{polls['p50_s'] * 1000:.0f} ms", f"{polls['all_served_s'] * 1000:.0f} ms (last)",
         "all <= 3 s",
         f"{polls['control_cpu_s']:.2f} s CPU in {polls['wall_s']:.1f} s",
         f"{polls['control_rss_mib']:.0f} MiB"],
    ]
    table = render_table(["measure", "p50", "p99 / max", "target", "control plane CPU",
                          "control plane RSS"], rows)
    return (f"{result['machine']}\n\n{table}\n\nControl-plane peak RSS "
            f"{result['control_peak_rss_mib']:.0f} MiB.")


def main() -> int:
    """Run the benchmark, print and store the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sidecars", type=int, default=20)
    parser.add_argument("--publishes", type=int, default=20)
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(report(result))
    write_results("propagation", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
