"""Decision-log upload (DESIGN §7.4): gzip JSON-array batches to the control plane's /v1/logs.

The :class:`Intake` of the status tests stands in for the control plane on a real socket; the
sink's uploader thread talks to it over TCP. ``close()`` blocks (it is called from a worker
thread by the decision log), so the tests call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ports import free_port
from prometheus_client import CollectorRegistry
from runtime_support import EngineFactory, Signing, sample
from test_status_report import Intake, eventually

from pdp.runtime import BundleUpdate, DecisionLog, DecisionLogConfig, RuntimeMetrics
from pdp.runtime.http_source import Backoff
from pdp.runtime.log_upload import UploadSink

ACCESS = {"user_id": "user-456", "service_id": "svc-1", "action": "read", "context": {}}
QUICK = Backoff(initial=0.05, factor=2.0, cap=0.2)
DROPPED = "pdp_decision_logs_dropped_total"


@pytest.fixture
async def intake() -> AsyncIterator[Intake]:
    """A running fake intake."""
    server = Intake()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> RuntimeMetrics:
    """The engine's metric families on the test's registry."""
    return RuntimeMetrics(registry)


@pytest.fixture
async def sinks() -> AsyncIterator[list[UploadSink]]:
    """Sinks a test built; closed afterwards (a no-op for those the test closed)."""
    built: list[UploadSink] = []
    yield built
    for sink in built:
        await asyncio.to_thread(sink.close)


def make_sink(sinks: list[UploadSink], url: str, metrics: RuntimeMetrics,
              **options: Any) -> UploadSink:
    """An upload sink with quick defaults for tests."""
    options.setdefault("upload_interval", 0.05)
    options.setdefault("backoff", QUICK)
    options.setdefault("flush_deadline", 0.5)
    sink = UploadSink(url, metrics=metrics, **options)
    sinks.append(sink)
    return sink


def lines(first: int, last: int) -> list[str]:
    """Encoded events ``first..last`` as the decision log hands them over."""
    return [json.dumps({"decision_id": f"d{n}", "result": {"allowed": True}})
            for n in range(first, last + 1)]


def uploaded_ids(intake: Intake) -> list[str]:
    """Decision ids of every event received, in arrival order."""
    return [event["decision_id"] for received in intake.received["logs"]
            for event in json.loads(gzip.decompress(received.body))]


async def test_events_arrive_as_a_gzip_json_array(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink],
        tmp_path: Path) -> None:
    """The body is OPA's upload format: a gzip-compressed JSON array, with the bearer token."""
    token = tmp_path / "token"
    token.write_text("log-token\n")
    sink = make_sink(sinks, intake.url("logs"), metrics, token_file=token)
    sink.write(lines(1, 3))
    await eventually(lambda: len(intake.received["logs"]) == 1)
    received = intake.received["logs"][0]
    assert received.headers["Content-Encoding"] == "gzip"
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["Authorization"] == "Bearer log-token"
    assert received.body[:2] == b"\x1f\x8b"  # the gzip magic: compressed on the wire
    events = json.loads(gzip.decompress(received.body))
    assert isinstance(events, list)
    assert [e["decision_id"] for e in events] == ["d1", "d2", "d3"]
    assert sample(metrics.registry, "pdp_decision_log_uploads_total", result="success") == 1


async def test_the_token_file_is_read_for_every_upload(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink],
        tmp_path: Path) -> None:
    """A rotated token is used by the next upload."""
    token = tmp_path / "token"
    token.write_text("first")
    sink = make_sink(sinks, intake.url("logs"), metrics, token_file=token)
    sink.write(lines(1, 1))
    await eventually(lambda: len(intake.received["logs"]) == 1)
    await asyncio.to_thread(token.write_text, "second")
    sink.write(lines(2, 2))
    await eventually(lambda: len(intake.received["logs"]) == 2)
    assert intake.received["logs"][1].headers["Authorization"] == "Bearer second"


