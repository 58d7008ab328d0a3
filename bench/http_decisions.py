"""HTTP decision throughput and latency: `pdp run` vs a bare aiohttp JSON echo, in the same run.

Both servers are pinned to one core (``taskset``) and measured in alternating rounds with the same
check_access envelope, from the other core:

- **saturation**: ``wrk`` with 64 connections, back to back: requests/s (target: pdp >= 80% of
  the echo's) and the latency it implies (64 in flight: mean latency = 64 / throughput). The
  server's CPU time per request is also recorded: on a shared machine the ratio of CPU per
  request is the steadier estimate of the same capacity ratio;
- **fixed rate**: ``h2load --h1`` at 1,000 requests/s over 8 connections for the p99 of a
  server that is not saturated (target p99 <= 10 ms).

    .venv/bin/python bench/http_decisions.py [--duration 10] [--rounds 3] [--connections 64]

Needs ``wrk``, ``h2load`` (``apt-get install -y wrk nghttp2-client``) and ``taskset``. Results
are printed and written to ``bench/results/http.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import answers_200, cpu_seconds, free_port, stop, write_results

ROOT = Path(__file__).resolve().parent.parent
DECISION_PATH = "/v1/data/policyengine/check_access"
ENVELOPE = {
    "input": {
        "user_id": "user-456",
        "service_id": "svc-1",
        "action": "consume",
        "context": {"ip_address": "10.0.0.7"},
    }
}

# wrk prints this JSON line in `done`, so nothing has to be scraped from its human report.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "errors": %%d, "non2xx": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency.max))
end
"""

ECHO_SERVER = """
import sys
from aiohttp import web

async def echo(request):
    return web.json_response(await request.json())

app = web.Application()
app.router.add_post("/{tail:.*}", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def wait_until_answering(port: int, path: str, body: bytes, timeout: float = 60.0) -> None:
    """Poll until the server answers 200, or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers_200(port, path, body):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not answer {path} within {timeout} s")


