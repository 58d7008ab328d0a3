"""Fixtures of the fleet tests: a real PostgreSQL database per test and a harness that runs
control-plane replicas and sidecars as real `pdp` processes (see fleet_support)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# The shared PostgreSQL helper lives in tests/, the process helpers in tests/control; test
# directories are not packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "control"))

from control_support import make_keys
from fleet_support import FleetHarness
from postgres import PostgresServer, find_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server of this test session (see tests/postgres.py)."""
    server = find_server()
    yield server
    server.stop()


@pytest.fixture
async def database_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A fresh, empty database, dropped after the test."""
    dsn = await postgres_server.create_database()
    yield dsn
    await postgres_server.drop_database(dsn)


@pytest.fixture
async def harness(database_url: str, tmp_path: Path) -> AsyncIterator[FleetHarness]:
    """Starts replicas and sidecars on demand; stops every process it started afterwards."""
    fleet = FleetHarness(tmp_path, database_url, make_keys(tmp_path / "keys"))
    try:
        yield fleet
    finally:
        await fleet.close()
