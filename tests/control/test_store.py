"""The store under several replicas: migrations, seeding, readiness and lost notifications."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import pytest
from control_support import MARKETPLACE, ApiClient, SigningKeys, settings_for

from pdp.control.auth import Principal, Role
from pdp.control.migrations import (
    MIGRATION_LOCK_ID,
    apply_migrations,
    available_migrations,
    migrations_complete,
)
from pdp.control.plane import ControlPlane, open_control_plane

PUBLISHER = Principal(token_id=0, name="tester", role=Role.PUBLISHER)


async def test_replicas_migrating_at_once_apply_each_migration_exactly_once(
        database_url: str) -> None:
    """Four replicas starting together: one applies, the others find nothing to do."""
    connections = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(apply_migrations(c) for c in connections))
        rows = await connections[0].fetch("SELECT version FROM schema_migrations")
        assert await migrations_complete(connections[0])
    finally:
        for conn in connections:
            await conn.close()
    shipped = [m.version for m in available_migrations()]
    assert sorted(v for versions in applied for v in versions) == shipped
    assert sorted(r["version"] for r in rows) == shipped


async def test_replicas_starting_at_once_seed_the_defaults_once(database_url: str,
                                                                keys: SigningKeys) -> None:
    """Concurrent first starts do not duplicate the default policies or their history."""
    planes = await asyncio.gather(*(open_control_plane(settings_for(database_url, keys),
                                                       seed_dir=MARKETPLACE) for _ in range(3)))
    try:
        versions = await planes[0].pool.fetchval("SELECT count(*) FROM policy_versions")
        seeds = await planes[0].pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'seed'")
    finally:
        for plane in planes:
            await plane.close()
    assert versions == 5 and seeds == 1


async def test_readiness_fails_while_migrations_are_missing(plane: ControlPlane,
                                                            client: ApiClient) -> None:
    """/health/ready is 503 when the schema is behind the code."""
    await plane.pool.execute("DELETE FROM schema_migrations")
    answer = await client.get("/health/ready")
    assert answer.status == 503
    assert (await answer.json())["database"] == "migrations pending"


async def test_a_lost_listen_connection_delays_an_update_by_seconds_not_forever(
        plane: ControlPlane) -> None:
    """Kill the LISTEN connection: the periodic re-check still sees the next publish."""
    killed = await plane.pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN%'")
    assert killed == 1
    await asyncio.sleep(0.1)
    other = await open_control_plane(plane.settings, seed_dir=None)
    try:
        published = await other.publisher.publish(PUBLISHER)
    finally:
        await other.close()
    started = time.monotonic()
    while (plane.feed.latest is None or plane.feed.latest.sequence != published.sequence):
        assert time.monotonic() - started < 5.0, "the feed never saw the publish"
        await asyncio.sleep(0.05)
    assert plane.feed.listening, "the LISTEN connection was not re-established"


async def test_the_api_recovers_when_database_connections_are_cut(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str],
        database_url: str) -> None:
    """After every connection is killed (as in a restart), requests get 503 at worst, then 200."""
    from control_support import bearer

    headers = bearer(tokens[Role.VIEWER])
    # Several requests at once leave several open connections in the pool to be cut.
    await asyncio.gather(*(client.get("/v1/policies", headers=headers) for _ in range(6)))
    assert plane.pool.get_size() > 1
    killer = await asyncpg.connect(database_url)
    try:
        cut = await killer.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await killer.close()
    statuses = [(await client.get("/v1/policies", headers=headers)).status for _ in range(15)]
    assert cut > 1
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-3:] == [200, 200, 200], statuses


async def test_a_replica_waiting_for_the_migration_lock_says_so(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Start-up blocked by another session's migration lock logs that it waits and for whom,
    instead of hanging silently; it goes on once the lock is released."""
    holder = await asyncpg.connect(database_url)
    waiter = await asyncpg.connect(database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        holder_pid = holder.get_server_pid()
        with caplog.at_level(logging.WARNING, logger="pdp.control.migrations"):
            migrating = asyncio.create_task(apply_migrations(waiter))
            await asyncio.sleep(0.5)
            assert not migrating.done()
            assert [r.getMessage() for r in caplog.records] == [
                "waiting for the migration lock, held by another PostgreSQL session "
                f"(pid {holder_pid})"]
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
            await asyncio.wait_for(migrating, 10)
        assert await migrations_complete(waiter)
    finally:
        await holder.close()
        await waiter.close()
