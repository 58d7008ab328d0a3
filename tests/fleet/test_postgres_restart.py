"""PostgreSQL restarted under the control plane (DESIGN §13), on a throwaway cluster of this
test's own (the shared server must never be restarted): the control plane reconnects, LISTEN
resumes, and the next publish reaches the sidecar through it."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from control_support import make_keys
from fleet_support import FleetHarness, Replica
from postgres import ThrowawayCluster

pytestmark = pytest.mark.slow


@pytest.fixture
async def own_cluster(tmp_path: Path) -> AsyncIterator[ThrowawayCluster]:
    """A PostgreSQL cluster only this test uses (skipped where initdb/pg_ctl are missing)."""
    try:
        cluster = await asyncio.to_thread(ThrowawayCluster.start)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no throwaway PostgreSQL cluster: {exc}")
    yield cluster
    await asyncio.to_thread(cluster.stop)


def _restart(cluster: ThrowawayCluster) -> None:
    # pg_ctl restart reuses the server's options (postmaster.opts) but not pg_ctl's own `-l`:
    # without it the new server would hold our output pipes open forever.
    subprocess.run([*cluster.run_as, "pg_ctl", "-D", str(cluster.directory / "data"),
                    "-l", str(cluster.directory / "log"), "-m", "fast", "-w", "restart"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


async def _listening(replica: Replica) -> bool:
    try:
        async with aiohttp.ClientSession() as session, \
                session.get(f"{replica.url}/health/ready") as answer:
            return answer.status == 200 and (await answer.json())["listening"] is True
    except aiohttp.ClientError:
        return False


async def test_after_a_postgresql_restart_the_next_publish_arrives_through_listen(
        own_cluster: ThrowawayCluster, tmp_path: Path) -> None:
    """Reconnect, LISTEN again, and deliver the next publish in < 1 s (re-check is 60 s)."""
    harness = FleetHarness(tmp_path, own_cluster.dsn, make_keys(tmp_path / "keys"))
    try:
        replica = await harness.start_replica("a", extra=["--recheck-seconds", "60"])
        await harness.publish(replica)
        await harness.start_sidecar("s1", replica)
        await asyncio.to_thread(_restart, own_cluster)
        await harness.wait_until("LISTEN after the restart", lambda: _listening(replica),
                                 within=15)
        record = await harness.publish(replica)
        await harness.wait_until("the sidecar on the new bundle",
                                 lambda: harness.all_on(record["sequence"]), within=1)
    finally:
        await harness.close()
