"""The decision log (DESIGN §7.4): masked events, bounded buffer, counted drops, flush at stop."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import stat
import time
from collections import UserDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from runtime_support import COMPLIANT_LISTING, MARKETPLACE, EngineFactory, Signing, sample

from pdp.bundle import build_bundle, read_source_dir
from pdp.runtime import BundleUpdate, DecisionLog, DecisionLogConfig, FileSink, RuntimeMetrics
from pdp.runtime.decision_log import mask_event, parse_pointer

ACCESS = {"user_id": "user-456", "service_id": "svc-1", "action": "read",
          "context": {"ip_address": "10.0.0.7", "api_key": "sk-live-123"}}


class ListSink:
    """An in-memory sink: the lines written, in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.closed = False

    def write(self, lines: Sequence[str]) -> None:
        self.lines.extend(lines)

    def close(self) -> None:
        self.closed = True

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


class Unreadable(UserDict[str, Any]):
    """A mapping that is not plain JSON data: the masker cannot prove what it holds."""


def make_log(registry: CollectorRegistry, sink: ListSink, **config: Any) -> DecisionLog:
    settings = {"sink": "stdout", **config}
    return DecisionLog(DecisionLogConfig(**settings), sink=sink,
                       metrics=RuntimeMetrics(registry))


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"decision_id": f"d{n}", "timestamp": 1_800_000_000.0 + n, "query": "check_access",
            "input": {"user_id": f"u{n}"}, "result": {"allowed": True}, "revision": "r1",
            "latency_ms": 0.1, "caller": "test", **extra}


async def test_engine_logs_one_event_per_decision(make_engine: EngineFactory,
                                                  signing: Signing) -> None:
    """Each decision becomes one JSON line with id, time, query, input, result, revision, caller."""
    stream = io.StringIO()
    engine = make_engine(decision_log={"sink": "stdout"}, decision_stream=stream,
                         new_id=lambda: "fixed-id")
    await engine.activate(BundleUpdate(signing.bundle(3), source="test"))
    answer = engine.decide("check_access", ACCESS, caller="10.1.2.3")
    await engine.stop()
    (line,) = stream.getvalue().splitlines()
    logged = json.loads(line)
    assert logged["decision_id"] == answer["decision_id"] == "fixed-id"
    assert logged["query"] == "check_access"
    assert logged["input"]["user_id"] == "user-456"
    assert logged["result"]["allowed"] == answer["allowed"]
    assert logged["revision"] == "r3"
    assert logged["caller"] == "10.1.2.3"
    assert logged["timestamp"].endswith("Z")
    assert logged["latency_ms"] >= 0


async def test_a_caller_function_runs_only_when_a_log_records_it(make_engine: EngineFactory,
                                                                  signing: Signing) -> None:
    """Shells pass the peer lookup as a function: logged, it names the caller; unlogged (the
    default), it is never called, so no decision pays for an address nobody reads."""
    lookups: list[str] = []

    def peer() -> str:
        lookups.append("looked up")
        return "ipv4:10.1.2.3:5555"

    stream = io.StringIO()
    logged = make_engine(decision_log={"sink": "stdout"}, decision_stream=stream)
    unlogged = make_engine(registry=CollectorRegistry())
    for engine in (logged, unlogged):
        await engine.activate(BundleUpdate(signing.bundle(3), source="test"))
    unlogged.decide("check_access", ACCESS, caller=peer)
    assert lookups == []
    logged.decide("check_access", ACCESS, caller=peer)
    await logged.stop()
    await unlogged.stop()
    assert lookups == ["looked up"]
    assert json.loads(stream.getvalue())["caller"] == "ipv4:10.1.2.3:5555"


async def test_masked_fields_leave_the_log_but_not_the_answer(
        make_engine: EngineFactory, signing: Signing) -> None:
    """A masked pointer is erased from the logged input; the caller's data is untouched."""
    stream = io.StringIO()
    engine = make_engine(decision_log={"sink": "stdout",
                                       "mask": ["/input/context/api_key"]},
                         decision_stream=stream)
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    request = json.loads(json.dumps(ACCESS))
    engine.decide("check_access", request)
    await engine.stop()
    logged = json.loads(stream.getvalue())
    assert "api_key" not in logged["input"]["context"]
    assert "sk-live-123" not in stream.getvalue()
    assert logged["erased"] == ["/input/context/api_key"]
    assert request["context"]["api_key"] == "sk-live-123"