def run_wrk(
    url: str, script: Path, *, duration: int, connections: int, core: int
) -> dict[str, Any]:
    """Run wrk pinned to ``core`` and return the JSON line its `done` hook printed."""
    command = [
        "taskset", "-c", str(core), "wrk", "-t", "1", "-c", str(connections),
        "-d", f"{duration}s", "--timeout", "5s", "-s", str(script), url,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    match = re.search(r"^\{.*\}$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    result: dict[str, Any] = json.loads(match.group(0))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


FIXED_RATE = 1000
FIXED_RATE_CONNECTIONS = 8


def run_h2load(url: str, workdir: Path, *, duration: int, core: int) -> dict[str, Any]:
    """POST at FIXED_RATE requests/s over FIXED_RATE_CONNECTIONS; latency percentiles in µs.

    h2load paces each connection at rate / connections requests per second; its per-request log
    (start, status, microseconds) gives the percentiles its summary does not print.
    """
    body, log = workdir / "body.json", workdir / "h2load.log"
    body.write_text(json.dumps(ENVELOPE))
    log.unlink(missing_ok=True)
    per_connection = FIXED_RATE // FIXED_RATE_CONNECTIONS
    command = [
        "taskset", "-c", str(core), "h2load", "--h1", "-c", str(FIXED_RATE_CONNECTIONS),
        "--rps", str(per_connection), "-D", str(duration), "-d", str(body),
        "-H", "content-type: application/json", "--log-file", str(log), url,
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    latencies = sorted(int(row[2]) for row in rows)
    failed = sum(1 for row in rows if row[1] != "200")
    return {
        "rate": FIXED_RATE, "connections": FIXED_RATE_CONNECTIONS, "requests": len(rows),
        "failed": failed, "p50_us": latencies[len(latencies) // 2],
        "p99_us": latencies[int(len(latencies) * 0.99)],
    }


def measure(name: str, command: list[str], port: int, args: argparse.Namespace,
            script: Path, cwd: Path) -> dict[str, Any]:
    """Start one server pinned to the server core, warm it up, measure it, stop it."""
    pinned = ["taskset", "-c", str(args.server_core), *command]
    server = subprocess.Popen(pinned, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}{DECISION_PATH}"
    try:
        wait_until_answering(port, DECISION_PATH, json.dumps(ENVELOPE).encode())
        run_wrk(url, script, duration=2, connections=args.connections, core=args.client_core)
        cpu_before = cpu_seconds(server.pid)
        result = run_wrk(
            url, script, duration=args.duration, connections=args.connections,
            core=args.client_core,
        )
        result["cpu_us_per_request"] = (
            (cpu_seconds(server.pid) - cpu_before) * 1e6 / max(result["requests"], 1))
        result["fixed_rate"] = run_h2load(url, cwd, duration=args.duration, core=args.client_core)
    finally:
        stop(server)
    result["server"] = name
    return result


def print_row(row: dict[str, Any]) -> None:
    """One measurement as a line of text."""
    fixed = row["fixed_rate"]
    print(f"{row['server']:<14} saturated {row['rps']:>6.0f} req/s (p50 {row['p50_us'] / 1000:.1f}"
          f" ms, p99 {row['p99_us'] / 1000:.1f} ms, errors {row['errors'] + row['non2xx']}); "
          f"{row['cpu_us_per_request']:.0f} µs CPU/request; "
          f"at {fixed['rate']} req/s p50 {fixed['p50_us'] / 1000:.2f} ms p99 "
          f"{fixed['p99_us'] / 1000:.2f} ms (failed {fixed['failed']})", flush=True)


def main() -> int:
    """Alternate echo and pdp measurements; print each round and the median ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating echo/pdp rounds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    args = parser.parse_args()
    for tool in ("wrk", "h2load", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench/http_decisions.py needs {tool} (see its docstring)", file=sys.stderr)
            return 2
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pdp-bench-http-") as tmp:
        workdir = Path(tmp)
        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT % json.dumps(ENVELOPE))
        echo_file = workdir / "echo_server.py"
        echo_file.write_text(ECHO_SERVER)
        for number in range(1, args.rounds + 1):
            echo_port, pdp_port = free_port(), free_port()
            echo = measure("aiohttp echo", [sys.executable, str(echo_file), str(echo_port)],
                           echo_port, args, script, workdir)
            print_row(echo)
            pdp = measure(
                "pdp run --dev",
                [sys.executable, "-m", "pdp", "run", "--dev", "--http-addr",
                 f"127.0.0.1:{pdp_port}", "--grpc-addr", "127.0.0.1:0", "--log-level", "warning"],
                pdp_port, args, script, workdir,
            )
            print_row(pdp)
            ratio = pdp["rps"] / echo["rps"]
            cpu_ratio = echo["cpu_us_per_request"] / pdp["cpu_us_per_request"]
            print(f"round {number}: pdp / echo = {ratio:.2f} by requests/s, {cpu_ratio:.2f} by "
                  "CPU per request", flush=True)
            rounds.append({"echo": echo, "pdp": pdp, "ratio": ratio, "cpu_ratio": cpu_ratio,
                           "loadavg": os.getloadavg()})
    ratio = statistics.median(r["ratio"] for r in rounds)
    cpu_ratio = statistics.median(r["cpu_ratio"] for r in rounds)
    print(f"median capacity ratio by CPU per request = {cpu_ratio:.2f} (robust to other load)")
    p99_ms = statistics.median(r["pdp"]["fixed_rate"]["p99_us"] for r in rounds) / 1000
    print(f"median pdp / echo = {ratio:.2f} (target >= 0.80); median pdp p99 at {FIXED_RATE} "
          f"req/s = {p99_ms:.2f} ms (target <= 10 ms)")
    summary = {"rounds": rounds, "median_ratio": ratio, "median_cpu_ratio": cpu_ratio,
               "median_pdp_p99_ms": p99_ms,
               "connections": args.connections, "duration_s": args.duration,
               "cpu_count": os.cpu_count()}
    write_results("http", summary)
    failures = sum(r["pdp"]["errors"] + r["pdp"]["non2xx"] + r["pdp"]["fixed_rate"]["failed"]
                   for r in rounds)
    return 0 if ratio >= 0.8 and p99_ms <= 10 and failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
