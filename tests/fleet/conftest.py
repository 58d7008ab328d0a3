"""Fixtures of the fleet tests: a real PostgreSQL database per test and a harness that runs
control-plane replicas and sidecars as real `pdp` processes (see fleet_support)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The process helpers live in tests/control; test directories are not packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "control"))

from control_support import make_keys
from fleet_support import FleetHarness


@pytest.fixture
async def harness(database_url: str, tmp_path: Path) -> AsyncIterator[FleetHarness]:
    """Starts replicas and sidecars on demand; stops every process it started afterwards."""
    fleet = FleetHarness(tmp_path, database_url, make_keys(tmp_path / "keys"))
    try:
        yield fleet
    finally:
        await fleet.close()
