"""Status reporting (DESIGN §7.4): the sidecar POSTs its status on change and periodically.

A real aiohttp server on 127.0.0.1 stands in for the control plane's intake endpoints; the
sidecar side is a real :class:`~pdp.runtime.Engine`. :class:`Intake` is also used by the
decision-log upload tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from ports import free_port
from prometheus_client import CollectorRegistry
from runtime_support import EngineFactory, FakeClock, Signing, sample

from pdp.runtime import BundleUpdate, Engine
from pdp.runtime.http_source import Backoff, HttpSource
from pdp.runtime.status_report import StatusReporter

ACCESS = {"user_id": "user-456", "service_id": "svc-1", "action": "read", "context": {}}
QUICK = Backoff(initial=0.05, factor=2.0, cap=0.2)


@dataclass(frozen=True)
class Received:
    """One request as the intake saw it: headers, raw body bytes, arrival (monotonic)."""

    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Intake:
    """The control plane's ``/v1/status`` and ``/v1/logs`` on a real socket, answering as told.

    ``answers`` is consumed one per request (then ``answer`` applies; a 3xx points to
    ``/v1/moved``, which records whatever follows it); ``hang`` holds every
    request until the test ends. Bodies are kept as sent (no transparent gzip decoding), so the
    tests see the bytes on the wire.
    """

    def __init__(self) -> None:
        self.received: dict[str, list[Received]] = {"status": [], "logs": [], "moved": []}
        self.answer = 200
        self.answers: list[int] = []
        self.hang = False
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        app = web.Application()
        app.router.add_post("/v1/status", self._handler("status"))
        app.router.add_post("/v1/logs", self._handler("logs"))
        app.router.add_route("*", "/v1/moved", self._handler("moved"))
        self._runner = web.AppRunner(app, auto_decompress=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Release held requests and close the socket."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _handler(self, kind: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            self.received[kind].append(Received(dict(request.headers), await request.read(),
                                                time.monotonic()))
            if self.hang:
                await self._release.wait()
            status = self.answers.pop(0) if self.answers else self.answer
            moved = {"Location": "/v1/moved"} if 300 <= status < 400 else None
            return web.Response(status=status, headers=moved)
        return handle

    def url(self, kind: str) -> str:
        """The endpoint URL of ``status`` or ``logs``."""
        return f"{self.base}/v1/{kind}"

    @property
    def reports(self) -> list[Received]:
        """Status reports received so far."""
        return self.received["status"]


@pytest.fixture
async def intake() -> AsyncIterator[Intake]:
    """A running fake intake."""
    server = Intake()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """A bearer token file, as mounted from a Secret."""
    path = tmp_path / "token"
    path.write_text("token-one\n")
    return path


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


async def ready_engine(make_engine: EngineFactory, signing: Signing, **config: Any) -> Engine:
    """An engine serving revision r1."""
    engine = make_engine(instance_id="sidecar-a", labels={"pod": "app-7f9", "namespace": "shop"},
                         **config)
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    return engine


@pytest.fixture
async def reporters() -> AsyncIterator[list[StatusReporter]]:
    """Reporters a test started; stopped afterwards."""
    started: list[StatusReporter] = []
    yield started
    for reporter in started:
        await reporter.stop()


def start(reporters: list[StatusReporter], url: str, engine: Engine, registry: CollectorRegistry,
          **options: Any) -> StatusReporter:
    """Start a reporter of ``engine``'s status to ``url``."""
    options.setdefault("check_interval", 0.02)
    reporter = StatusReporter(url, engine.status, registry=registry, **options)
    reporter.start()
    reporters.append(reporter)
    return reporter


async def test_first_report_carries_the_sidecar_status(
        make_engine: EngineFactory, signing: Signing, intake: Intake, token_file: Path,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """At start the control plane learns instance id, labels, revision, sequence, state, age."""
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, token_file=token_file)
    await eventually(lambda: len(intake.reports) >= 1)
    first = intake.reports[0]
    report = first.json()
    assert first.headers["Authorization"] == "Bearer token-one"
    assert first.headers["Content-Type"].startswith("application/json")
    assert report["instance_id"] == "sidecar-a"
    assert report["labels"] == {"pod": "app-7f9", "namespace": "shop"}
    assert (report["revision"], report["sequence"]) == ("r1", 1)
    assert (report["state"], report["ready"]) == ("fresh", True)
    assert report["age_seconds"] == 0
    assert report["last_error"] is None
    assert report["reported_at"].endswith("Z")
    assert sample(registry, "pdp_status_reports_total", result="success") >= 1


async def test_activation_is_reported_at_once(
        make_engine: EngineFactory, signing: Signing, intake: Intake,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """A new revision reaches the control plane within a check, not after the period."""
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, interval=3600)
    await eventually(lambda: len(intake.reports) == 1)
    activated = time.monotonic()
    await engine.activate(BundleUpdate(signing.bundle(2), source="test"))
    await eventually(lambda: len(intake.reports) == 2, within=1.0)
    assert intake.reports[1].json()["revision"] == "r2"
    assert intake.reports[1].at - activated < 0.5


