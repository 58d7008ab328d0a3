"""Timing and reporting helpers shared by the benchmarks in bench/.

Measurement method (the same for every engine, so ratios are fair):

- warm-up calls first, so caches, interned strings and lazily built structures are in place;
- the garbage collector is disabled while timing (and collected just before), so a collection
  triggered by one engine's garbage is not billed to whichever call happens to be running;
- each *sample* times a batch of identical calls with ``time.perf_counter_ns`` and divides by the
  batch size, which amortises the ~50-100 ns cost of reading the clock over microsecond-scale calls;
- engines are timed in alternating rounds on the same inputs (``time_interleaved``), so a change
  in machine load during the run affects all of them alike;
- samples cycle through the input pool, so the p99 reflects the slowest kinds of input, not only
  scheduler noise. The p99 is therefore "p99 of batch means", stated as such in the report.

The server benchmarks share the process helpers at the end: a free port, a readiness poll, a
process's CPU time from /proc, stopping a server, and writing ``bench/results/NAME.json``.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """Per-call latency of one engine on one workload, in microseconds."""

    median_us: float
    p99_us: float
    samples: int
    batch: int


def time_calls(
    call: Callable[[T], object],
    inputs: Sequence[T],
    *,
    samples: int,
    batch: int,
    warmup: int,
) -> Timing:
    """Time ``call(x)`` over ``inputs`` and return the median and p99 per-call latency."""
    return time_interleaved({"call": call}, inputs, samples=samples, batch=batch, warmup=warmup,
                            rounds=1)["call"]


def time_interleaved(
    calls: Mapping[str, Callable[[T], object]],
    inputs: Sequence[T],
    *,
    samples: int,
    batch: int,
    warmup: int,
    rounds: int,
) -> dict[str, Timing]:
    """Time several engines on the same inputs, in alternating rounds.

    On a shared machine the load changes over seconds; giving each engine a slice of its samples
    in every round (rotating who goes first) spreads such changes over all engines alike, so the
    ratios between them stay meaningful even when the absolute figures drift.
    """
    if not inputs:
        raise ValueError("time_interleaved needs at least one input")
    count = len(inputs)
    for call in calls.values():
        for i in range(warmup):
            call(inputs[i % count])
    per_round = max(1, samples // rounds)
    durations_ns: dict[str, list[int]] = {name: [] for name in calls}
    order = list(calls)
    perf_counter_ns = time.perf_counter_ns
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for name in order[r % len(order):] + order[: r % len(order)]:
                call, record = calls[name], durations_ns[name].append
                for s in range(r * per_round, (r + 1) * per_round):
                    x = inputs[s % count]
                    started = perf_counter_ns()
                    for _ in repeat(None, batch):
                        call(x)
                    record(perf_counter_ns() - started)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: _timing(d, batch) for name, d in durations_ns.items()}


def _timing(durations_ns: Sequence[int], batch: int) -> Timing:
    per_call_us = sorted(d / batch / 1000.0 for d in durations_ns)
    return Timing(median_us=statistics.median(per_call_us), p99_us=percentile(per_call_us, 99.0),
                  samples=len(per_call_us), batch=batch)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile of already sorted values (nearest-rank method)."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    rank = max(1, math.ceil(len(sorted_values) * pct / 100.0))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render rows as a GitHub-flavoured Markdown table (also readable on a terminal)."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), separator, *(line(r) for r in rows)])


def machine_summary() -> str:
    """One line naming the interpreter, the platform and how busy the machine was."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"Python {platform.python_version()} ({sys.implementation.name}) on "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load} at start"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago (fine on an idle machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers_200(port: int, path: str, body: bytes) -> bool:
    """POST ``body`` to ``path`` on 127.0.0.1 once; True when the status line says 200.

    A raw socket: a readiness poll needs nothing more, and the load generators are not Python.
    """
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(request)
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far (all its threads), from /proc.

    A server started through ``taskset`` is the same process (taskset execs), so this is its own.
    """
    # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_results(name: str, results: object) -> Path:
    """Write ``results`` as ``bench/results/NAME.json`` (git-ignored) and return the path."""
    path = Path(__file__).resolve().parent / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    return path


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM and wait (kill after 15 s)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
