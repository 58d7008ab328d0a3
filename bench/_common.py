"""Timing and reporting helpers shared by the benchmarks in bench/.

Measurement method (the same for every engine, so ratios are fair):

- warm-up calls first, so caches, interned strings and lazily built structures are in place;
- the garbage collector is disabled while timing (and collected just before), so a collection
  triggered by one engine's garbage is not billed to whichever call happens to be running;
- each *sample* times a batch of identical calls with ``time.perf_counter_ns`` and divides by the
  batch size, which amortises the ~50-100 ns cost of reading the clock over microsecond-scale calls;
- samples cycle through the input pool, so the p99 reflects the slowest kinds of input, not only
  scheduler noise. The p99 is therefore "p99 of batch means", stated as such in the report.
"""

from __future__ import annotations

import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
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
    if not inputs:
        raise ValueError("time_calls needs at least one input")
    count = len(inputs)
    for i in range(warmup):
        call(inputs[i % count])
    durations_ns = [0] * samples
    perf_counter_ns = time.perf_counter_ns
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for s in range(samples):
            x = inputs[s % count]
            started = perf_counter_ns()
            for _ in repeat(None, batch):
                call(x)
            durations_ns[s] = perf_counter_ns() - started
    finally:
        if gc_was_enabled:
            gc.enable()
    per_call_us = sorted(d / batch / 1000.0 for d in durations_ns)
    return Timing(
        median_us=statistics.median(per_call_us),
        p99_us=percentile(per_call_us, 99.0),
        samples=samples,
        batch=batch,
    )


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile of already sorted values (nearest-rank method)."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceiling without floats drifting
    return sorted_values[int(rank) - 1]


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
    """One line naming the interpreter and platform the figures were taken on."""
    return (
        f"Python {platform.python_version()} ({sys.implementation.name}) on "
        f"{platform.system()} {platform.machine()}, {platform.processor() or 'cpu unknown'}"
    )