def test_masking_copies_only_what_it_changes() -> None:
    """Masking never mutates the event it was given, lists included."""
    original: dict[str, Any] = {
        "input": {"cards": [{"number": "4111"}, {"number": "5500"}], "keep": [1]}}
    masked = mask_event(original, [("input", "cards", "1", "number")])
    assert masked["input"]["cards"] == [{"number": "4111"}, {}]
    assert original["input"]["cards"][1] == {"number": "5500"}
    assert masked["input"]["keep"] is original["input"]["keep"]


def test_missing_paths_are_not_an_error() -> None:
    """A pointer to a field the input does not have erases nothing and keeps the event."""
    masked = mask_event({"input": {"a": "text"}}, [("input", "b"), ("input", "a", "deeper")])
    assert masked == {"input": {"a": "text"}}


async def test_masking_failure_drops_the_event(registry: CollectorRegistry) -> None:
    """An event whose masked path crosses non-JSON data is dropped and counted, never leaked."""
    sink = ListSink()
    log = make_log(registry, sink, mask=["/input/secret/value"])
    log.record(event(1, input={"secret": Unreadable(value="hunter2")}))
    log.record(event(2))
    await log.flush()
    assert [e["decision_id"] for e in sink.events()] == ["d2"]
    assert "hunter2" not in "".join(sink.lines)
    assert sample(registry, "pdp_decision_logs_dropped_total", reason="mask_error") == 1


async def test_overflow_drops_the_oldest_and_counts_them(registry: CollectorRegistry) -> None:
    """A full buffer drops its oldest events, each counted with reason buffer_full."""
    sink = ListSink()
    log = make_log(registry, sink, buffer_size=3)
    for n in range(5):
        log.record(event(n))
    await log.flush()
    assert [e["decision_id"] for e in sink.events()] == ["d2", "d3", "d4"]
    assert sample(registry, "pdp_decision_logs_dropped_total", reason="buffer_full") == 2


async def test_unencodable_event_is_dropped_and_counted(registry: CollectorRegistry) -> None:
    """An event that is not JSON (NaN, an object) is dropped with reason encode_error."""
    sink = ListSink()
    log = make_log(registry, sink)
    log.record(event(1, latency_ms=float("nan")))
    log.record(event(2))
    await log.flush()
    assert [e["decision_id"] for e in sink.events()] == ["d2"]
    assert sample(registry, "pdp_decision_logs_dropped_total", reason="encode_error") == 1


async def test_background_writer_drains_without_being_asked(registry: CollectorRegistry) -> None:
    """The writer task empties the buffer on its own every flush interval."""
    sink = ListSink()
    log = make_log(registry, sink, flush_interval_seconds=0.01)
    log.start()
    log.record(event(1))
    for _ in range(200):
        if sink.lines:
            break
        await asyncio.sleep(0.01)
    await log.close()
    assert [e["decision_id"] for e in sink.events()] == ["d1"]


