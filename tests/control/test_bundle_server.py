"""The bundle server's long poll (DESIGN §8.4): what a held request may answer, and to whom."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from control_support import ApiClient, bearer, create_tokens

from pdp.control.auth import Principal, Role
from pdp.control.server import ControlServer
from pdp.sidecar.settings import ListenAddress

PUBLISHER = Principal(token_id=0, name="tester", role=Role.PUBLISHER)


async def _download(client: ApiClient, token: str, **headers: str) -> tuple[int, str]:
    async with client.get("/bundles/main", headers={**bearer(token), **headers}) as answer:
        return answer.status, answer.headers.get("ETag", "")


async def _publish(client: ApiClient, tokens: dict[Role, str]) -> None:
    answer = await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    assert answer.status == 201, await answer.text()


async def test_a_token_revoked_during_a_long_poll_does_not_get_the_next_bundle(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """The caller is checked again when the wait ends: revoked meanwhile means 401, not the
    bundle published meanwhile."""
    await _publish(client, tokens)
    _, etag = await _download(client, tokens[Role.SIDECAR])
    waiting = asyncio.create_task(_download(client, tokens[Role.SIDECAR],
                                            **{"If-None-Match": etag, "Prefer": "wait=20"}))
    await asyncio.sleep(0.3)
    admin = bearer(tokens[Role.ADMIN])
    listed = await (await client.get("/v1/tokens", headers=admin)).json()
    sidecar = next(t["id"] for t in listed["tokens"] if t["role"] == "sidecar")
    assert (await client.delete(f"/v1/tokens/{sidecar}", headers=admin)).status == 200
    await _publish(client, tokens)
    status, _ = await asyncio.wait_for(waiting, 5)
    assert status == 401


async def test_a_long_poll_listing_several_etags_waits_while_one_is_current(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """`If-None-Match: "current", "older"` is held like `"current"` alone, then 304."""
    await _publish(client, tokens)
    _, etag = await _download(client, tokens[Role.SIDECAR])
    started = time.monotonic()
    status, _ = await _download(client, tokens[Role.SIDECAR],
                                **{"If-None-Match": f'"older", {etag}', "Prefer": "wait=1"})
    assert status == 304
    assert 0.9 <= time.monotonic() - started < 3.0


async def test_if_none_match_star_matches_the_current_bundle(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """RFC 9110: `*` matches any current representation, so a published bundle answers 304."""
    await _publish(client, tokens)
    status, etag = await _download(client, tokens[Role.SIDECAR], **{"If-None-Match": "*"})
    assert status == 304 and etag


async def test_a_malformed_wait_preference_is_no_wait(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """`Prefer: wait=1e3` is not a number of seconds: the answer comes at once, as without it,
    and no wait is claimed as applied."""
    await _publish(client, tokens)
    _, etag = await _download(client, tokens[Role.SIDECAR])
    started = time.monotonic()
    async with client.get("/bundles/main", headers={
            **bearer(tokens[Role.SIDECAR]), "If-None-Match": etag, "Prefer": "wait=1e3"}) as answer:
        assert answer.status == 304
        assert "Preference-Applied" not in answer.headers
    assert time.monotonic() - started < 0.9



async def _abandoned_long_poll(address: ListenAddress, token: str, etag: str) -> None:
    """Send a long-poll on a raw socket, let the server start holding it, and hang up."""
    _, writer = await asyncio.open_connection(address.host, address.port)
    writer.write((f"GET /bundles/main HTTP/1.1\r\nHost: pdp\r\nAuthorization: Bearer {token}\r\n"
                  f"If-None-Match: {etag}\r\nPrefer: wait=20\r\n\r\n").encode())
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await writer.wait_closed()


async def _served_bundle(served: ControlServer) -> tuple[dict[Role, str], str]:
    """Tokens per role and the ETag of a bundle just published on `served`."""
    assert served.plane is not None
    tokens = await create_tokens(served.plane.pool)
    await served.plane.publisher.publish(PUBLISHER)
    url = f"http://{served.http_address}/bundles/main"
    async with aiohttp.ClientSession() as session, \
            session.get(url, headers=bearer(tokens[Role.SIDECAR])) as answer:
        assert answer.status == 200
        return tokens, answer.headers["ETag"]


def _sample(served: ControlServer, name: str, **labels: str) -> float:
    assert served.plane is not None
    value = served.plane.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_a_long_poll_whose_client_hung_up_stops_waiting(served: ControlServer) -> None:
    """Clients that went away are not held (nor counted as waiting) until their wait ends, and
    their 304 is not counted as a download."""
    tokens, etag = await _served_bundle(served)
    assert served.http_address is not None
    for _ in range(3):
        await _abandoned_long_poll(served.http_address, tokens[Role.SIDECAR], etag)
    await asyncio.sleep(1.5)
    assert _sample(served, "pdp_control_long_polls_waiting") == 0
    assert _sample(served, "pdp_control_bundle_downloads_total", status="304") == 0


async def test_a_publish_does_not_answer_long_polls_whose_client_hung_up(
        served: ControlServer) -> None:
    """A publish wakes only the clients still there: no phantom download is counted for those
    that went away."""
    tokens, etag = await _served_bundle(served)
    assert served.http_address is not None and served.plane is not None
    for _ in range(3):
        await _abandoned_long_poll(served.http_address, tokens[Role.SIDECAR], etag)
    await served.plane.publisher.publish(PUBLISHER)
    await asyncio.sleep(0.5)
    assert _sample(served, "pdp_control_bundle_downloads_total", status="200") == 1


async def test_head_answers_like_get_without_the_body(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """`HEAD /bundles/main` gives the current ETag and sequence without the bytes, and needs
    a token as a download does."""
    await _publish(client, tokens)
    _, etag = await _download(client, tokens[Role.SIDECAR])
    async with client.head("/bundles/main", headers=bearer(tokens[Role.SIDECAR])) as answer:
        assert answer.status == 200
        assert answer.headers["ETag"] == etag and answer.headers["X-Bundle-Sequence"] == "1"
        assert await answer.read() == b""
    async with client.head("/bundles/main", headers={
            **bearer(tokens[Role.SIDECAR]), "If-None-Match": etag}) as answer:
        assert answer.status == 304
    async with client.head("/bundles/main") as answer:
        assert answer.status == 401
