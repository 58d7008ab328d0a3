"""Two control-plane replicas on one database, three sidecars: a publish on one replica reaches
sidecars long-polling the other within a second, and `publish --wait` watches it happen."""

from __future__ import annotations

import asyncio

import pytest
from fleet_support import FleetHarness, seconds_between

pytestmark = pytest.mark.slow


async def test_a_publish_on_replica_a_reaches_sidecars_on_replica_b_within_a_second(
        harness: FleetHarness) -> None:
    """Sidecars polling B run A's new bundle within 1 s; `publish --wait` ends with 3 of 3."""
    a = await harness.start_replica("a")
    b = await harness.start_replica("b")
    first = await harness.publish(a)
    await asyncio.gather(*(harness.start_sidecar(name, b) for name in ("s1", "s2", "s3")))

    async def all_three_reported() -> bool:
        fleet = await harness.fleet(a)
        return bool(fleet["summary"] == f"3 of 3 on revision {first['revision']}")

    await harness.wait_until("every sidecar reported to B", all_three_reported, within=15)

    code, out, err = await harness.admin(a, "publish", "--wait", "--timeout", "10")
    assert code == 0, err + harness.logs()
    lines = out.splitlines()
    assert lines[0].startswith("published bundle 2 (revision 2"), out
    assert lines[-1].startswith("converged: 3 of 3 on revision 2 in "), out
    published = (await harness.bundle(a, 2))["published_at"]
    for sidecar in harness.sidecars:
        status = await harness.status(sidecar)
        assert (status["sequence"], status["state"]) == (2, "fresh")
        lag = seconds_between(published, status["bundle"]["activated_at"])
        assert lag < 1.0, f"{sidecar.name} activated bundle 2 {lag:.2f} s after its publish"