class BrokenSink(ListSink):
    """A sink whose writes fail (a read-only or full disk) until ``broken`` is cleared."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True
        self.failures = 0

    def write(self, lines: Sequence[str]) -> None:
        if self.broken:
            self.failures += 1
            raise OSError(30, "Read-only file system")
        super().write(lines)


async def test_a_failing_sink_is_logged_once_not_at_every_drain(
        registry: CollectorRegistry, caplog: pytest.LogCaptureFixture) -> None:
    """A sink that keeps failing costs one logged traceback, not five a second, and its
    recovery is said once."""
    caplog.set_level(logging.INFO, logger="pdp.runtime.decision_log")
    sink = BrokenSink()
    log = make_log(registry, sink, flush_interval_seconds=0.01)
    log.start()
    for n in range(400):
        log.record(event(n))
        if sink.failures >= 10:
            break
        await asyncio.sleep(0.005)
    sink.broken = False
    log.record(event(1000))
    for _ in range(200):
        if sink.lines:
            break
        await asyncio.sleep(0.01)
    await log.close()
    assert sink.failures >= 10
    assert caplog.text.count("decision log write failed") == 1
    assert caplog.text.count("decision log writes again") == 1
    assert sample(registry, "pdp_decision_logs_dropped_total", reason="sink_error") > 0


async def test_close_flushes_everything_and_closes_the_sink(registry: CollectorRegistry) -> None:
    """On shutdown buffered events are written before the sink closes."""
    sink = ListSink()
    log = make_log(registry, sink, flush_interval_seconds=60)
    log.start()
    for n in range(2500):
        log.record(event(n))
    await log.close()
    assert len(sink.lines) == 2500
    assert sink.closed
    assert sample(registry, "pdp_decision_logs_dropped_total", reason="shutdown") == 0


async def test_file_sink_appends_json_lines(tmp_path: Path, registry: CollectorRegistry) -> None:
    """The file sink appends one JSON object per line and keeps earlier lines."""
    path = tmp_path / "decisions.jsonl"
    path.write_text('{"earlier": true}\n')
    log = DecisionLog(DecisionLogConfig(sink="file", path=path), sink=FileSink(path),
                      metrics=RuntimeMetrics(registry))
    log.record(event(1))
    await log.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"earlier": True}
    assert json.loads(lines[1])["decision_id"] == "d1"


def test_file_sink_follows_its_path_when_the_file_is_moved_or_deleted(tmp_path: Path) -> None:
    """Rotated away (logrotate) or deleted, the file is opened again at its path; while its
    directory is missing a write fails (the log counts it) and the next one recovers."""
    directory = tmp_path / "logs"
    directory.mkdir()
    path = directory / "decisions.jsonl"
    sink = FileSink(path)
    sink.write(['{"n": 1}'])
    path.rename(directory / "decisions.jsonl.1")
    sink.write(['{"n": 2}'])
    assert (directory / "decisions.jsonl.1").read_text() == '{"n": 1}\n'
    assert path.read_text() == '{"n": 2}\n'
    shutil.rmtree(directory)
    with pytest.raises(OSError):
        sink.write(['{"n": 3}'])
    directory.mkdir()
    sink.write(['{"n": 4}'])
    sink.close()
    assert path.read_text().splitlines() == ['{"n": 4}']


async def test_shutdown_does_not_wait_past_its_deadline(registry: CollectorRegistry) -> None:
    """A sink slower than the flush deadline cannot hold shutdown; what is left is counted."""

    class SlowSink(ListSink):
        def write(self, lines: Sequence[str]) -> None:
            time.sleep(0.5)
            super().write(lines)

    log = DecisionLog(DecisionLogConfig(sink="stdout", flush_deadline_seconds=0.1),
                      sink=SlowSink(), metrics=RuntimeMetrics(registry))
    for n in range(3000):
        log.record(event(n))
    started = time.monotonic()
    await log.close()
    assert time.monotonic() - started < 0.45
    assert sample(registry, "pdp_decision_logs_dropped_total", reason="shutdown") == 2000


def test_pointer_escapes_are_honoured() -> None:
    """~1 and ~0 in a mask pointer stand for '/' and '~' (RFC 6901)."""
    assert parse_pointer("/input/a~1b/c~0d") == ("input", "a/b", "c~d")
    masked = mask_event({"input": {"a/b": 1, "keep": 2}}, [parse_pointer("/input/a~1b")])
    assert masked["input"] == {"keep": 2}
    assert masked["erased"] == ["/input/a~1b"]


@pytest.mark.parametrize("pointer", ["input/no-slash", "/input/bad~2escape"])
def test_invalid_mask_pointer_is_a_configuration_error(pointer: str) -> None:
    """A malformed JSON pointer is refused when the configuration is built, naming it."""
    with pytest.raises(ValueError, match="JSON pointer"):
        DecisionLogConfig(sink="stdout", mask=(pointer,))


def test_file_sink_needs_a_path() -> None:
    """sink=file without a path is refused at configuration time."""
    with pytest.raises(ValueError, match="needs a path"):
        DecisionLogConfig(sink="file")


async def test_dryrun_findings_are_logged_and_counted_but_never_answered(
        make_engine: EngineFactory, signing: Signing, registry: CollectorRegistry,
        tmp_path: Path) -> None:
    """A dryrun policy is shadow mode: its finding is in the log and metrics, not in the answer."""
    source = tmp_path / "src"
    shutil.copytree(MARKETPLACE, source)
    (source / "policies" / "shadow-sla.json").write_text(json.dumps({
        "id": "shadow-sla", "name": "Shadow SLA", "type": "pricing", "severity": "low",
        "enforcement": "dryrun", "rule": {"minimum_sla_for_enterprise": 100.0}}))
    contents = read_source_dir(source, created_at=1_700_000_000.0)
    bundle = build_bundle(contents, signer=signing.signer, revision="shadow", sequence=5)
    stream = io.StringIO()
    engine = make_engine(decision_log={"sink": "stdout"}, decision_stream=stream)
    await engine.activate(BundleUpdate(bundle, source="test"))
    listing = json.loads(json.dumps(COMPLIANT_LISTING))
    listing["sla"] = {"availability": 99.95, "support_level": "enterprise"}
    answer = engine.decide("validate_service", listing)
    await engine.stop()
    assert answer["compliant"] is True
    assert "dryrun" not in answer
    assert all(v["policy_id"] != "shadow-sla" for v in answer["violations"] + answer["warnings"])
    (line,) = stream.getvalue().splitlines()
    assert [f["policy_id"] for f in json.loads(line)["dryrun"]] == ["shadow-sla"]
    assert sample(registry, "pdp_dryrun_findings_total", query="validate_service",
                  policy_id="shadow-sla") == 1


def test_every_pointer_is_read_against_the_event_as_given() -> None:
    """Masking items 0 and 1 of a list erases those two: removing item 0 first must not shift
    item 1 into its place (which would log it and erase item 2 instead)."""
    rates = [{"description": "secret-0"}, {"description": "secret-1"}, {"description": "public"}]
    masked = mask_event({"input": {"rates": rates}},
                        [("input", "rates", "0"), ("input", "rates", "1")])
    assert masked["input"]["rates"] == [{"description": "public"}]
    assert masked["erased"] == ["/input/rates/0", "/input/rates/1"]


def test_a_pointer_below_an_erased_one_changes_nothing_more() -> None:
    """`/input/a` and `/input/a/b` together erase `a`, once."""
    masked = mask_event({"input": {"a": {"b": 1}, "c": 2}}, [("input", "a"), ("input", "a", "b")])
    assert masked == {"input": {"c": 2}, "erased": ["/input/a"]}


async def test_credential_headers_are_erased_by_default(
        make_engine: EngineFactory, signing: Signing, tmp_path: Path) -> None:
    """End users' credentials in request headers (any case) never reach the log file, with no
    mask configured; they are listed under `erased`, other headers stay, the answer is whole."""
    path = tmp_path / "decisions.jsonl"
    engine = make_engine(decision_log={"sink": "file", "path": str(path),
                                       "mask": ["/input/headers/x-forwarded-for"]})
    await engine.activate(BundleUpdate(signing.bundle(3), source="test"))
    headers = {"x-user-id": "user-789", "x-forwarded-for": "10.0.0.7",
               "Authorization": "Bearer eyJ-secret-1", "cookie": "session=secret-2",
               "PROXY-AUTHORIZATION": "Basic secret-3", "X-Api-Key": "secret-4"}
    request = {"method": "GET", "path": "/v1/services/svc-weather", "headers": headers}
    answer = engine.decide("authorize_http", request)
    engine.decide("validate_consumption", {"consumer_id": "c-1", "service_id": "svc-1",
                                           "headers": {"authorization": "Bearer secret-5"}})
    await engine.stop()
    text = path.read_text()
    assert "secret" not in text
    http, consumption = (json.loads(line) for line in text.splitlines())
    assert http["input"]["headers"] == {"x-user-id": "user-789"}
    assert http["erased"] == ["/input/headers/x-forwarded-for", "/input/headers/Authorization",
                              "/input/headers/cookie", "/input/headers/PROXY-AUTHORIZATION",
                              "/input/headers/X-Api-Key"]
    assert consumption["erased"] == ["/input/headers/authorization"]
    assert answer["allowed"] is True
    assert request["headers"]["Authorization"] == "Bearer eyJ-secret-1"


def test_the_file_sink_creates_its_file_private_whatever_the_umask(tmp_path: Path) -> None:
    """A decision-log file created under umask 000 (or the usual 022) is 0600: the logged inputs
    are not every local user's to read."""
    path = tmp_path / "decisions.jsonl"
    previous = os.umask(0)
    try:
        sink = FileSink(path)
        sink.write(['{"n": 1}'])
        sink.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
