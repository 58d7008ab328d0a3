"""`pdp run` as a process: hot reload under load, persistence, staleness, shutdown, `--dev`.

Each test starts real ``python -m pdp run`` subprocesses on ephemeral 127.0.0.1 ports and talks to
them over HTTP; the ``spawn`` fixture kills whatever is left at teardown.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_process_support import (
    CHECK_ACCESS_INPUT,
    MARKETPLACE,
    BundleFactory,
    SidecarProcess,
)

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp._proto.policyengine.v1 import policy_engine_pb2_grpc as pb_grpc
from pdp.bundle import read_source_dir, signed_files, with_manifest, write_archive

CHECK_ACCESS = "/v1/data/policyengine/check_access"
ENVELOPE = {"input": CHECK_ACCESS_INPUT}


async def decide(http: aiohttp.ClientSession, sidecar: SidecarProcess) -> tuple[int, Any]:
    """One check_access decision: the status and the decoded answer."""
    async with http.post(sidecar.url(CHECK_ACCESS), json=ENVELOPE) as answer:
        return answer.status, await answer.json()


async def status_of(http: aiohttp.ClientSession, sidecar: SidecarProcess) -> dict[str, Any]:
    """The sidecar's `/v1/status` document."""
    async with http.get(sidecar.url("/v1/status")) as answer:
        result: dict[str, Any] = (await answer.json())["result"]
        return result


async def metrics_of(http: aiohttp.ClientSession, sidecar: SidecarProcess) -> str:
    """The sidecar's Prometheus text."""
    async with http.get(sidecar.url("/metrics")) as answer:
        return await answer.text()


async def wait_for_revision(http: aiohttp.ClientSession, sidecar: SidecarProcess,
                            revision: str) -> None:
    """Poll `/v1/status` until ``revision`` is active (at most 10 s)."""
    try:
        async with asyncio.timeout(10):
            while True:
                if (await status_of(http, sidecar))["revision"] == revision:
                    return
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"revision {revision} did not become active") from None


def tampered_bundle(factory: BundleFactory, revision: int) -> bytes:
    """A correctly signed bundle whose data.json was changed after signing."""
    contents = with_manifest(read_source_dir(MARKETPLACE), revision=str(revision),
                             sequence=revision, created_at=datetime.now(tz=UTC))
    files = signed_files(contents, factory.key.signer)
    files["data.json"] = files["data.json"].replace(b"user-456", b"user-999")
    return write_archive(files)


def sidecar_args(path: Path, factory: BundleFactory, *extra: str) -> list[str]:
    """Arguments serving ``path`` verified with the test key, reloading quickly."""
    return ["--bundle", str(path), "--verification-key", str(factory.key.public),
            "--watch-debounce-ms", "20", *extra]


@dataclass
class Bracket:
    """What the reload test knows while requests run: confirmed-active and latest-written."""

    confirmed: int = 1
    written: int = 1
    done: bool = False
    failures: list[str] = field(default_factory=list)
    answered: int = 0


async def client_loop(http: aiohttp.ClientSession, sidecar: SidecarProcess,
                      known: Bracket) -> None:
    """Send decisions back to back; check each revision lies within what was active meanwhile."""
    while not known.done:
        low = known.confirmed
        try:
            status, body = await decide(http, sidecar)
        except aiohttp.ClientError as exc:
            known.failures.append(f"request failed: {exc!r}")
            continue
        high = known.written
        if status != 200:
            known.failures.append(f"status {status}: {body}")
            continue
        revision = int(body["result"]["bundle_revision"])
        if not low <= revision <= high:
            known.failures.append(f"revision {revision} outside [{low}, {high}]")
        known.answered += 1


