"""`HttpSource` (the sidecar's ``--bundle-url``) against a real control plane on a real socket."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from control_support import ApiClient
from ports import free_port
from pytest_aiohttp import AiohttpServer

from pdp.control.auth import Principal, Role
from pdp.control.bundle_server import requested_wait
from pdp.control.plane import ControlPlane
from pdp.runtime.errors import SourceError
from pdp.runtime.http_source import Backoff, HttpSource
from pdp.runtime.source import BundleSource, BundleUnchanged, BundleUpdate, SourceEvent

PUBLISHER = Principal(token_id=0, name="tester", role=Role.PUBLISHER)
FAST = Backoff(initial=0.05, factor=1.6, cap=0.2)


@pytest.fixture
def token_file(tmp_path: Path, tokens: dict[Role, str]) -> Path:
    """A file holding a sidecar token."""
    path = tmp_path / "token"
    path.write_text(tokens[Role.SIDECAR] + "\n")
    return path


@pytest.fixture
async def published(plane: ControlPlane) -> None:
    """One bundle published before the source starts."""
    await plane.publisher.publish(PUBLISHER)
    await plane.feed.refresh()


class Events:
    """Reads a source's events one at a time, with a deadline."""

    def __init__(self, source: HttpSource) -> None:
        self.source = source
        self._iterator: AsyncIterator[SourceEvent] = source.updates()

    async def next(self, within: float = 15.0) -> SourceEvent:
        """The next event, failing the test if none comes within `within` seconds."""
        return await asyncio.wait_for(anext(self._iterator), within)

    async def close(self) -> None:
        """Close the source and drain its iterator."""
        await self.source.close()
        async for _ in self._iterator:
            pass


@pytest.fixture
async def events(client: ApiClient, token_file: Path) -> AsyncIterator[Events]:
    """Events of a source pulling the control plane's main bundle with a sidecar token."""
    source = HttpSource(str(client.make_url("/bundles/main")), token_file=token_file,
                        wait_seconds=20, backoff=FAST, rng=random.Random(7))
    reader = Events(source)
    yield reader
    await reader.close()


def test_http_source_is_a_bundle_source() -> None:
    """The runtime can use it wherever it uses a FileSource."""
    assert isinstance(HttpSource("http://127.0.0.1:1/bundles/main"), BundleSource)


@pytest.mark.usefixtures("published")
async def test_the_first_fetch_delivers_the_stored_bundle(plane: ControlPlane,
                                                          events: Events) -> None:
    """The bytes and ETag the source yields are the control plane's."""
    event = await events.next()
    stored = await plane.publisher.bundles.get(1, with_content=True)
    assert isinstance(event, BundleUpdate)
    assert event.data == stored.content and event.etag == stored.etag
    assert event.source == "http"


@pytest.mark.usefixtures("published")
async def test_a_publish_reaches_a_waiting_source_promptly(plane: ControlPlane,
                                                           events: Events) -> None:
    """After the first bundle the source long-polls; the next publish arrives at once."""
    first = await events.next()
    waiting = asyncio.ensure_future(events.next(within=20))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await plane.publisher.publish(PUBLISHER)
    started = time.monotonic()
    second = await waiting
    assert isinstance(first, BundleUpdate) and isinstance(second, BundleUpdate)
    assert second.etag != first.etag
    assert time.monotonic() - started < 0.5


@pytest.mark.usefixtures("published")
async def test_request_sync_cuts_a_long_poll_short(events: Events) -> None:
    """A sync request gets the whole bundle again at once, not a 304 for the ETag last
    delivered (that bundle may have been refused and deserve another try)."""
    first = await events.next()
    await asyncio.sleep(0.2)
    events.source.request_sync()
    event = await events.next(within=2)
    assert isinstance(first, BundleUpdate) and isinstance(event, BundleUpdate)
    assert event.data == first.data and event.etag == first.etag


@pytest.mark.usefixtures("published")
async def test_the_token_file_is_read_for_every_request(token_file: Path, events: Events,
                                                        tokens: dict[Role, str]) -> None:
    """A wrong token fails; writing the right one into the file fixes the next attempt."""
    await asyncio.to_thread(token_file.write_text, "pdp_wrong")
    refused = await events.next()
    await asyncio.to_thread(token_file.write_text, tokens[Role.SIDECAR])
    later = await events.next()
    assert isinstance(refused, SourceError) and refused.reason == "unauthorized"
    assert isinstance(later, BundleUpdate)


