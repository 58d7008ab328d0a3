"""Sidecar start-up time and idle memory, against a bare process in the same run.

- **First ready decision**: time from ``exec`` of ``pdp run --dev`` to the first 200 answer of
  ``POST /v1/data/policyengine/check_access`` (target <= 1 s, DESIGN §12). ``--dev`` builds and
  signs the built-in bundle at start, so this includes the build, the verification and both
  servers binding.
- **CPU to the first answer**: user + system time the process has used when it first answers
  (all threads, from ``/proc/PID/stat``, 10 ms ticks). Unlike the wall-clock figure it does not
  grow when other processes share the cores, so it is the steadier one to compare changes with.
- **Idle RSS**: ``VmRSS`` of that sidecar after it has served one decision and idled, divided by
  the RSS of a baseline process that only imports grpcio, aiohttp and pydantic and starts an
  aiohttp server and a grpc.aio server (target <= 1.2x).

    .venv/bin/python bench/startup.py [--runs 5] [--prebuilt] [--against DIR]

``--prebuilt`` serves the built-in bundle the way a production sidecar does (``--bundle`` with a
bundle signed beforehand and ``--verification-key``), without ``--dev``'s build and signing.

The processes are started one at a time in interleaved rounds (baseline, pdp, then the
``--against`` tree if given), so a change of load on a shared machine falls on all of them alike.
``--against DIR`` adds another source tree of pdp, run with ``PYTHONPATH=DIR`` (which takes
precedence over the editable install), to compare a change with what it replaces::

    mkdir /tmp/pdp-before && git archive REV pdp bundles | tar -x -C /tmp/pdp-before
    .venv/bin/python bench/startup.py --runs 7 --against /tmp/pdp-before

Results are printed and written to ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import answers_200, cpu_seconds, free_port, stop, write_results

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


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def start_and_time(command: list[str], port: int, cwd: Path,
                   env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], float]:
    """Exec ``command`` and poll until a decision answers 200; return it and the seconds taken."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = started + 30
    while not answers_200(port, DECISION_PATH, ENVELOPE.encode()):
        if process.poll() is not None or time.perf_counter() > deadline:
            process.kill()
            raise RuntimeError(f"{command} never answered (exit {process.poll()})")
        time.sleep(0.005)
    return process, time.perf_counter() - started


def prebuilt_bundle(python: str, workdir: Path) -> list[str]:
    """Sign the built-in bundle once with a fresh key; the `pdp run` options that serve it."""
    keys, bundle = workdir / "keys", workdir / "builtin.tar.gz"
    subprocess.run([python, "-m", "pdp", "keygen", "--key-id", "bench", "--out-dir", str(keys)],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([python, "-m", "pdp", "bundle", "build", str(ROOT / "bundles" / "marketplace"),
                    "-o", str(bundle), "--signing-key", str(keys / "bench.key"),
                    "--key-id", "bench"], check=True, stdout=subprocess.DEVNULL)
    return ["--bundle", str(bundle), "--verification-key", str(keys / "bench.pem")]


@dataclass
class Contender:
    """One kind of process under test and the samples taken from it."""

    label: str
    command: Callable[[int], list[str]]
    env: dict[str, str] | None = None
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)

    def sample(self, cwd: Path) -> None:
        """Start one process, time its first answer, read its RSS after idling, stop it."""
        port = free_port()
        process, seconds = start_and_time(self.command(port), port, cwd, self.env)
        try:
            self.cpu.append(cpu_seconds(process.pid))
            time.sleep(IDLE_SECONDS)
            self.rss.append(rss_mib(process.pid))
        finally:
            stop(process)
        self.times.append(seconds)

    def summary(self) -> dict[str, Any]:
        """The samples and their medians."""
        return {"first_answer_s": self.times,
                "median_first_answer_s": statistics.median(self.times),
                "max_first_answer_s": max(self.times), "cpu_to_first_answer_s": self.cpu,
                "median_cpu_to_first_answer_s": statistics.median(self.cpu), "rss_mib": self.rss,
                "median_rss_mib": statistics.median(self.rss)}


def report(label: str, pdp: dict[str, Any], baseline: dict[str, Any], runs: int) -> float:
    """Print one pdp tree's figures against the baseline; return its RSS ratio."""
    ratio: float = pdp["median_rss_mib"] / baseline["median_rss_mib"]
    print(f"{label}: RSS {pdp['median_rss_mib']:.1f} MiB (ratio {ratio:.2f}, target <= 1.20), "
          f"first ready decision {pdp['median_first_answer_s'] * 1000:.0f} ms median, "
          f"{min(pdp['first_answer_s']) * 1000:.0f}-{pdp['max_first_answer_s'] * 1000:.0f} ms "
          f"over {runs} runs (target <= 1000 ms); CPU used by then "
          f"{pdp['median_cpu_to_first_answer_s'] * 1000:.0f} ms median")
    return ratio


def main() -> int:
    """Measure the baseline and the sidecar in interleaved rounds; print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--prebuilt", action="store_true",
                        help="serve the built-in bundle signed beforehand (--bundle, as in "
                             "production) instead of building it at start (--dev)")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="another pdp source tree (holding pdp/) to measure alongside")
    args = parser.parse_args()
    if args.against is not None and not (args.against / "pdp" / "__init__.py").is_file():
        parser.error(f"--against {args.against}: no pdp/__init__.py there")
    with tempfile.TemporaryDirectory(prefix="pdp-bench-startup-") as tmp:
        workdir = Path(tmp)
        baseline_file = workdir / "baseline.py"
        baseline_file.write_text(BASELINE)
        python = sys.executable

        served = ["--dev"] if not args.prebuilt else prebuilt_bundle(python, workdir)

        def pdp_command(port: int) -> list[str]:
            return [python, "-m", "pdp", "run", *served, "--http-addr", f"127.0.0.1:{port}",
                    "--grpc-addr", "127.0.0.1:0", "--log-level", "warning"]

        label = "pdp run --dev" if not args.prebuilt else "pdp run --bundle (built-in, prebuilt)"
        contenders = [Contender("baseline", lambda port: [python, str(baseline_file), str(port)]),
                      Contender(label, pdp_command)]
        if args.against is not None:
            env = {**os.environ, "PYTHONPATH": str(args.against.resolve())}
            contenders.append(Contender(f"{label} ({args.against})", pdp_command, env))
        # The first --dev run creates the development key; keep that out of the figures.
        for contender in contenders[1:]:
            warm_port = free_port()
            warm, _ = start_and_time(pdp_command(warm_port), warm_port, workdir, contender.env)
            stop(warm)
        for _ in range(args.runs):
            for contender in contenders:
                contender.sample(workdir)
    baseline = contenders[0].summary()
    print(f"baseline (grpcio+aiohttp+pydantic, both servers): RSS {baseline['median_rss_mib']:.1f}"
          f" MiB, first answer {baseline['median_first_answer_s'] * 1000:.0f} ms, CPU by then "
          f"{baseline['median_cpu_to_first_answer_s'] * 1000:.0f} ms (medians)")
    pdp = contenders[1].summary()
    ratio = report(contenders[1].label, pdp, baseline, args.runs)
    summary: dict[str, Any] = {"baseline": baseline, "pdp": pdp, "rss_ratio": ratio,
                               "runs": args.runs, "python": sys.version.split()[0],
                               "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    if args.against is not None:
        other = contenders[2].summary()
        summary["against"] = {"tree": str(args.against), **other,
                              "rss_ratio": report(contenders[2].label, other, baseline, args.runs)}
    write_results("startup", summary)
    return 0 if ratio <= 1.2 and pdp["max_first_answer_s"] <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