async def test_hot_reload_under_load_fails_no_request(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession
) -> None:
    """100 atomic bundle replacements under non-stop requests: no failure, no wrong revision."""
    path = bundles.write(1)
    candidates = {rev: bundles.build(rev) for rev in range(2, 102)}
    sidecar: SidecarProcess = spawn(*sidecar_args(path, bundles))
    await sidecar.wait_ready(http)
    known = Bracket()
    clients = [asyncio.create_task(client_loop(http, sidecar, known)) for _ in range(8)]
    try:
        for revision, data in candidates.items():
            bundles.replace(path, data)
            known.written = revision
            await wait_for_revision(http, sidecar, str(revision))
            known.confirmed = revision
    finally:
        known.done = True
        await asyncio.gather(*clients)
    assert known.failures == []
    assert known.answered > 500


async def wait_for_grpc_serving(channel: aio.Channel) -> None:
    """Poll gRPC health (which follows readiness every 0.5 s) until SERVING, at most 5 s."""
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    try:
        async with asyncio.timeout(5):
            while True:
                answer = await health.Check(health_pb2.HealthCheckRequest())
                if answer.status == serving:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError("gRPC health never reported SERVING") from None


async def test_grpc_and_http_answer_from_the_same_bundle(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession
) -> None:
    """Both servers of one process read the one engine: a reload shows on HTTP and gRPC alike."""
    path = bundles.write(1)
    sidecar: SidecarProcess = spawn(*sidecar_args(path, bundles))
    await sidecar.wait_ready(http)
    request = pb.CheckAccessRequest(user_id="user-456", service_id="svc-1", action="consume",
                                    context={"ip_address": "10.0.0.7"})
    async with aio.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = pb_grpc.PolicyEngineServiceStub(channel)
        await wait_for_grpc_serving(channel)
        before = await stub.CheckAccess(request)
        bundles.replace(path, bundles.build(2))
        await wait_for_revision(http, sidecar, "2")
        after = await stub.CheckAccess(request)
    _, http_answer = await decide(http, sidecar)
    assert (before.allowed, before.bundle_revision) == (True, "1")
    assert (after.allowed, after.bundle_revision) == (True, "2")
    assert http_answer["result"]["bundle_revision"] == "2"
    assert ('pdp_grpc_requests_total{code="OK",method="/policyengine.v1.PolicyEngineService/'
            'CheckAccess"} 2.0') in await metrics_of(http, sidecar)


async def test_tampered_replacement_keeps_the_previous_revision(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession
) -> None:
    """A bundle altered after signing is refused; the old one serves; status and metrics say so."""
    path = bundles.write(1)
    sidecar: SidecarProcess = spawn(*sidecar_args(path, bundles))
    await sidecar.wait_ready(http)
    bundles.replace(path, tampered_bundle(bundles, 2))
    deadline = time.monotonic() + 10
    while (await status_of(http, sidecar))["last_error"] is None:
        assert time.monotonic() < deadline, "the tampered bundle was never reported"
        await asyncio.sleep(0.02)
    status = await status_of(http, sidecar)
    answer_status, body = await decide(http, sidecar)
    assert answer_status == 200
    assert body["result"]["bundle_revision"] == "1"
    assert status["revision"] == "1"
    assert status["last_error"]["reason"] == "hash_mismatch"
    assert 'pdp_bundle_loads_total{result="failure",source="file"} 1.0' in (
        await metrics_of(http, sidecar))