async def test_events_are_batched_over_the_upload_interval(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """Events written between uploads go in one POST, not one each."""
    sink = make_sink(sinks, intake.url("logs"), metrics, upload_interval=0.3)
    for n in range(1, 11):
        sink.write(lines(n, n))
    await eventually(lambda: len(uploaded_ids(intake)) == 10)
    assert len(intake.received["logs"]) <= 2  # the first write may start the uploader mid-way


async def test_a_full_batch_goes_without_waiting_for_the_interval(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """Once ``batch_max_events`` are waiting, everything is uploaded at once in batches of it."""
    sink = make_sink(sinks, intake.url("logs"), metrics, upload_interval=3600,
                     batch_max_events=4)
    sink.write(lines(1, 1))  # starts the uploader, which then waits for a full batch
    sink.write(lines(2, 9))
    await eventually(lambda: len(uploaded_ids(intake)) == 9, within=2.0)
    sizes = [len(json.loads(gzip.decompress(r.body))) for r in intake.received["logs"]]
    assert sizes == [4, 4, 1]


async def test_batches_stay_under_the_byte_limit(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """Uncompressed batches hold no more than ``batch_max_bytes``."""
    events = lines(1, 20)
    limit = 5 * (len(events[0]) + 1) + 2
    sink = make_sink(sinks, intake.url("logs"), metrics, batch_max_bytes=limit)
    sink.write(events)
    await eventually(lambda: len(uploaded_ids(intake)) == 20)
    assert all(len(gzip.decompress(r.body)) <= limit for r in intake.received["logs"])
    assert uploaded_ids(intake) == [f"d{n}" for n in range(1, 21)]


async def test_a_failed_upload_is_retried_and_nothing_is_lost(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """After 503s the same events are delivered, once each and in order."""
    intake.answers = [503, 503]
    sink = make_sink(sinks, intake.url("logs"), metrics)
    sink.write(lines(1, 5))
    await eventually(lambda: len(intake.received["logs"]) == 3)
    delivered = json.loads(gzip.decompress(intake.received["logs"][2].body))
    assert [e["decision_id"] for e in delivered] == ["d1", "d2", "d3", "d4", "d5"]
    assert sample(metrics.registry, "pdp_decision_log_uploads_total",
                  result="server_error") == 2
    assert sample(metrics.registry, DROPPED, reason="upload_buffer_full") == 0


async def test_retries_back_off(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """A failing intake is retried with growing pauses (0.05 s doubling, capped at 0.2 s)."""
    intake.answer = 503
    sink = make_sink(sinks, intake.url("logs"), metrics)
    sink.write(lines(1, 1))
    await asyncio.sleep(1.2)
    attempts = intake.received["logs"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    # Equal jitter: each pause is between half and all of 0.05, 0.1, 0.2, 0.2, ... (without a
    # backoff the sink would have made hundreds of attempts in this time).
    assert 4 <= len(attempts) <= 14
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05 and min(gaps[2:]) >= 0.1


async def test_overflow_drops_the_oldest_events_and_counts_them(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """Beyond ``buffer_size`` the oldest events go, counted; the newest are delivered later."""
    intake.answer = 503
    sink = make_sink(sinks, intake.url("logs"), metrics, buffer_size=5)
    sink.write(lines(1, 3))
    await eventually(lambda: len(intake.received["logs"]) >= 1)
    sink.write(lines(4, 8))
    await asyncio.sleep(0.1)
    intake.answer = 200
    await eventually(lambda: sample(metrics.registry, "pdp_decision_log_uploads_total",
                                    result="success") == 1)
    delivered = json.loads(gzip.decompress(intake.received["logs"][-1].body))
    assert [e["decision_id"] for e in delivered] == ["d4", "d5", "d6", "d7", "d8"]
    assert sample(metrics.registry, DROPPED, reason="upload_buffer_full") == 3


async def test_a_rejected_batch_is_dropped_and_later_events_still_flow(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """A 400 will not change on retry: the batch is dropped and counted, the next one is sent."""
    intake.answers = [400]
    sink = make_sink(sinks, intake.url("logs"), metrics)
    sink.write(lines(1, 2))
    await eventually(lambda: len(intake.received["logs"]) == 1)
    sink.write(lines(3, 3))
    await eventually(lambda: len(intake.received["logs"]) == 2)
    assert uploaded_ids(intake) == ["d1", "d2", "d3"]
    assert sample(metrics.registry, DROPPED, reason="upload_rejected") == 2


async def test_a_redirected_batch_is_dropped_not_followed(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """A 307 means a wrong URL: the batch is counted as rejected and nothing goes elsewhere."""
    intake.answers = [307]
    sink = make_sink(sinks, intake.url("logs"), metrics)
    sink.write(lines(1, 2))
    await eventually(lambda: sample(metrics.registry, DROPPED, reason="upload_rejected") == 2)
    assert sample(metrics.registry, "pdp_decision_log_uploads_total", result="redirected") == 1
    assert intake.received["moved"] == []


async def test_shutdown_flushes_what_is_buffered(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """close() uploads the waiting events at once instead of at the next interval."""
    sink = make_sink(sinks, intake.url("logs"), metrics, upload_interval=3600)
    sink.write(lines(1, 7))
    started = time.monotonic()
    await asyncio.to_thread(sink.close)
    assert time.monotonic() - started < 1.0
    assert uploaded_ids(intake) == [f"d{n}" for n in range(1, 8)]
    assert sample(metrics.registry, DROPPED, reason="shutdown") == 0


async def test_shutdown_against_a_hanging_intake_ends_at_the_deadline(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """A control plane that never answers holds shutdown for the deadline, not for ever."""
    intake.hang = True
    sink = make_sink(sinks, intake.url("logs"), metrics, upload_interval=3600, timeout=30,
                     flush_deadline=0.5)
    sink.write(lines(1, 4))
    started = time.monotonic()
    await asyncio.to_thread(sink.close)
    assert 0.4 <= time.monotonic() - started < 1.0
    assert len(intake.received["logs"]) == 1
    assert sample(metrics.registry, DROPPED, reason="shutdown") == 4


async def test_shutdown_cuts_a_backoff_short(
        intake: Intake, metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """A sink pausing after a failure tries again at shutdown instead of waiting out the pause."""
    intake.answers = [503]
    sink = make_sink(sinks, intake.url("logs"), metrics,
                     backoff=Backoff(initial=60, factor=1, cap=60))
    sink.write(lines(1, 2))
    await eventually(lambda: len(intake.received["logs"]) == 1)
    started = time.monotonic()
    await asyncio.to_thread(sink.close)
    assert time.monotonic() - started < 1.0
    assert uploaded_ids(intake) == ["d1", "d2", "d1", "d2"]


async def test_an_unreachable_intake_keeps_the_events(
        metrics: RuntimeMetrics, sinks: list[UploadSink]) -> None:
    """Connection refused is counted as ``unreachable``; the events wait in the buffer."""
    sink = make_sink(sinks, f"http://127.0.0.1:{free_port()}/v1/logs", metrics)
    sink.write(lines(1, 3))
    await eventually(lambda: sample(metrics.registry, "pdp_decision_log_uploads_total",
                                    result="unreachable") >= 2)
    assert sample(metrics.registry, DROPPED, reason="upload_buffer_full") == 0
    await eventually(lambda: len(sink) == 3)


async def test_engine_decisions_reach_the_intake(
        make_engine: EngineFactory, signing: Signing, intake: Intake,
        sinks: list[UploadSink]) -> None:
    """Decisions of an engine whose decision log uploads arrive at the control plane."""
    engine = make_engine()
    sink = make_sink(sinks, intake.url("logs"), engine.metrics)
    engine.decision_log = DecisionLog(DecisionLogConfig(flush_interval_seconds=0.05), sink=sink,
                                      metrics=engine.metrics)
    await engine.start()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    answers = [engine.decide("check_access", ACCESS) for _ in range(3)]
    await engine.stop()
    events = [event for received in intake.received["logs"]
              for event in json.loads(gzip.decompress(received.body))]
    assert [e["decision_id"] for e in events] == [a["decision_id"] for a in answers]
    assert {e["revision"] for e in events} == {"r1"}


async def test_a_hanging_intake_never_delays_decisions(
        make_engine: EngineFactory, signing: Signing, intake: Intake,
        sinks: list[UploadSink]) -> None:
    """Decisions keep their microsecond latency while every upload hangs until its timeout."""
    intake.hang = True
    engine = make_engine()
    sink = make_sink(sinks, intake.url("logs"), engine.metrics, timeout=0.3,
                     buffer_size=1000, flush_deadline=0.2)
    engine.decision_log = DecisionLog(DecisionLogConfig(flush_interval_seconds=0.05,
                                                        flush_deadline_seconds=0.2),
                                      sink=sink, metrics=engine.metrics)
    await engine.start()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    def timeouts() -> float:
        return sample(engine.metrics.registry, "pdp_decision_log_uploads_total",
                      result="timeout")

    latencies: list[float] = []
    # At least 1.5 s and two timed-out uploads (retries back off, so on a slow machine that can
    # take longer): decisions are timed while uploads are hanging, not before or after.
    finish, deadline = time.monotonic() + 1.5, time.monotonic() + 20
    while (time.monotonic() < finish or timeouts() < 2) and time.monotonic() < deadline:
        started = time.perf_counter()
        engine.decide("check_access", ACCESS)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0)
    assert timeouts() >= 2
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < 0.002, f"decide() p99 {p99 * 1e6:.0f} µs while the intake hangs"
    assert sample(engine.metrics.registry, DROPPED, reason="upload_buffer_full") > 0


@pytest.mark.parametrize(("url", "option"), [
    ("ftp://control/v1/logs", {}),
    ("control:8282/v1/logs", {}),
    ("http://127.0.0.1:1/v1/logs", {"buffer_size": 0}),
    ("http://127.0.0.1:1/v1/logs", {"upload_interval": 0}),
])
def test_a_bad_configuration_is_refused(metrics: RuntimeMetrics, url: str,
                                        option: dict[str, Any]) -> None:
    """A URL that is not http(s) or a non-positive size or period is refused when built."""
    with pytest.raises(ValueError, match=r"http|must be"):
        UploadSink(url, metrics=metrics, **option)