async def test_errors_are_retried_with_growing_backoff(tmp_path: Path) -> None:
    """With nothing listening, each failure is yielded and the pauses grow to the cap."""
    source = HttpSource(f"http://127.0.0.1:{free_port()}/bundles/main", backoff=FAST,
                        rng=random.Random(3))
    reader = Events(source)
    stamps: list[float] = []
    try:
        for _ in range(5):
            event = await reader.next()
            assert isinstance(event, SourceError) and event.reason == "unreachable"
            stamps.append(time.monotonic())
    finally:
        await reader.close()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(0.02 <= gap < 0.5 for gap in gaps), gaps


def test_backoff_grows_by_the_factor_and_is_capped() -> None:
    """Delays stay between half and all of 100 ms x 1.6^(n-1), never above the cap."""
    backoff, rng = Backoff(), random.Random(1)
    for failures in range(1, 30):
        ceiling = min(backoff.cap, 0.1 * 1.6 ** (failures - 1))
        assert ceiling / 2 <= backoff.delay(failures, rng) <= ceiling


async def _gaps_between_requests(aiohttp_server: AiohttpServer,
                                 answer: Callable[[web.Request], web.Response]) -> list[float]:
    """Seconds between the requests after the first of a source reading four events."""
    hits: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(time.monotonic())
        return answer(request)

    app = web.Application()
    app.router.add_get("/bundles/main", handler)
    server = await aiohttp_server(app)
    source = HttpSource(str(server.make_url("/bundles/main")), poll_interval=0.2,
                        rng=random.Random(5))
    reader = Events(source)
    try:
        for _ in range(4):
            assert not isinstance(await reader.next(), SourceError)
    finally:
        await reader.close()
    return [b - a for a, b in itertools.pairwise(hits[1:])]


async def test_a_server_that_ignores_prefer_wait_is_polled_not_hammered(
        aiohttp_server: AiohttpServer) -> None:
    """304s that were not held make the source poll at its interval instead of looping."""

    def never_changes(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match"):
            return web.Response(status=304)
        return web.Response(body=b"bundle", headers={"ETag": '"e1"'})

    gaps = await _gaps_between_requests(aiohttp_server, never_changes)
    assert all(gap >= 0.15 for gap in gaps), gaps


@pytest.mark.usefixtures("published")
async def test_close_ends_the_updates_during_a_long_poll(events: Events) -> None:
    """Closing does not wait for a held request to time out."""
    await events.next()
    pending = asyncio.ensure_future(events.next(within=10))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await events.source.close()
    with pytest.raises(StopAsyncIteration):
        await pending
    assert time.monotonic() - started < 1.0


@pytest.mark.usefixtures("published")
async def test_cancelling_the_consumer_leaves_no_request_running(client: ApiClient,
                                                                 token_file: Path) -> None:
    """A consumer task cancelled mid-poll ends cleanly (no pending task, no unclosed session)."""
    source = HttpSource(str(client.make_url("/bundles/main")), token_file=token_file,
                        wait_seconds=20)
    updates = source.updates()
    await anext(updates)
    consumer = asyncio.ensure_future(anext(updates))
    await asyncio.sleep(0.3)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await updates.aclose()
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
               and "_fetch" in repr(t.get_coro())]
    assert pending == []


async def test_a_file_server_without_etags_is_polled_not_hammered(
        aiohttp_server: AiohttpServer) -> None:
    """A server that answers every request with the whole bundle (no ETag, no long poll) is
    asked again only at the poll interval."""
    gaps = await _gaps_between_requests(aiohttp_server, lambda _: web.Response(body=b"bundle"))
    assert all(gap >= 0.15 for gap in gaps), gaps


@pytest.mark.usefixtures("published")
async def test_a_token_file_that_is_not_one_token_is_an_error_not_the_end(
        token_file: Path, events: Events, tokens: dict[Role, str]) -> None:
    """A second line in the token file is refused, without quoting it; once fixed, the next
    fetch works (the source goes on, it does not stop)."""
    await asyncio.to_thread(token_file.write_text, "pdp_one\npdp_two\n")
    refused = await events.next()
    assert isinstance(refused, SourceError) and refused.reason == "token_invalid"
    assert "pdp_one" not in str(refused)
    await asyncio.to_thread(token_file.write_text, tokens[Role.SIDECAR])
    assert isinstance(await events.next(), BundleUpdate)


