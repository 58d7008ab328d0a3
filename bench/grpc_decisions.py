"""gRPC decision benchmark: the sidecar's ValidateService vs a bare grpc.aio server, in one run.

Three measurements, each against a baseline taken in the same invocation (DESIGN §12):

1. **Throughput.** The sidecar as users run it (``pdp run --dev``: the marketplace bundle built,
   signed and verified at start, both servers, the gRPC request counter) and a bare ``grpc.aio``
   server answering the same method with a constant response, each pinned to core 0 with
   ``taskset``; h2load on core 1 sends the same framed
   ``ValidateServiceRequest`` (the compliant example listing). Target: pdp >= 80% of the echo's
   requests/s.
2. **Latency at a fixed rate.** 1,000 requests/s to the sidecar on one core from an open-loop
   ``grpc.aio`` client process on the other core (see :func:`latency_at_rate` for why not h2load),
   interleaved with the echo for ``--rounds`` rounds; the run with the median p99 is kept.
   Target: p99 <= 2 ms.
3. **Scaling.** Two ``pdp run --reuse-port`` workers sharing the port (SO_REUSEPORT),
   pinned to cores 0 and 1, vs one worker on core 0, the same unpinned h2load against both (with
   two cores, the load generator shares them with the two workers). Target: >= 1.7x.

Throughput and latency runs are interleaved for ``--rounds`` rounds and the median run of each kind
is kept.

The throughput load generator is h2load (nghttp2-client, C, one thread) speaking gRPC over h2c: it
sends the gRPC-framed body with ``content-type: application/grpc``. h2load counts HTTP status
only, so each server's answer is checked with a real gRPC client before it is measured.

    .venv/bin/python bench/grpc_decisions.py [--duration 10] [--connections 16] [--streams 8]
        [--rounds 3]

Results are printed and written to ``bench/results/grpc.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from pathlib import Path
from typing import Any

from _common import cpu_seconds, free_port, write_results

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "bundles" / "marketplace" / "examples" / "compliant-listing.json"
METHOD = "/policyengine.v1.PolicyEngineService/ValidateService"
WARM_UP_S = 2


# --- the baseline server (a child process: `bench/grpc_decisions.py --serve echo --port N`) ---


async def _serve_echo(port: int) -> None:
    import grpc
    from grpc import aio

    from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb

    answer = pb.ValidateServiceResponse(compliant=True, policy_version="echo")

    async def validate(request: Any, context: Any) -> Any:
        return answer

    handler = grpc.unary_unary_rpc_method_handler(
        validate,
        request_deserializer=pb.ValidateServiceRequest.FromString,
        response_serializer=pb.ValidateServiceResponse.SerializeToString,
    )
    server = aio.server(options=[("grpc.so_reuseport", 0)])
    handlers = {"ValidateService": handler}
    # Generic handlers only, as the sidecar registers them (pdp/sidecar/grpc_server.py).
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("policyengine.v1.PolicyEngineService", handlers),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("READY", flush=True)
    await server.wait_for_termination()


# --- harness -----------------------------------------------------------------------------------


def request_bytes() -> bytes:
    """The serialized ValidateServiceRequest every client sends."""
    from google.protobuf import json_format

    from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb

    message = json_format.ParseDict(json.loads(EXAMPLE.read_text()), pb.ValidateServiceRequest())
    return bytes(message.SerializeToString())


def start_server(
    kind: str, port: int, core: str, *, reuse_port: bool = False
) -> subprocess.Popen[str]:
    """Start one server process pinned to ``core`` and wait until it serves.

    pdp is the sidecar as users run it: ``pdp run --dev`` (the built-in bundle, built, signed and
    verified at start; both servers, the gRPC request counter, its HTTP listener on a spare port).
    """
    if kind == "pdp":
        # Each worker's HTTP listener has a port of its own: its readiness is that worker's, not
        # whichever worker the shared gRPC port happens to reach.
        http_port = free_port()
        command = ["taskset", "-c", core, sys.executable, "-m", "pdp", "run", "--dev",
                   "--grpc-addr", f"127.0.0.1:{port}", "--http-addr", f"127.0.0.1:{http_port}",
                   "--log-level", "warning", *(["--reuse-port"] if reuse_port else [])]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, text=True)
        wait_ready(http_port, process)
        check_answer(port, kind)
        return process
    command = ["taskset", "-c", core, sys.executable, __file__, "--serve", kind,
               "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "READY":
        process.kill()
        raise SystemExit(f"{kind} server did not start: {line!r}")
    return process


def wait_ready(http_port: int, process: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Poll the worker's ``/health/ready`` until it answers 200 (its bundle is active)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"pdp run exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health/ready", timeout=1):
                return
        except OSError:  # refused while starting, or 503 (HTTPError) before the bundle is active
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"pdp run was not ready within {timeout} s")


def stop(processes: list[subprocess.Popen[str]]) -> None:
    """Terminate the server processes and reap them."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(10)