async def test_cold_start_from_the_persisted_bundle(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With --bundle pointing at nothing, the last persisted bundle is verified and served."""
    path = bundles.write(5)
    persist = ["--persist-dir", str(tmp_path / "persist")]
    first: SidecarProcess = spawn(*sidecar_args(path, bundles, *persist))
    await first.wait_ready(http)
    assert first.stop() == 0
    path.unlink()
    second: SidecarProcess = spawn(*sidecar_args(path, bundles, *persist))
    await second.wait_ready(http)
    status, body = await decide(http, second)
    assert status == 200
    assert body["result"]["bundle_revision"] == "5"
    assert (await status_of(http, second))["state"] == "last_known_good"


async def test_no_bundle_at_all_is_503_and_not_ready(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession
) -> None:
    """Without any bundle the sidecar answers but fails closed and reports not ready."""
    sidecar: SidecarProcess = spawn(*sidecar_args(bundles.directory / "missing.tar.gz", bundles))
    await sidecar.wait_listening()
    status, body = await decide(http, sidecar)
    async with http.get(sidecar.url("/health/ready")) as ready:
        assert ready.status == 503
    assert status == 503
    assert body["code"] == "not_ready"
    assert (await status_of(http, sidecar))["state"] == "starting"


# Long enough for the file watcher to activate the bundle on a busy machine, short enough to wait.
EXPIRY_SECONDS = 2.0


@pytest.mark.parametrize(
    ("stale_action", "decision_status", "ready_status"),
    [("serve", 200, 200), ("fail_closed", 503, 503), ("fail_open", 200, 200)],
)
async def test_expired_bundle_follows_stale_action(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession,
    stale_action: str, decision_status: int, ready_status: int,
) -> None:
    """Once the bundle's expires_at passes, decisions and readiness follow stale_action."""
    path = bundles.directory / "bundle.tar.gz"
    sidecar: SidecarProcess = spawn(*sidecar_args(path, bundles, "--stale-action", stale_action))
    await sidecar.wait_listening()
    # Written only now, so the expiry window does not depend on how long start-up took.
    expires_at = time.time() + EXPIRY_SECONDS
    bundles.write(3, expires_at=expires_at)
    await sidecar.wait_ready(http)
    assert (await status_of(http, sidecar))["state"] == "fresh"
    await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.2)
    status, body = await decide(http, sidecar)
    async with http.get(sidecar.url("/health/ready")) as ready:
        assert ready.status == ready_status
    assert status == decision_status
    assert (await status_of(http, sidecar))["state"] == "stale"
    if stale_action == "fail_open":
        assert body["result"]["fail_open"] is True
        assert body["result"]["allowed"] is True


async def test_an_unchanged_bundle_file_stays_fresh_under_max_bundle_age(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession
) -> None:
    """A --bundle file nobody changed keeps serving under --max-bundle-age: the file is there
    and unchanged, so its source confirms it (it turned stale, fail_closed 503s, after 2 s)."""
    path = bundles.write(3)
    sidecar: SidecarProcess = spawn(*sidecar_args(
        path, bundles, "--max-bundle-age", "2", "--stale-action", "fail_closed"))
    await sidecar.wait_ready(http)
    await asyncio.sleep(3.0)
    status, _ = await decide(http, sidecar)
    assert status == 200
    assert (await status_of(http, sidecar))["state"] == "fresh"


async def load_until_refused(http: aiohttp.ClientSession, sidecar: SidecarProcess,
                             answers: list[int], refused_at: list[float]) -> None:
    """Send decisions back to back until the sidecar stops taking connections."""
    while True:
        try:
            status, _ = await decide(http, sidecar)
        except aiohttp.ClientError:
            refused_at.append(time.monotonic())
            return
        answers.append(status)


async def test_sigterm_lets_in_flight_requests_finish_and_exits_0(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession
) -> None:
    """On SIGTERM under load, requests in flight complete with 200, then the process exits 0."""
    sidecar: SidecarProcess = spawn(*sidecar_args(bundles.write(1), bundles))
    await sidecar.wait_ready(http)
    answers: list[int] = []
    refused_at: list[float] = []
    load = [asyncio.create_task(load_until_refused(http, sidecar, answers, refused_at))
            for _ in range(8)]
    # One request whose body is still arriving when the signal comes: it is in flight.
    body = json.dumps(ENVELOPE).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.http_port)
    writer.write(
        f"POST {CHECK_ACCESS} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[:10]
    )
    await writer.drain()
    await asyncio.sleep(0.5)
    signalled_at = time.monotonic()
    sidecar.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    writer.write(body[10:])
    await writer.drain()
    slow_answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(asyncio.gather(*load), timeout=15)
    assert slow_answer.startswith(b"HTTP/1.1 200"), slow_answer[:200]
    assert b'"allowed":true' in slow_answer
    assert answers and set(answers) == {200}
    assert all(moment >= signalled_at for moment in refused_at)
    assert await asyncio.to_thread(sidecar.proc.wait, 15) == 0


