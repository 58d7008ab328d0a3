"""Fixtures shared by every test directory: the session's PostgreSQL server and a fresh database.

One session-scoped server for the whole run, so a throwaway cluster (started when no server
answers, see tests/postgres.py) is started once, not once per directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
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