def check_answer(port: int, kind: str) -> None:
    """One real gRPC call: the server answers ValidateService with a decision."""
    import grpc

    from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            METHOD, response_deserializer=pb.ValidateServiceResponse.FromString
        )
        answer = call(request_bytes(), timeout=5)
    if not answer.compliant or (kind == "pdp" and not answer.decision_id):
        raise SystemExit(f"{kind} answered unexpectedly: {answer}")


def h2load(
    port: int, body: Path, args: list[str], core: str | None, *, servers: list[int],
    warm_up: float,
) -> dict[str, Any]:
    """Run h2load against ``port`` and return its figures (requests/s, failures, server CPU).

    The servers' CPU time is read when the warm-up ends and when h2load does: CPU per request is
    the steadier measure of capacity when other processes share the cores.
    """
    command = [
        "h2load", "-t", "1", "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-d", str(body), *args, f"http://127.0.0.1:{port}{METHOD}",
    ]
    if core is not None:
        command = ["taskset", "-c", core, *command]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        time.sleep(warm_up)
        cpu_before = sum(cpu_seconds(pid) for pid in servers)
        output, _ = process.communicate()
        cpu_after = sum(cpu_seconds(pid) for pid in servers)
    if process.returncode != 0:
        raise SystemExit(f"h2load failed ({process.returncode}):\n{output}")
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output)
    done = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored", output)
    if rps is None or done is None:
        raise SystemExit(f"cannot read h2load's report:\n{output}")
    finished = int(done.group(2))
    return {
        "requests_per_second": float(rps.group(1)),
        "done": finished,
        "failed": int(done.group(4)) + int(done.group(5)),
        "server_cpu_us_per_request": (cpu_after - cpu_before) / max(finished, 1) * 1e6,
    }


