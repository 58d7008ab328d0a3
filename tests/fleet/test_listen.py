"""The database cuts the control plane's connections (`pg_terminate_backend`, as in a failover or
restart): LISTEN is re-established, and the next publish reaches every sidecar through it."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pytest
from fleet_support import FleetHarness, Replica

pytestmark = pytest.mark.slow


async def _ready_and_listening(replica: Replica) -> bool:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{replica.url}/health/ready") as answer:
        return answer.status == 200 and (await answer.json())["listening"] is True


async def test_after_its_connections_are_terminated_a_publish_still_reaches_every_sidecar(
        harness: FleetHarness) -> None:
    """LISTEN resumes by itself; the publish arrives within 1 s, far quicker than the re-check."""
    # A 60 s re-check cannot explain a sub-second arrival: only a working LISTEN can.
    replica = await harness.start_replica("a", extra=["--recheck-seconds", "60"])
    await harness.publish(replica)
    await asyncio.gather(*(harness.start_sidecar(name, replica) for name in ("s1", "s2")))
    conn = await asyncpg.connect(harness.database_url)
    try:
        cut = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await conn.close()
    assert cut >= 2, "expected the pool and the LISTEN connection to be cut"
    await harness.wait_until("LISTEN re-established", lambda: _ready_and_listening(replica),
                             within=10)
    record = await harness.publish(replica)
    await harness.wait_until("every sidecar on the new bundle",
                             lambda: harness.all_on(record["sequence"]), within=1)
