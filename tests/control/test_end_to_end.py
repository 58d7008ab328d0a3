"""End to end with real processes: one `pdp control`, two `pdp run --bundle-url` sidecars.

An admin applies a policy with `pdp admin` and publishes; both sidecars, long-polling the bundle
server with a sidecar token, decide with it within a second. Deleting it and publishing again makes
it disappear from both just as fast.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from control_support import MARKETPLACE, SigningKeys
from ports import free_port
from process_support import RunningProcess, run_pdp, start, wait_until_ready

pytestmark = pytest.mark.slow

PROBE_POLICY = """\
id: e2e-probe
name: E2E probe
type: security
severity: high
when: {field: service_id, op: eq, value: svc-e2e}
rule: {require_authentication: true}
"""


def probe_listing() -> dict[str, Any]:
    """A listing every default policy accepts, which only the probe policy refuses."""
    listing: dict[str, Any] = json.loads(
        (MARKETPLACE / "examples" / "compliant-listing.json").read_text())
    listing["service_id"] = "svc-e2e"
    listing["endpoint"]["authentication"] = "none"
    return listing


@dataclass
class Fleet:
    """The processes of one scenario."""

    workdir: Path
    admin_args: list[str]
    sidecar_urls: list[str]


async def _token(database_url: str, role: str, path: Path) -> None:
    code, out, err = await run_pdp("control", "create-token", "--database-url", database_url,
                                   "--role", role, cwd=path.parent)
    assert code == 0, err
    await asyncio.to_thread(path.write_text, out.strip())


@pytest.fixture
async def fleet(database_url: str, keys: SigningKeys, tmp_path: Path) -> AsyncIterator[Fleet]:
    """A control plane with one published bundle and two sidecars pulling from it, all ready."""
    http = f"127.0.0.1:{free_port()}"
    processes: list[RunningProcess] = []
    try:
        control = await start(["control", "--database-url", database_url, "--signing-key",
                               str(keys.private), "--key-id", keys.key_id, "--http-addr", http,
                               "--grpc-addr", f"127.0.0.1:{free_port()}"],
                              tmp_path / "control.log", cwd=tmp_path)
        processes.append(control)
        await wait_until_ready(f"http://{http}/health/ready", control)
        await _token(database_url, "admin", tmp_path / "admin.token")
        await _token(database_url, "sidecar", tmp_path / "sidecar.token")
        admin_args = ["admin", "--server", f"http://{http}", "--token-file",
                      str(tmp_path / "admin.token")]
        code, _, err = await run_pdp(*admin_args, "publish", cwd=tmp_path)
        assert code == 0, err
        urls = []
        for index in range(2):
            port = free_port()
            sidecar = await start([
                "run", "--bundle-url", f"http://{http}/bundles/main",
                "--bundle-token-file", str(tmp_path / "sidecar.token"),
                "--verification-key", str(keys.public), "--http-addr", f"127.0.0.1:{port}",
                "--grpc-addr", f"127.0.0.1:{free_port()}",
                "--persist-dir", str(tmp_path / f"persist-{index}"),
            ], tmp_path / f"sidecar-{index}.log", cwd=tmp_path)
            processes.append(sidecar)
            urls.append(f"http://127.0.0.1:{port}")
        for url, sidecar in zip(urls, processes[1:], strict=True):
            await wait_until_ready(f"{url}/health/ready", sidecar)
        yield Fleet(tmp_path, admin_args, urls)
    finally:
        for process in reversed(processes):
            await process.stop()


async def _violations(session: aiohttp.ClientSession, url: str) -> set[str]:
    async with session.post(f"{url}/v1/data/policyengine/validate_service",
                            json={"input": probe_listing()}) as answer:
        assert answer.status == 200, await answer.text()
        result = (await answer.json())["result"]
    return {v["policy_id"] for v in result["violations"]}


async def _seconds_until(fleet: Fleet, expected: set[str], *, limit: float = 5.0) -> float:
    """Seconds until every sidecar reports `expected` violations for the probe listing."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        pending = set(fleet.sidecar_urls)
        while pending and time.monotonic() - started < limit:
            for url in list(pending):
                if await _violations(session, url) == expected:
                    pending.discard(url)
            await asyncio.sleep(0.02)
    assert not pending, f"{sorted(pending)} still not deciding with {expected} after {limit}s"
    return time.monotonic() - started


async def test_a_published_policy_reaches_both_sidecars_within_a_second(fleet: Fleet) -> None:
    """apply → publish → both sidecars decide with it; delete → publish → gone from both."""
    assert await _seconds_until(fleet, set()) < 1.0
    policy = fleet.workdir / "probe.yaml"
    await asyncio.to_thread(policy.write_text, PROBE_POLICY)
    code, _, err = await run_pdp(*fleet.admin_args, "policy", "apply", "-f", str(policy),
                                 cwd=fleet.workdir)
    assert code == 0, err
    code, _, err = await run_pdp(*fleet.admin_args, "publish", cwd=fleet.workdir)
    assert code == 0, err
    arrived = await _seconds_until(fleet, {"e2e-probe"})
    assert arrived < 1.0, f"policy reached both sidecars after {arrived:.2f}s"

    code, _, err = await run_pdp(*fleet.admin_args, "policy", "delete", "e2e-probe",
                                 cwd=fleet.workdir)
    assert code == 0, err
    code, _, err = await run_pdp(*fleet.admin_args, "publish", cwd=fleet.workdir)
    assert code == 0, err
    gone = await _seconds_until(fleet, set())
    assert gone < 1.0, f"deletion reached both sidecars after {gone:.2f}s"