class StaticBundleServer:
    """A plain HTTP server holding one bundle, like a CDN or nginx in front of a bucket."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.authorizations: list[str | None] = []
        app = web.Application()
        app.router.add_get("/bundles/main", self.serve)
        self.server = TestServer(app, host="127.0.0.1")

    async def serve(self, request: web.Request) -> web.Response:
        """Answer with the bundle, or 304 when the client already has it."""
        self.authorizations.append(request.headers.get("Authorization"))
        etag = f'"{hashlib.sha256(self.data).hexdigest()}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=self.data, headers={"ETag": etag},
                            content_type="application/vnd.openpolicyagent.bundles")


async def test_bundle_url_with_token_and_sync(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """--bundle-url fetches with the bearer token; /v1/bundles/sync picks up a new one at once."""
    origin = StaticBundleServer(bundles.build(1))
    await origin.server.start_server()
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    try:
        sidecar: SidecarProcess = spawn(
            "--bundle-url", str(origin.server.make_url("/bundles/main")),
            "--bundle-token-file", str(token), "--verification-key", str(bundles.key.public))
        await sidecar.wait_ready(http)
        origin.data = bundles.build(2)
        async with http.post(sidecar.url("/v1/bundles/sync")) as answer:
            assert answer.status == 202
        await wait_for_revision(http, sidecar, "2")
    finally:
        await origin.server.close()
    assert set(origin.authorizations) == {"Bearer s3cret"}


async def test_dev_mode_becomes_ready_and_answers(
    spawn: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """`pdp run --dev` signs the built-in bundle with a new local key and serves it, verified."""
    sidecar: SidecarProcess = spawn("--dev")
    await sidecar.wait_ready(http)
    status, body = await decide(http, sidecar)
    key = tmp_path / ".pdp" / "dev-keys" / "pdp-dev.key"
    assert status == 200
    assert body["result"]["allowed"] is True
    assert body["result"]["bundle_revision"] == "dev"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    status_doc = await status_of(http, sidecar)
    assert status_doc["bundle"]["verified"] is True
    assert status_doc["bundle"]["key_id"] == "pdp-dev"
    assert sidecar.stop() == 0
    sidecar.kill()  # already exited: this only waits for the log reader to finish
    assert len(sidecar.logs) == len(sidecar.raw_stderr)  # every log line is one JSON event


async def test_decision_log_file_is_masked_and_flushed_on_exit(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """--decision-log FILE gets one masked event per decision, all written by the time of exit."""
    log = tmp_path / "decisions.jsonl"
    sidecar: SidecarProcess = spawn(*sidecar_args(
        bundles.write(1), bundles, "--decision-log", str(log),
        "--decision-log-mask", "/input/context"))
    await sidecar.wait_ready(http)
    ids = [(await decide(http, sidecar))[1]["decision_id"] for _ in range(3)]
    assert await asyncio.to_thread(sidecar.stop) == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [event["decision_id"] for event in events] == ids
    assert all("context" not in event["input"] for event in events)
    assert all(event["input"]["user_id"] == "user-456" for event in events)


async def test_sigint_also_stops_cleanly(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession
) -> None:
    """Ctrl-C (SIGINT) is a graceful stop too, with exit code 0."""
    sidecar: SidecarProcess = spawn(*sidecar_args(bundles.write(1), bundles))
    await sidecar.wait_ready(http)
    assert await asyncio.to_thread(sidecar.stop, signal.SIGINT) == 0
