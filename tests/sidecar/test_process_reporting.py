"""`pdp run` reports to the control plane: status on change, decision logs uploaded (DESIGN §7.4).

The control plane's intake is played by a small aiohttp server on 127.0.0.1; the control plane's own
intake is tested against the real runtime reporter in tests/control.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_process_support import CHECK_ACCESS_INPUT, BundleFactory, SidecarProcess


class Intake:
    """What a control plane received on /v1/status and /v1/logs, with the bearer tokens used."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.tokens: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/status", self._status)
        app.router.add_post("/v1/logs", self._logs)
        return app

    async def _status(self, request: web.Request) -> web.Response:
        self.tokens.add(request.headers.get("Authorization", ""))
        self.statuses.append(await request.json())
        return web.json_response({})

    async def _logs(self, request: web.Request) -> web.Response:
        self.tokens.add(request.headers.get("Authorization", ""))
        assert request.headers.get("Content-Encoding") == "gzip"
        self.events.extend(await request.json())  # aiohttp has already inflated the body
        return web.json_response({})


async def test_sidecar_reports_status_and_uploads_decisions(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With --control-url the fleet learns the sidecar's revision, labels, and its decisions."""
    intake = Intake()
    server = TestServer(intake.app(), host="127.0.0.1")
    await server.start_server()
    token = tmp_path / "token"
    token.write_text("sidecar-secret\n")
    try:
        path = bundles.write(3)
        sidecar: SidecarProcess = spawn(
            "--bundle", str(path), "--verification-key", str(bundles.key.public),
            "--control-url", str(server.make_url("")), "--bundle-token-file", str(token),
            "--instance-id", "api-7", "--label", "app=api", "--decision-log", "upload",
        )
        await sidecar.wait_ready(http)
        check = sidecar.url("/v1/data/policyengine/check_access")
        async with http.post(check, json={"input": CHECK_ACCESS_INPUT}) as answer:
            decision = (await answer.json())["decision_id"]
        for _ in range(100):
            if any(s.get("revision") == "3" for s in intake.statuses):
                break
            await asyncio.sleep(0.05)
        # Shutdown flushes the upload; stop in a thread so this loop's intake can answer it.
        assert await asyncio.to_thread(sidecar.stop) == 0
    finally:
        await server.close()
    report = next(s for s in intake.statuses if s.get("revision") == "3")
    assert report["instance_id"] == "api-7"
    assert report["labels"] == {"app": "api"}
    assert report["state"] == "fresh"
    assert [e["decision_id"] for e in intake.events] == [decision]
    assert intake.tokens == {"Bearer sidecar-secret"}


async def test_long_polls_return_within_half_the_max_bundle_age() -> None:
    """With --max-bundle-age the control plane is asked to answer well before it would go stale.

    Only an answer confirms the bundle, so a 30 s long-poll with a 10 s max age would turn a healthy
    sidecar stale between answers.
    """
    from pdp.sidecar.process import http_source
    from pdp.sidecar.settings import load_settings

    asked: list[str] = []

    async def bundle(request: web.Request) -> web.Response:
        asked.append(request.headers.get("Prefer", ""))
        if len(asked) == 1:
            return web.Response(body=b"bundle", headers={"ETag": '"e1"'})
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/bundles/main", bundle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        for max_age, expected in ((None, "wait=30"), (10.0, "wait=5"), (0.5, "wait=1")):
            asked.clear()
            options: dict[str, Any] = {"bundle_url": str(server.make_url("/bundles/main")),
                                       "verification_key": ["k.pem"]}
            if max_age is not None:
                options["max_bundle_age"] = max_age
            source = http_source(load_settings(options))
            updates = source.updates()
            # The first fetch asks for the bundle at once; the next, holding it, long-polls.
            await anext(updates)
            await anext(updates)
            await source.close()
            await updates.aclose()
            assert asked == ["", expected]
    finally:
        await server.close()


async def test_polling_a_plain_server_confirms_within_the_max_bundle_age() -> None:
    """A bundle server that does not hold requests is polled often enough to keep it fresh.

    A static file server answers at once without ``Preference-Applied``; polled every 10 s, a
    sidecar with a 4 s max age turned stale between polls although its server was healthy.
    """
    from pdp.sidecar.process import http_source
    from pdp.sidecar.settings import load_settings

    async def bundle(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"e1"':
            return web.Response(status=304)  # at once, without Preference-Applied
        return web.Response(body=b"bundle", headers={"ETag": '"e1"'})

    app = web.Application()
    app.router.add_get("/bundles/main", bundle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        source = http_source(load_settings({
            "bundle_url": str(server.make_url("/bundles/main")), "verification_key": ["k.pem"],
            "max_bundle_age": 4.0}))
        updates = source.updates()
        await anext(updates)  # the bundle
        await anext(updates)  # the first 304, not held: the source now polls
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(anext(updates), 10.0)
        waited = loop.time() - started
        await source.close()
        await updates.aclose()
    finally:
        await server.close()
    assert waited < 4.0 * 0.75, f"the next poll came {waited:.1f} s later, max age 4 s"
