"""What an operator watches: sidecar expiry, stragglers, readiness of LISTEN, and /metrics.

In-process control planes on a real PostgreSQL and a real socket; the process-level fleet
scenarios are in tests/fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from control_support import (
    MARKETPLACE,
    ApiClient,
    SigningKeys,
    bearer,
    create_tokens,
    settings_for,
)
from postgres import PostgresServer
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from pdp.control.auth import Principal, Role
from pdp.control.errors import ConfigurationError
from pdp.control.http_app import make_app
from pdp.control.intake_routes import expiry_sweep_seconds
from pdp.control.plane import ControlPlane, open_control_plane
from pdp.control.publish_pause import PublishPause

PUBLISHER = Principal(token_id=0, name="tester", role=Role.PUBLISHER)
EXPIRY = 1.0


def report(instance: str, sequence: int | None, state: str = "fresh",
           error: str | None = None) -> dict[str, Any]:
    """A status document shaped like the runtime's StatusReporter sends."""
    return {"instance_id": instance, "labels": {}, "state": state, "ready": True,
            "revision": None if sequence is None else str(sequence), "sequence": sequence,
            "last_error": None if error is None else {"reason": "fetch_failed",
                                                      "message": error, "source": "http"}}


@pytest.fixture
async def expiring(database_url: str, keys: SigningKeys,
                   aiohttp_client: AiohttpClient) -> AsyncIterator[tuple[ControlPlane, ApiClient]]:
    """A control plane whose sidecars expire one second after their last report."""
    plane = await open_control_plane(settings_for(database_url, keys, sidecar_expiry=EXPIRY),
                                     seed_dir=MARKETPLACE, registry=CollectorRegistry())
    client = await aiohttp_client(make_app(plane))
    yield plane, client
    await client.close()
    await plane.close()


@pytest.fixture
async def tokens_of(expiring: tuple[ControlPlane, ApiClient]) -> dict[Role, str]:
    """One token per role on the expiring control plane's database."""
    return await create_tokens(expiring[0].pool)


async def _post(client: ApiClient, token: str, body: dict[str, Any]) -> None:
    answer = await client.post("/v1/status", json=body, headers=bearer(token))
    assert answer.status == 200, await answer.text()


async def _metrics(client: ApiClient) -> str:
    answer = await client.get("/metrics")
    assert answer.status == 200
    return await answer.text()


async def test_a_silent_sidecar_is_deleted_from_the_database_after_the_expiry(
        expiring: tuple[ControlPlane, ApiClient], tokens_of: dict[Role, str]) -> None:
    """Instances not seen for --sidecar-expiry are really deleted, not just hidden."""
    plane, client = expiring
    await _post(client, tokens_of[Role.SIDECAR], report("gone", None, "starting"))
    assert await plane.pool.fetchval("SELECT count(*) FROM sidecars") == 1
    deadline = time.monotonic() + EXPIRY + 2 * expiry_sweep_seconds(EXPIRY) + 2.0
    while await plane.pool.fetchval("SELECT count(*) FROM sidecars"):
        assert time.monotonic() < deadline, "the silent sidecar was never deleted"
        await asyncio.sleep(0.05)
    assert "pdp_control_sidecars_expired_total 1.0" in await _metrics(client)


async def test_a_sidecar_that_keeps_reporting_is_never_expired(
        expiring: tuple[ControlPlane, ApiClient], tokens_of: dict[Role, str]) -> None:
    """Reports more often than the expiry keep an instance in the fleet indefinitely."""
    plane, client = expiring
    for _ in range(12):
        await _post(client, tokens_of[Role.SIDECAR], report("alive", None, "starting"))
        await asyncio.sleep(EXPIRY / 4)
    rows = await plane.pool.fetch("SELECT instance_id FROM sidecars")
    assert [r["instance_id"] for r in rows] == ["alive"]