async def test_a_ca_file_that_cannot_be_loaded_is_retried_not_fatal(tmp_path: Path) -> None:
    """A missing CA file is an error the source reports and tries again, like a failed fetch:
    the file may be mounted a moment later."""
    source = HttpSource(f"https://127.0.0.1:{free_port()}/bundles/main",
                        ca_file=tmp_path / "missing.pem", backoff=FAST, rng=random.Random(3))
    reader = Events(source)
    try:
        for _ in range(2):
            event = await reader.next()
            assert isinstance(event, SourceError) and event.reason == "ca_unreadable"
            assert "missing.pem" in str(event)
    finally:
        await reader.close()


async def test_after_a_failure_the_next_request_asks_at_once(
        aiohttp_server: AiohttpServer) -> None:
    """Once the server answers again, the bundle is confirmed by an immediate check, not by a
    long poll that holds the sidecar in last-known-good for its whole wait."""
    answers = iter([200, 500])

    async def flaky_long_poll(request: web.Request) -> web.Response:
        status = next(answers, 304)
        if status == 500:
            return web.Response(status=500)
        if status == 304:
            wait = requested_wait(request.headers.get("Prefer"), 30.0)
            if wait:
                await asyncio.sleep(wait)  # a real long poll: held while nothing changes
            return web.Response(status=304, headers={"ETag": '"e1"',
                                                     "Preference-Applied": f"wait={wait:g}"})
        return web.Response(body=b"bundle", headers={"ETag": '"e1"'})

    app = web.Application()
    app.router.add_get("/bundles/main", flaky_long_poll)
    server = await aiohttp_server(app)
    reader = Events(HttpSource(str(server.make_url("/bundles/main")), backoff=FAST,
                               rng=random.Random(5)))
    try:
        assert isinstance(await reader.next(), BundleUpdate)
        assert isinstance(await reader.next(), SourceError)
        assert isinstance(await reader.next(within=2), BundleUnchanged)
    finally:
        await reader.close()


async def test_the_servers_error_message_is_in_the_source_error(events: Events) -> None:
    """Before anything is published the control plane answers 404 with a JSON message: the
    error names it, so an operator reads why, not only "HTTP 404 Not Found"."""
    event = await events.next()
    assert isinstance(event, SourceError) and event.reason == "not_found"
    assert str(event).endswith("HTTP 404 Not Found: nothing has been published yet")


async def test_a_servers_error_message_is_bounded_and_has_no_control_characters(
        aiohttp_server: AiohttpServer) -> None:
    """A hostile server cannot forge log lines or flood them through its error message, nor
    break the source with a body nested too deep to parse."""

    async def hostile(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") is None and request.query.get("deep"):
            return web.Response(body=b"[" * 4000, status=503, content_type="application/json")
        return web.json_response({"code": "x", "message": "bad\n\x1b[31mFORGED " + "y" * 3000},
                                 status=503)

    app = web.Application()
    app.router.add_get("/bundles/main", hostile)
    server = await aiohttp_server(app)
    reader = Events(HttpSource(str(server.make_url("/bundles/main?deep=1")), backoff=FAST))
    try:
        deep = await reader.next()
    finally:
        await reader.close()
    assert str(deep).endswith("/bundles/main: HTTP 503 Service Unavailable")
    reader = Events(HttpSource(str(server.make_url("/bundles/main")), backoff=FAST))
    try:
        event = await reader.next()
    finally:
        await reader.close()
    assert isinstance(event, SourceError) and event.reason == "server_error"
    said = str(event).split("HTTP 503 Service Unavailable: ", 1)[1]
    assert said.startswith("bad [31mFORGED yyy") and said.endswith("...")
    assert len(said) == 200 and said.isprintable()


async def test_a_signed_urls_query_is_never_in_an_error(aiohttp_server: AiohttpServer) -> None:
    """Credentials in the bundle URL's query (a presigned URL) stay out of every error message,
    whether the server answers an error or the HTTP client quotes the URL (a redirect loop)."""

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/loop":
            raise web.HTTPFound("/loop?X-Amz-Signature=SECRET")
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/bundles/main", answer)
    app.router.add_get("/loop", answer)
    server = await aiohttp_server(app)
    messages = []
    for path in ("/bundles/main", "/loop"):
        url = str(server.make_url(path)) + "?X-Amz-Signature=SECRET&X-Amz-Credential=KEY#FRAG"
        reader = Events(HttpSource(url, backoff=FAST))
        try:
            event = await reader.next()
        finally:
            await reader.close()
        assert isinstance(event, SourceError)
        messages.append(str(event))
    assert all(m.startswith(str(server.make_url("/"))) for m in messages), messages
    assert not any(secret in m for m in messages for secret in ("SECRET", "KEY", "FRAG"))
    assert messages[0].endswith("/bundles/main: HTTP 500 Internal Server Error")
