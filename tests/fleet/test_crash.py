"""SIGKILL a control-plane replica in the middle of a publish (DESIGN §13).

``PDP_TEST_PUBLISH_PAUSE`` (test-only, see pdp.control.publish_pause) makes replica A sleep at a
named point of its publish; the test kills it there. Whatever the point, nobody is ever served a
partial bundle: the database holds either no new bundle or a complete, verifiable one; replica B
and its sidecar agree with it; A restarts cleanly and the next publish works.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import pytest
from fleet_support import FleetHarness
from process_support import start

from pdp.bundle import Keyring, load_bundle

pytestmark = pytest.mark.slow

# What exists after the kill: before the commit, nothing; after it, the complete bundle 2.
EXPECTED_LATEST = {"after_lock": 1, "before_commit": 1, "after_commit": 2}


async def _served(harness: FleetHarness, url: str) -> bytes:
    token = harness.sidecar_token.read_text().strip()
    async with aiohttp.ClientSession() as session, session.get(
            f"{url}/bundles/main", headers={"Authorization": f"Bearer {token}"}) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.read()


@pytest.mark.parametrize("point", sorted(EXPECTED_LATEST))
async def test_a_replica_killed_mid_publish_leaves_the_old_bundle_or_the_whole_new_one(
        harness: FleetHarness, point: str) -> None:
    """No partial bundle is stored or served; the restart is clean; the next publish works."""
    a = await harness.start_replica("a", env={"PDP_TEST_PUBLISH_PAUSE": f"{point}:60"})
    b = await harness.start_replica("b")
    await harness.publish(b)
    sidecar = await harness.start_sidecar("s1", b)
    publishing = await start(["admin", "--server", a.url, "--token-file",
                              str(harness.admin_token), "publish"],
                             harness.workdir / "publish.log", cwd=harness.workdir)
    assert a.process is not None
    await harness.wait_until(f"replica A paused at {point}",
                             lambda: _paused(a.process.output() if a.process else ""), within=20)
    await harness.kill(a)
    assert await publishing.stop() != 0, "the interrupted publish must not report success"

    expected = EXPECTED_LATEST[point]
    conn = await asyncpg.connect(harness.database_url)
    try:
        assert await conn.fetchval("SELECT max(sequence) FROM bundles") == expected
    finally:
        await conn.close()
    await harness.wait_until(f"the sidecar on bundle {expected}",
                             lambda: harness.all_on(expected), within=5)
    keyring = Keyring.from_paths([harness.keys.public])
    served = load_bundle(await _served(harness, b.url), keyring, now=time.time())
    assert served.manifest.sequence == expected

    await harness.restart_replica(a, env={})
    assert load_bundle(await _served(harness, a.url), keyring,
                       now=time.time()).manifest.sequence == expected
    after = await harness.publish(a)
    assert after["sequence"] == expected + 1
    await harness.wait_until("the sidecar on the next publish",
                             lambda: harness.all_on(expected + 1, [sidecar]), within=1)


async def _paused(output: str) -> bool:
    await asyncio.sleep(0)
    return "test publish pause" in output
