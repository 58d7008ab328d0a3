"""Shared parts of the gRPC tests (no tests here): a real engine, a real server, real channels.

The engine is ``pdp.runtime.Engine`` with the built-in marketplace bundle, built and signed with
``pdp.bundle`` into a temporary directory; the server is ``SidecarGrpcServer`` on 127.0.0.1 with an
ephemeral port; clients use ordinary ``grpc.aio`` channels and the generated stubs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from grpc import aio
from prometheus_client import CollectorRegistry, Counter

from pdp.bundle import JwsSigner, build_bundle, generate_private_key, public_pem
from pdp.runtime import BundleUpdate, DecisionLogConfig, Engine, RuntimeConfig
from pdp.sidecar.grpc_server import SidecarGrpcServer

REPO = Path(__file__).resolve().parents[2]
MARKETPLACE = REPO / "bundles" / "marketplace"
REVISION = "rev-7"
KEY_ID = "test-key"


def example(name: str) -> dict[str, Any]:
    """One of the marketplace bundle's example inputs."""
    loaded: dict[str, Any] = json.loads((MARKETPLACE / "examples" / f"{name}.json").read_text())
    return loaded


@dataclass
class EngineUnderTest:
    """A real sidecar engine plus the signer of the one key it trusts."""

    engine: Engine
    signer: JwsSigner
    registry: CollectorRegistry

    async def activate_marketplace(self, *, revision: str = REVISION, sequence: int = 7) -> None:
        """Build, sign and activate the marketplace bundle."""
        data = build_bundle(MARKETPLACE, signer=self.signer, revision=revision, sequence=sequence)
        await self.engine.activate(BundleUpdate(data=data, source="test"))


def engine_without_bundle(tmp_path: Path, *, decision_stream: TextIO | None = None
                          ) -> EngineUnderTest:
    """A sidecar engine that trusts a freshly generated key and has no bundle yet.

    With ``decision_stream`` its decisions are logged there (the ``stdout`` sink).
    """
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    key = generate_private_key()
    (keys / f"{KEY_ID}.pem").write_bytes(public_pem(key))
    registry = CollectorRegistry()
    config = RuntimeConfig(
        verification_keys=(keys,),
        decision_log=DecisionLogConfig(sink="stdout" if decision_stream else "none"),
    )
    engine = Engine(config, registry=registry, sources=[], decision_stream=decision_stream)
    return EngineUnderTest(engine, JwsSigner(key, KEY_ID), registry)


@contextlib.asynccontextmanager
async def serving(
    engine: Engine, *, request_counter: Counter | None = None, health_interval: float = 0.05
) -> AsyncIterator[tuple[SidecarGrpcServer, aio.Channel]]:
    """Run a sidecar gRPC server for ``engine`` and yield it with a channel connected to it."""
    server = SidecarGrpcServer(
        engine, "127.0.0.1:0", request_counter=request_counter, health_interval=health_interval
    )
    port = await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, channel
    finally:
        await channel.close()
        await server.stop(grace=0)