async def test_staleness_is_reported_without_any_event(
        make_engine: EngineFactory, signing: Signing, intake: Intake, clock: FakeClock,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """A bundle turning stale by age alone is reported: the reporter watches the derived state."""
    engine = await ready_engine(make_engine, signing, max_bundle_age_seconds=60)
    start(reporters, intake.url("status"), engine, registry, interval=3600, clock=clock)
    await eventually(lambda: len(intake.reports) == 1)
    clock.advance(61)
    await eventually(lambda: len(intake.reports) == 2, within=1.0)
    assert intake.reports[1].json()["state"] == "stale"


async def test_an_unchanged_sidecar_reports_periodically(
        make_engine: EngineFactory, signing: Signing, intake: Intake,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """Without changes a report still goes every interval, so the fleet sees the sidecar alive."""
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, interval=0.2)
    await eventually(lambda: len(intake.reports) >= 4, within=2.0)
    gaps = [b.at - a.at for a, b in itertools.pairwise(intake.reports)]
    assert min(gaps) >= 0.15
    assert {r.json()["revision"] for r in intake.reports} == {"r1"}


async def test_the_token_file_is_read_for_every_report(
        make_engine: EngineFactory, signing: Signing, intake: Intake, token_file: Path,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """A rotated token is used by the next report, without restarting the sidecar."""
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, interval=0.1,
          token_file=token_file)
    await eventually(lambda: len(intake.reports) >= 1)
    await asyncio.to_thread(token_file.write_text, "token-two\n")
    await eventually(lambda: intake.reports[-1].headers["Authorization"] == "Bearer token-two")


async def test_a_failing_report_is_retried_a_bounded_number_of_times(
        make_engine: EngineFactory, signing: Signing, intake: Intake,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """A 503 is retried with backoff up to max_attempts, then left for the next change/period."""
    intake.answer = 503
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, interval=3600, max_attempts=3,
          backoff=QUICK)
    await eventually(lambda: len(intake.reports) == 3)
    await asyncio.sleep(0.5)
    assert len(intake.reports) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(intake.reports)]
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05  # at least half of 0.05 s, then of 0.1 s
    assert sample(registry, "pdp_status_reports_total", result="server_error") == 3


async def test_a_refused_token_is_not_retried_at_once(
        make_engine: EngineFactory, signing: Signing, intake: Intake,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """A 401 waits for the next change or period: repeating it at once cannot succeed."""
    intake.answer = 401
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, interval=3600, backoff=QUICK)
    await eventually(lambda: len(intake.reports) == 1)
    await asyncio.sleep(0.3)
    assert len(intake.reports) == 1
    assert sample(registry, "pdp_status_reports_total", result="unauthorized") == 1


async def test_an_unreachable_control_plane_is_counted_and_retried_later(
        make_engine: EngineFactory, signing: Signing, registry: CollectorRegistry,
        reporters: list[StatusReporter]) -> None:
    """Connection refused counts as ``unreachable``; the reporter keeps going on its period."""
    engine = await ready_engine(make_engine, signing)
    start(reporters, f"http://127.0.0.1:{free_port()}/v1/status", engine, registry,
          interval=0.1, max_attempts=2, backoff=QUICK)
    await eventually(
        lambda: sample(registry, "pdp_status_reports_total", result="unreachable") >= 4)


async def test_an_unreadable_token_file_is_reported_without_a_request(
        make_engine: EngineFactory, signing: Signing, intake: Intake, tmp_path: Path,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """A missing token file is counted as ``token_unreadable`` and nothing is sent unsigned."""
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, interval=0.1,
          token_file=tmp_path / "missing")
    await eventually(
        lambda: sample(registry, "pdp_status_reports_total", result="token_unreadable") >= 2)
    assert intake.reports == []


async def test_a_hanging_control_plane_never_delays_decisions(
        make_engine: EngineFactory, signing: Signing, intake: Intake,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """Decisions keep their microsecond latency while every report hangs until its timeout."""
    intake.hang = True
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, interval=0.05, timeout=0.3,
          backoff=QUICK)
    def timeouts() -> float:
        return sample(registry, "pdp_status_reports_total", result="timeout")

    latencies: list[float] = []
    loop_gaps: list[float] = []
    # At least 1.5 s and two timed-out reports (on a slow machine that can take longer):
    # decisions are timed while reports are hanging, not before or after.
    finish, deadline = time.monotonic() + 1.5, time.monotonic() + 20
    last = time.monotonic()
    while (time.monotonic() < finish or timeouts() < 2) and time.monotonic() < deadline:
        started = time.perf_counter()
        engine.decide("check_access", ACCESS)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0)  # let the reporter run between decisions, as a server would
        now = time.monotonic()
        loop_gaps.append(now - last)
        last = now
    assert timeouts() >= 2
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < 0.002, f"decide() p99 {p99 * 1e6:.0f} µs while the control plane hangs"
    # A report held by the server until its 0.3 s timeout would show up as a gap this long.
    assert max(loop_gaps) < 0.25, "the event loop was blocked while reporting"