def throughput(
    kind: str,
    body: Path,
    args: argparse.Namespace,
    *,
    workers: int = 1,
    load_core: str | None = "1",
) -> dict[str, Any]:
    """Requests/s of ``workers`` servers of ``kind`` (on cores 0, 1) under a saturating h2load."""
    port = free_port()
    cores = ["0", "1"][:workers]
    processes = [start_server(kind, port, core, reuse_port=workers > 1) for core in cores]
    try:
        check_answer(port, kind)
        load = ["-c", str(args.connections), "-m", str(args.streams),
                "-D", str(args.duration), "--warm-up-time", str(WARM_UP_S)]
        return h2load(port, body, load, core=load_core,
                      servers=[process.pid for process in processes], warm_up=WARM_UP_S)
    finally:
        stop(processes)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median requests/s (other processes on the machine make runs vary)."""
    ordered = sorted(runs, key=lambda run: float(run["requests_per_second"]))
    chosen = dict(ordered[len(ordered) // 2])
    chosen["all_requests_per_second"] = [run["requests_per_second"] for run in runs]
    return chosen


def median_p99(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The latency run with the median p99, with every run's p99 alongside."""
    ordered = sorted(runs, key=lambda run: float(run["p99_ms"]))
    chosen = dict(ordered[len(ordered) // 2])
    chosen["all_p99_ms"] = [run["p99_ms"] for run in runs]
    return chosen


async def _paced_client(port: int, rate: int, seconds: float) -> dict[str, Any]:
    from grpc import aio

    data = request_bytes()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD)
        for _ in range(500):  # warm-up: connection, server caches, this client's code paths
            await call(data)
        latencies: list[float] = []

        async def one() -> None:
            started = time.perf_counter()
            await call(data)
            latencies.append((time.perf_counter() - started) * 1000.0)

        loop = asyncio.get_running_loop()
        total = int(rate * seconds)
        began = loop.time()
        tasks = []
        for i in range(total):
            # Open loop: each request leaves at its scheduled time, whatever the previous ones do.
            delay = began + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - began
    latencies.sort()
    return {
        "requests_per_second": round(total / elapsed, 1),
        "done": len(latencies),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
        "max_ms": round(latencies[-1], 3),
    }


def latency_at_rate(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """p50/p99 of a ``kind`` server on one core at 1,000 requests/s, from a paced client on core 1.

    h2load's ``--rps`` releases requests in bursts (its p50 at 1,000/s is 3 ms where a lone
    request takes well under 1 ms), so this uses an open-loop asyncio gRPC client that sends one
    request every millisecond. Its own Python overhead is included in the figures.
    """
    port = free_port()
    processes = [start_server(kind, port, "0")]
    try:
        check_answer(port, kind)
        command = ["taskset", "-c", "1", sys.executable, __file__, "--paced-client",
                   "--port", str(port), "--duration", str(args.duration)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        stop(processes)
    figures: dict[str, Any] = json.loads(output)
    figures["load_generator"] = "open-loop grpc.aio client, 1 process on core 1"
    return figures


async def _component_costs() -> dict[str, float]:
    from prometheus_client import CollectorRegistry

    from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
    from pdp.bundle import JwsSigner, build_bundle, generate_private_key, public_pem
    from pdp.runtime import BundleUpdate, Engine, RuntimeConfig
    from pdp.sidecar import grpc_convert, grpc_inputs

    with tempfile.TemporaryDirectory(prefix="pdp-bench-grpc-") as raw:
        key = generate_private_key()
        (Path(raw) / "bench.pem").write_bytes(public_pem(key))
        config = RuntimeConfig(verification_keys=(Path(raw) / "bench.pem",))
        engine = Engine(config, registry=CollectorRegistry(), sources=[])
        await engine.activate(BundleUpdate(data=build_bundle(
            ROOT / "bundles" / "marketplace", signer=JwsSigner(key, "bench"), revision="bench",
            sequence=1,
        )))
    data = request_bytes()
    request = pb.ValidateServiceRequest.FromString(data)
    document, plainly_valid = grpc_inputs.listing_input(request)
    assert plainly_valid, "the example listing should take the typed fast path"
    decision = engine.decide("validate_service", document, trusted_input=True)
    # The servicer's path (typed conversion, trusted decision) and, for comparison, the generic
    # conversion and the schema-checked decision the HTTP shell pays for.
    steps: dict[str, Any] = {
        "parse_request_us": lambda: pb.ValidateServiceRequest.FromString(data),
        "request_to_input_us": lambda: grpc_inputs.listing_input(request),
        "engine_decide_us": lambda: engine.decide(
            "validate_service", document, trusted_input=True),
        "generic_request_to_input_us": lambda: grpc_convert.request_input(request),
        "schema_checked_decide_us": lambda: engine.decide("validate_service", document),
        "decision_to_response_us": lambda: grpc_convert.validate_service_response(
            decision
        ).SerializeToString(),
    }
    costs = {}
    for name, step in steps.items():
        runs = [timeit.timeit(step, number=2000) / 2000 * 1e6 for _ in range(5)]
        costs[name] = round(min(runs), 1)
    return costs


def component_costs() -> dict[str, float]:
    """Microseconds per request of each step pdp adds to a bare server (best of 5, in-process)."""
    return asyncio.run(_component_costs())


def main() -> int:
    """Run the three measurements and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16, help="h2load clients per worker")
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams per client")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median kept)")
    parser.add_argument("--serve", choices=("echo",), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--paced-client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "echo":
        asyncio.run(_serve_echo(args.port))
        return 0
    if args.paced_client:
        print(json.dumps(asyncio.run(_paced_client(args.port, 1000, args.duration))))
        return 0
    for tool in ("h2load", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install -y nghttp2-client util-linux)")
    with tempfile.TemporaryDirectory(prefix="pdp-bench-grpc-") as raw:
        body = Path(raw) / "request.bin"
        message = request_bytes()
        body.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
        # Interleaved rounds, so a noisy neighbour slows both servers rather than one of them.
        echo_runs, pdp_runs, one_runs, two_runs = [], [], [], []
        for _ in range(args.rounds):
            echo_runs.append(throughput("echo", body, args))
            pdp_runs.append(throughput("pdp", body, args))
            one_runs.append(throughput("pdp", body, args, load_core=None))
            two_runs.append(throughput("pdp", body, args, workers=2, load_core=None))
        # Each round's echo and pdp ran back to back: their ratio is the paired comparison.
        paired = sorted(p["requests_per_second"] / e["requests_per_second"]
                        for e, p in zip(echo_runs, pdp_runs, strict=True))
        paired_cpu = sorted(e["server_cpu_us_per_request"] / p["server_cpu_us_per_request"]
                            for e, p in zip(echo_runs, pdp_runs, strict=True))
        echo, pdp = median_run(echo_runs), median_run(pdp_runs)
        one, two = median_run(one_runs), median_run(two_runs)
        # One p99 of 8,000 calls moves by whole milliseconds with a single stall of either
        # process or of the client, so latency is measured in interleaved rounds as well and
        # the run with the median p99 of each kind is kept.
        fixed_echo_runs, fixed_runs = [], []
        for _ in range(args.rounds):
            fixed_echo_runs.append(latency_at_rate("echo", args))
            fixed_runs.append(latency_at_rate("pdp", args))
        fixed_echo, fixed = median_p99(fixed_echo_runs), median_p99(fixed_runs)
    costs = component_costs()
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "load_generator": "h2load (nghttp2) 1 thread, gRPC over h2c",
        "echo": echo,
        "pdp": pdp,
        "ratio_pdp_to_echo": pdp["requests_per_second"] / echo["requests_per_second"],
        "ratio_per_round": paired,
        "ratio_per_round_median": statistics.median(paired),
        "cpu_ratio_per_round": paired_cpu,
        "cpu_ratio_median": statistics.median(paired_cpu),
        "fixed_rate_1000_echo": fixed_echo,
        "fixed_rate_1000": fixed,
        "one_worker_load_unpinned": one,
        "two_workers_load_unpinned": two,
        "scaling_two_to_one": two["requests_per_second"] / one["requests_per_second"],
        "pdp_steps_in_process": costs,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(summary, indent=2))
    write_results("grpc", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
