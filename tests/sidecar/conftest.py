"""Fixtures of the sidecar HTTP and process tests; the helpers live in test_process_support."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from test_process_support import KEY_ID, BundleFactory, SidecarProcess, SigningKey

from pdp.bundle import JwsSigner, load_private_key, write_key_pair
from pdp.runtime import Engine, RuntimeConfig


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    """One Ed25519 key pair for the whole session (key generation is the slow part)."""
    directory = tmp_path_factory.mktemp("keys")
    private, public = write_key_pair(directory, KEY_ID)
    return SigningKey(private, public, JwsSigner(load_private_key(private), KEY_ID))


@pytest.fixture
def bundles(signing_key: SigningKey, tmp_path: Path) -> BundleFactory:
    """A bundle factory writing into this test's temporary directory."""
    directory = tmp_path / "bundles"
    directory.mkdir()
    return BundleFactory(signing_key, directory)


@pytest.fixture
async def engine(signing_key: SigningKey) -> AsyncIterator[Engine]:
    """A started engine with no source and no bundle yet (tests activate what they need)."""
    config = RuntimeConfig(verification_keys=(signing_key.public,))
    engine = Engine(config, registry=CollectorRegistry())
    await engine.start()
    yield engine
    await engine.stop()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start `pdp run` processes in ``tmp_path``; every one is killed at teardown."""
    started: list[SidecarProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> SidecarProcess:
        process = SidecarProcess(list(args), cwd=tmp_path, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for talking to sidecar processes."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