async def test_the_fleet_lists_stragglers_with_revision_state_and_last_error(
        expiring: tuple[ControlPlane, ApiClient], tokens_of: dict[Role, str]) -> None:
    """Whoever is not on the latest bundle is named with what the operator needs to act."""
    plane, client = expiring
    await plane.publisher.publish(PUBLISHER)
    await plane.publisher.publish(PUBLISHER)
    await _post(client, tokens_of[Role.SIDECAR], report("ok", 2))
    await _post(client, tokens_of[Role.SIDECAR],
                report("late", 1, "last_known_good", error="connection refused"))
    answer = await client.get("/v1/fleet", headers=bearer(tokens_of[Role.VIEWER]))
    fleet = await answer.json()
    assert fleet["summary"] == "1 of 2 on revision 2"
    assert fleet["by_revision"] == {"1": 1, "2": 1}
    [straggler] = fleet["stragglers"]
    assert (straggler["instance_id"], straggler["revision"], straggler["state"],
            straggler["last_error"]["message"]) == ("late", "1", "last_known_good",
                                                    "connection refused")


async def test_metrics_show_the_fleet_size_per_revision(
        expiring: tuple[ControlPlane, ApiClient], tokens_of: dict[Role, str]) -> None:
    """pdp_control_fleet_sidecars{revision} counts reporting sidecars per revision."""
    plane, client = expiring
    await plane.publisher.publish(PUBLISHER)
    for name, sequence in (("a", 1), ("b", 1), ("c", None)):
        await _post(client, tokens_of[Role.SIDECAR], report(name, sequence))
    text = await _metrics(client)
    assert 'pdp_control_fleet_sidecars{revision="1"} 2.0' in text
    assert 'pdp_control_fleet_sidecars{revision="none"} 1.0' in text


async def test_metrics_count_publishes_and_downloads_by_status(
        expiring: tuple[ControlPlane, ApiClient], tokens_of: dict[Role, str]) -> None:
    """Publishes by result, bundle downloads split into 200 and 304."""
    _, client = expiring
    await client.post("/v1/publish", headers=bearer(tokens_of[Role.PUBLISHER]))
    sidecar = bearer(tokens_of[Role.SIDECAR])
    first = await client.get("/bundles/main", headers=sidecar)
    etag = first.headers["ETag"]
    for _ in range(2):
        await client.get("/bundles/main", headers={**sidecar, "If-None-Match": etag})
    text = await _metrics(client)
    assert 'pdp_control_publishes_total{action="publish",result="success"} 1.0' in text
    assert 'pdp_control_bundle_downloads_total{status="200"} 1.0' in text
    assert 'pdp_control_bundle_downloads_total{status="304"} 2.0' in text


async def test_metrics_show_long_polls_while_they_wait(
        expiring: tuple[ControlPlane, ApiClient], tokens_of: dict[Role, str]) -> None:
    """pdp_control_long_polls_waiting is the number of bundle requests held right now."""
    plane, client = expiring
    await plane.publisher.publish(PUBLISHER)
    await plane.feed.refresh()
    sidecar = bearer(tokens_of[Role.SIDECAR])
    etag = (await client.get("/bundles/main", headers=sidecar)).headers["ETag"]
    held = [asyncio.create_task(client.get(
        "/bundles/main", headers={**sidecar, "If-None-Match": etag, "Prefer": "wait=10"}))
        for _ in range(3)]
    await asyncio.sleep(0.3)
    assert "pdp_control_long_polls_waiting 3.0" in await _metrics(client)
    await plane.publisher.publish(PUBLISHER)
    assert {(await task).status for task in held} == {200}
    assert "pdp_control_long_polls_waiting 0.0" in await _metrics(client)


async def test_metrics_need_no_token(expiring: tuple[ControlPlane, ApiClient]) -> None:
    """Prometheus scrapes /metrics without credentials (documented in docs/decisions.md)."""
    _, client = expiring
    assert "pdp_control_listen_connected 1.0" in await _metrics(client)


@contextlib.asynccontextmanager
async def refusing_connections(postgres_server: PostgresServer, database_url: str, *,
                               terminate: str) -> AsyncIterator[None]:
    """Inside, PostgreSQL refuses new connections to the test database; on entry it ends the
    open ones ``terminate`` selects (a condition on ``pg_stat_activity``)."""
    # PostgreSQL cannot disallow connections to the database one is connected to.
    admin = await asyncpg.connect(postgres_server.maintenance_dsn)
    name = urlsplit(database_url).path.lstrip("/")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            f" WHERE datname = $1 AND {terminate}", name)
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def ready_again(client: ApiClient, what: str) -> None:
    """Wait up to 5 s for /health/ready to answer 200; fail naming ``what`` never came back."""
    deadline = time.monotonic() + 5.0
    while (await client.get("/health/ready")).status != 200:
        assert time.monotonic() < deadline, f"{what} never came back"
        await asyncio.sleep(0.1)


