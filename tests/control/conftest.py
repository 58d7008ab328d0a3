"""Fixtures of the control-plane tests: a real PostgreSQL database per test, keys, a control plane
(seeded with the marketplace bundle) served on a real socket, and one token per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from control_support import (
    MARKETPLACE,
    ApiClient,
    SigningKeys,
    create_tokens,
    make_keys,
    settings_for,
)
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from pdp.control.auth import Role
from pdp.control.http_app import make_app
from pdp.control.plane import ControlPlane, open_control_plane
from pdp.control.server import ControlServer


@pytest.fixture
def keys(tmp_path: Path) -> SigningKeys:
    """A signing key pair for the control plane."""
    return make_keys(tmp_path / "keys")


@pytest.fixture
async def plane(database_url: str, keys: SigningKeys,
                tmp_path: Path) -> AsyncIterator[ControlPlane]:
    """An open control plane on the test database, seeded, exporting bundles to tmp/published."""
    settings = settings_for(database_url, keys, bundle_dir=tmp_path / "published")
    opened = await open_control_plane(settings, seed_dir=MARKETPLACE)
    yield opened
    await opened.close()


@pytest.fixture
async def tokens(plane: ControlPlane) -> dict[Role, str]:
    """One bearer token per role."""
    return await create_tokens(plane.pool)


@pytest.fixture
async def client(plane: ControlPlane,
                 aiohttp_client: AiohttpClient) -> ApiClient:
    """The admin API on a real socket on 127.0.0.1."""
    return await aiohttp_client(make_app(plane))


@pytest.fixture
async def served(database_url: str, keys: SigningKeys) -> AsyncIterator[ControlServer]:
    """A seeded control plane served as `pdp control` serves it (not by aiohttp's test server,
    which cancels a handler whose client hangs up; the real one does not)."""
    server = ControlServer(settings_for(database_url, keys), seed_dir=MARKETPLACE,
                           registry=CollectorRegistry())
    await server.start()
    yield server
    await server.stop()
