"""The bundle server's long poll (DESIGN §8.4): what a held request may answer, and to whom."""

from __future__ import annotations

import asyncio
import time

from control_support import ApiClient, bearer

from pdp.control.auth import Role


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