async def test_readiness_is_503_while_listen_is_lost_and_200_once_it_is_back(
        expiring: tuple[ControlPlane, ApiClient], database_url: str,
        postgres_server: PostgresServer) -> None:
    """A replica without its LISTEN connection says so on /health/ready until it re-opens it."""
    plane, client = expiring
    # New connections are refused, so the LISTEN connection cannot come back yet; the pool's
    # open connections keep the database itself reachable.
    async with refusing_connections(postgres_server, database_url,
                                    terminate="query LIKE 'LISTEN%'"):
        await asyncio.sleep(0.3)
        answer = await client.get("/health/ready")
        assert answer.status == 503
        assert (await answer.json())["listening"] is False
        assert "pdp_control_listen_connected 0.0" in await _metrics(client)
    await ready_again(client, "LISTEN")
    assert plane.feed.listening


async def test_an_idle_session_timeout_does_not_keep_closing_the_listen_connection(
        database_url: str, keys: SigningKeys, caplog: pytest.LogCaptureFixture) -> None:
    """Where the DBA sets PostgreSQL's idle_session_timeout, the replica stays listening (and
    ready) instead of losing its LISTEN connection at every timeout."""
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{name}" SET idle_session_timeout = 1000')
    finally:
        await conn.close()
    plane = await open_control_plane(settings_for(database_url, keys, recheck_seconds=0.3),
                                     seed_dir=MARKETPLACE, registry=CollectorRegistry())
    try:
        with caplog.at_level(logging.WARNING, logger="pdp.control.bundle_feed"):
            await asyncio.sleep(3)
        assert plane.feed.listening
        assert [r.getMessage() for r in caplog.records if "LISTEN" in r.getMessage()] == []
    finally:
        await plane.close()


async def test_readiness_is_503_naming_the_reason_while_the_database_refuses_connections(
        expiring: tuple[ControlPlane, ApiClient], database_url: str,
        postgres_server: PostgresServer) -> None:
    """With its connections gone and new ones refused, /health/ready answers 503 with
    PostgreSQL's reason (not a 500), and 200 again once connections are allowed."""
    _, client = expiring
    # Every connection of the plane goes, so the readiness check must open a new one.
    async with refusing_connections(postgres_server, database_url, terminate="true"):
        reasons: list[str] = []
        # The pool first hands out its dead connections (each a 503 too), then opens a new one.
        while not any("not currently accepting connections" in r for r in reasons):
            assert len(reasons) <= 12, f"the refusal was never named: {reasons}"
            answer = await client.get("/health/ready")
            body = await answer.json()
            assert answer.status == 503
            assert "listening" in body  # whether the feed has noticed yet depends on timing
            reasons.append(body["database"])
    await ready_again(client, "readiness")


@pytest.mark.parametrize("text", ["", "before_commit", "nowhere:5", "before_commit:x",
                                  "after_commit:0", "after_lock:-1", "after_lock:99999"])
def test_a_malformed_publish_pause_is_a_configuration_error(text: str) -> None:
    """The test-only hook refuses anything but POINT:SECONDS, naming the variable."""
    with pytest.raises(ConfigurationError, match="PDP_TEST_PUBLISH_PAUSE"):
        PublishPause.parse(text)


async def test_a_lock_held_elsewhere_is_a_bounded_503_not_a_hang(
        database_url: str, keys: SigningKeys, aiohttp_client: AiohttpClient) -> None:
    """Someone holds the bundles table (a manual LOCK TABLE): requests that need it answer 503
    within --database-timeout, saying the database did not answer in time."""
    plane = await open_control_plane(settings_for(database_url, keys, database_timeout=1.0),
                                     seed_dir=None)
    client = await aiohttp_client(make_app(plane))
    tokens = await create_tokens(plane.pool)
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE bundles IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            answer = await client.get("/v1/bundles", headers=bearer(tokens[Role.VIEWER]))
            waited = time.monotonic() - started
        assert answer.status == 503
        assert "no answer in time" in (await answer.json())["message"]
        assert waited < 5.0
    finally:
        await holder.close()
        await plane.close()
