"""The control plane goes away and comes back (DESIGN §7.3, §13).

While it is down, sidecars keep deciding with their last bundle and say `last_known_good`; a
sidecar restarted meanwhile starts from its persisted bundle; when the control plane returns, every
sidecar converges on the next publish without being restarted. A sidecar unconfirmed for longer
than `max_bundle_age` turns `stale` and acts per `stale_action`.
"""

from __future__ import annotations

import asyncio

import pytest
from fleet_support import FleetHarness, Sidecar

pytestmark = pytest.mark.slow


async def _state_is(harness: FleetHarness, sidecar: Sidecar, state: str) -> bool:
    return bool((await harness.status(sidecar))["state"] == state)


async def test_sidecars_outlive_the_control_plane_and_converge_when_it_returns(
        harness: FleetHarness) -> None:
    """last_known_good while it is down, cold start from disk, convergence without restarts."""
    replica = await harness.start_replica("a")
    await harness.publish(replica)
    first, second = await asyncio.gather(harness.start_sidecar("s1", replica),
                                         harness.start_sidecar("s2", replica))
    await harness.kill(replica)
    for sidecar in (first, second):
        await harness.wait_until(f"{sidecar.name} last_known_good",
                                 lambda s=sidecar: _state_is(harness, s, "last_known_good"),
                                 within=10)
        assert await harness.decide(sidecar) == 200

    assert second.process is not None
    await second.process.stop()
    await harness.restart_sidecar(second)
    status = await harness.status(second)
    assert (status["state"], status["sequence"]) == ("last_known_good", 1)
    assert await harness.decide(second) == 200

    await harness.restart_replica(replica)
    record = await harness.publish(replica)
    # The sidecars' retry back-off is capped at 10 s (HttpSource), hence the bound.
    await harness.wait_until("both sidecars on the new bundle",
                             lambda: harness.all_on(record["sequence"]), within=15)
    for sidecar in (first, second):
        assert await _state_is(harness, sidecar, "fresh")


async def test_an_unconfirmed_sidecar_turns_stale_and_fails_closed(
        harness: FleetHarness) -> None:
    """Past max_bundle_age without the control plane: stale, not ready, decisions refused."""
    # Long-polls end every second, so a reachable control plane confirms the bundle in time.
    replica = await harness.start_replica("a", extra=["--max-wait-seconds", "1"])
    await harness.publish(replica)
    sidecar = await harness.start_sidecar(
        "s1", replica, extra=["--max-bundle-age", "3", "--stale-action", "fail_closed"])
    await asyncio.sleep(4.0)
    assert await _state_is(harness, sidecar, "fresh")
    await harness.kill(replica)
    await harness.wait_until("stale", lambda: _state_is(harness, sidecar, "stale"), within=6)
    assert await harness.decide(sidecar) == 503
    status = await harness.status(sidecar)
    assert status["ready"] is False