async def test_stop_ends_reporting(
        make_engine: EngineFactory, signing: Signing, intake: Intake,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """After stop() nothing more is sent."""
    engine = await ready_engine(make_engine, signing)
    reporter = start(reporters, intake.url("status"), engine, registry, interval=0.05)
    await eventually(lambda: len(intake.reports) >= 1)
    await reporter.stop()
    sent = len(intake.reports)
    await asyncio.sleep(0.2)
    assert len(intake.reports) == sent


@pytest.mark.parametrize("option", [{"interval": 0}, {"check_interval": -1}, {"timeout": 0},
                                    {"max_attempts": 0}])
def test_nonsense_timing_is_refused(registry: CollectorRegistry, option: dict[str, Any]) -> None:
    """Zero or negative periods and attempts are refused when the reporter is built."""
    with pytest.raises(ValueError, match="positive"):
        StatusReporter("http://127.0.0.1:1/v1/status", dict, registry=registry, **option)


@pytest.mark.parametrize("url", ["control:8282/v1/status", "ftp://control/v1/status", ""])
def test_a_url_that_is_not_http_is_refused(registry: CollectorRegistry, url: str) -> None:
    """A control-plane URL without an http(s) scheme and host is refused, naming the URL."""
    with pytest.raises(ValueError, match="must be http:// or https://"):
        StatusReporter(url, dict, registry=registry)


async def test_a_redirect_is_not_followed(
        make_engine: EngineFactory, signing: Signing, intake: Intake,
        registry: CollectorRegistry, reporters: list[StatusReporter]) -> None:
    """A 3xx is a failed report, not a POST turned into a GET somewhere else."""
    intake.answer = 302
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, interval=3600)
    await eventually(
        lambda: sample(registry, "pdp_status_reports_total", result="redirected") == 1)
    await asyncio.sleep(0.1)
    assert (len(intake.reports), intake.received["moved"]) == (1, [])


async def test_a_token_file_holding_two_lines_is_refused_without_showing_it(
        make_engine: EngineFactory, signing: Signing, intake: Intake, tmp_path: Path,
        registry: CollectorRegistry, reporters: list[StatusReporter],
        caplog: pytest.LogCaptureFixture) -> None:
    """A rotated file with a second line is `token_invalid`: nothing is sent, and the token
    appears in no log line (the HTTP library's own error would have quoted the header)."""
    token_file = tmp_path / "token"
    token_file.write_text("SECRET-ONE\nSECRET-TWO\n")
    engine = await ready_engine(make_engine, signing)
    start(reporters, intake.url("status"), engine, registry, interval=0.1,
          token_file=token_file)
    await eventually(
        lambda: sample(registry, "pdp_status_reports_total", result="token_invalid") >= 2)
    assert intake.reports == []
    assert "SECRET" not in caplog.text


async def test_a_failing_round_is_logged_once_a_period_not_at_every_check(
        intake: Intake, registry: CollectorRegistry, reporters: list[StatusReporter],
        caplog: pytest.LogCaptureFixture) -> None:
    """A status that cannot even be read (a bug) logs one traceback per interval, not one
    every 0.02 s check."""

    def broken() -> dict[str, Any]:
        raise RuntimeError("status unavailable")

    reporter = StatusReporter(intake.url("status"), broken, registry=registry, interval=0.5,
                              check_interval=0.02)
    reporter.start()
    reporters.append(reporter)
    await asyncio.sleep(0.8)
    assert caplog.text.count("status reporting round failed") == 2


async def test_a_signed_urls_query_is_in_no_report_and_no_log_line(
        make_engine: EngineFactory, intake: Intake, registry: CollectorRegistry,
        reporters: list[StatusReporter], caplog: pytest.LogCaptureFixture) -> None:
    """Credentials in a URL's query (a presigned bundle URL, a signed intake URL) reach neither
    the control plane's fleet view (`last_error`) nor the sidecar's log; the path still shows."""
    signed = "?X-Amz-Signature=SECRET#FRAG"
    source = HttpSource(f"http://127.0.0.1:{free_port()}/bundles/main{signed}", backoff=QUICK)
    engine = make_engine(sources=[source])
    await engine.start()
    intake.answer = 503
    start(reporters, intake.url("status") + signed, engine, registry, interval=0.1,
          max_attempts=1)
    await eventually(lambda: any(r.json()["last_error"] for r in intake.reports))
    await eventually(lambda: "HTTP 503" in caplog.text)
    error = next(r.json()["last_error"] for r in intake.reports if r.json()["last_error"])
    assert "/bundles/main: " in error["message"]
    assert "/v1/status: HTTP 503" in caplog.text
    assert not any("SECRET" in r.body.decode() or "FRAG" in r.body.decode()
                   for r in intake.reports)
    assert "SECRET" not in caplog.text and "FRAG" not in caplog.text
