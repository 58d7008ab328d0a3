"""Several `pdp run` workers on one pod: `--reuse-port` lets them share the HTTP and gRPC ports.

Each worker is a full sidecar (its own engine, bundle watch and metrics); the kernel spreads new
connections between them (SO_REUSEPORT), so one worker can be restarted while the others serve.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from grpc import aio
from ports import free_port
from test_process_support import CHECK_ACCESS_INPUT, BundleFactory, SidecarProcess

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp._proto.policyengine.v1 import policy_engine_pb2_grpc as pb_grpc

CHECK_ACCESS = "/v1/data/policyengine/check_access"


def worker_args(bundles: BundleFactory, http_port: int, grpc_port: int, *extra: str) -> list[str]:
    path = bundles.directory / "bundle.tar.gz"
    if not path.exists():
        path = bundles.write(1)
    return ["--bundle", str(path), "--verification-key", str(bundles.key.public),
            "--http-addr", f"127.0.0.1:{http_port}", "--grpc-addr", f"127.0.0.1:{grpc_port}",
            *extra]


async def instance_on_new_connection(url: str) -> str:
    """The instance id of whichever worker accepts a brand-new connection to ``url``."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as answer:
        assert answer.status == 200
        return str((await answer.json())["result"]["instance_id"])


async def test_reuse_port_workers_share_both_ports_and_survive_one_stopping(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession
) -> None:
    """Two workers bind the same ports; connections reach both; one stops, the other serves."""
    http_port, grpc_port = free_port(), free_port()
    first: SidecarProcess = spawn(*worker_args(bundles, http_port, grpc_port, "--reuse-port",
                                               "--instance-id", "worker-a"))
    await first.wait_ready(http)
    second: SidecarProcess = spawn(*worker_args(bundles, http_port, grpc_port, "--reuse-port",
                                                "--instance-id", "worker-b"))
    await second.wait_ready(http)
    assert (first.http_port, first.grpc_port) == (second.http_port, second.grpc_port)

    status_url = f"http://127.0.0.1:{http_port}/v1/status"
    seen = {await instance_on_new_connection(status_url) for _ in range(40)}
    assert seen == {"worker-a", "worker-b"}

    assert first.stop() == 0
    request = pb.CheckAccessRequest(**CHECK_ACCESS_INPUT)
    async with aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        answer = await pb_grpc.PolicyEngineServiceStub(channel).CheckAccess(request, timeout=10)
    assert answer.allowed
    for _ in range(10):
        assert await instance_on_new_connection(status_url) == "worker-b"


async def test_without_reuse_port_a_second_worker_is_refused_with_a_clear_error(
    spawn: Any, bundles: BundleFactory, http: aiohttp.ClientSession
) -> None:
    """The default stays exclusive: a port already served makes the second process exit 1."""
    http_port, grpc_port = free_port(), free_port()
    first: SidecarProcess = spawn(*worker_args(bundles, http_port, grpc_port))
    await first.wait_ready(http)
    second: SidecarProcess = spawn(*worker_args(bundles, http_port, grpc_port))
    assert second.proc.wait(30) != 0
    assert "cannot listen" in second.stderr()
