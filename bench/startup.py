"""Sidecar start-up time and idle memory, against a bare process in the same run.

- **First ready decision**: time from ``exec`` of ``pdp run --dev`` to the first 200 answer of
  ``POST /v1/data/policyengine/check_access`` (target <= 1 s, DESIGN §12). ``--dev`` builds and
  signs the built-in bundle at start, so this includes the build, the verification and both
  servers binding.
- **Idle RSS**: ``VmRSS`` of that sidecar after it has served one decision and idled, divided by
  the RSS of a baseline process that only imports grpcio, aiohttp and pydantic and starts an
  aiohttp server and a grpc.aio server (target <= 1.2x).

    .venv/bin/python bench/startup.py [--runs 5]

Results are printed and written to ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DECISION_PATH = "/v1/data/policyengine/check_access"
ENVELOPE = json.dumps({"input": {"user_id": "user-456", "service_id": "svc-1",
                                 "action": "consume", "context": {"ip_address": "10.0.0.7"}}})
IDLE_SECONDS = 2.0

BASELINE = """
import asyncio, sys
import grpc, pydantic
from aiohttp import web
from grpc import aio

class Ping(pydantic.BaseModel):
    ok: bool = True

async def ping(request):
    return web.json_response(Ping().model_dump())

async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ping)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
    server = aio.server()
    server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers_200(port: int) -> bool:
    """One decision request; True when it is answered with 200.

    A raw socket, because ``bench/http.py`` next to this script shadows the standard library's
    ``http`` package (the script's directory comes first on sys.path).
    """
    body = ENVELOPE.encode()
    request = (
        f"POST {DECISION_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(request)
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def start_and_time(command: list[str], port: int, cwd: Path) -> tuple[subprocess.Popen[bytes],
                                                                          float]:
    """Exec ``command`` and poll until a decision answers 200; return it and the seconds taken."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = started + 30
    while not answers_200(port):
        if process.poll() is not None or time.perf_counter() > deadline:
            process.kill()
            raise RuntimeError(f"{command} never answered (exit {process.poll()})")
        time.sleep(0.005)
    return process, time.perf_counter() - started


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait (kill after 15 s)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure(command_for_port: Any, runs: int, cwd: Path) -> dict[str, Any]:
    """Start ``runs`` processes one after another; report start-up times and idle RSS."""
    times: list[float] = []
    rss: list[float] = []
    for _ in range(runs):
        port = free_port()
        process, seconds = start_and_time(command_for_port(port), port, cwd)
        time.sleep(IDLE_SECONDS)
        rss.append(rss_mib(process.pid))
        stop(process)
        times.append(seconds)
    return {"first_answer_s": times, "median_first_answer_s": statistics.median(times),
            "max_first_answer_s": max(times), "rss_mib": rss,
            "median_rss_mib": statistics.median(rss)}


def main() -> int:
    """Measure the baseline and the sidecar, print the ratios against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pdp-bench-startup-") as tmp:
        workdir = Path(tmp)
        baseline_file = workdir / "baseline.py"
        baseline_file.write_text(BASELINE)
        env_python = sys.executable

        def pdp_command(port: int) -> list[str]:
            return [env_python, "-m", "pdp", "run", "--dev", "--http-addr",
                    f"127.0.0.1:{port}", "--grpc-addr", "127.0.0.1:0", "--log-level", "warning"]

        # The first --dev run creates the development key; keep that out of the figures.
        warm_port = free_port()
        warm, _ = start_and_time(pdp_command(warm_port), warm_port, workdir)
        stop(warm)
        baseline = measure(lambda port: [env_python, str(baseline_file), str(port)],
                           args.runs, workdir)
        pdp = measure(pdp_command, args.runs, workdir)
    ratio = pdp["median_rss_mib"] / baseline["median_rss_mib"]
    print(f"baseline (grpcio+aiohttp+pydantic, both servers): RSS {baseline['median_rss_mib']:.1f}"
          f" MiB, first answer {baseline['median_first_answer_s'] * 1000:.0f} ms (median)")
    print(f"pdp run --dev: RSS {pdp['median_rss_mib']:.1f} MiB, first ready decision "
          f"{pdp['median_first_answer_s'] * 1000:.0f} ms median, "
          f"{pdp['max_first_answer_s'] * 1000:.0f} ms max over {args.runs} runs")
    print(f"RSS ratio {ratio:.2f} (target <= 1.20); first ready decision target <= 1000 ms")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    summary = {"baseline": baseline, "pdp": pdp, "rss_ratio": ratio, "runs": args.runs,
               "python": sys.version.split()[0], "cpu_count": os.cpu_count()}
    (results / "startup.json").write_text(json.dumps(summary, indent=2))
    return 0 if ratio <= 1.2 and pdp["max_first_answer_s"] <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
