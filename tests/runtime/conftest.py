"""Fixtures of the runtime tests: keys, bundles, an engine with an injected clock and registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from runtime_support import EngineFactory, FakeClock, Signing

from pdp.runtime import Engine, RuntimeConfig


@pytest.fixture
def signing(tmp_path: Path) -> Signing:
    """A fresh key pair and a builder of bundles signed with it."""
    return Signing(tmp_path / "keys")


@pytest.fixture
def clock() -> FakeClock:
    """A wall clock the test controls."""
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    """A metrics registry of the test's own."""
    return CollectorRegistry()



# Overrides given to the Engine itself rather than to its RuntimeConfig.
_ENGINE_ARGUMENTS = ("clock", "monotonic", "new_id", "decision_stream", "keyring", "limits")


@pytest.fixture
async def make_engine(
    signing: Signing, clock: FakeClock, registry: CollectorRegistry, tmp_path: Path
) -> AsyncIterator[EngineFactory]:
    """Build engines trusting ``signing``'s key, with the fake clock; stops them afterwards."""
    engines: list[Engine] = []

    def build(registry: CollectorRegistry = registry, sources: Any = (), **overrides: Any
              ) -> Engine:
        injected = {k: overrides.pop(k) for k in _ENGINE_ARGUMENTS if k in overrides}
        settings: dict[str, Any] = {"verification_keys": (signing.public_key,),
                                    "persist_dir": tmp_path / "persist"}
        settings.update(overrides)
        engine = Engine(RuntimeConfig(**settings), registry=registry, sources=sources,
                        clock=injected.pop("clock", clock), **injected)
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        await engine.stop()
