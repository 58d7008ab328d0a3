"""Versioned SQL migrations, applied at start-up under a PostgreSQL advisory lock.

Migrations are the files ``migrations/NNNN_name.sql`` shipped in the package. Each is applied once,
in its own transaction together with its row in ``schema_migrations``, so a crash leaves it either
fully applied or not at all. Several replicas starting at once serialise on the advisory lock: the
first applies what is missing, the others then find nothing to do.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from pdp.control.errors import StoreUnavailableError

log = logging.getLogger(__name__)

# An arbitrary constant shared by every replica; "pdp\0mig" read as an integer.
MIGRATION_LOCK_ID = 0x7064700006D6967

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with pdp, in version order."""
    found: list[Migration] = []
    for entry in resources.files("pdp.control").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


async def applied_versions(conn: asyncpg.Connection) -> set[int]:
    """The versions recorded in ``schema_migrations`` (empty when the table does not exist)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM schema_migrations")
    return {int(row["version"]) for row in rows}


async def _lock(conn: asyncpg.Connection) -> None:
    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_ID):
        return
    # Held by another replica migrating, or by a session stuck with it: start-up waits as long
    # as it is held, and without this line an operator saw a replica hang, saying nothing.
    holders = await conn.fetch(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = $1 AND objid = $2 AND objsubid = 1",
        MIGRATION_LOCK_ID >> 32, MIGRATION_LOCK_ID & 0xFFFFFFFF)
    log.warning("waiting for the migration lock, held by another PostgreSQL session (pid %s)",
                ", ".join(str(row["pid"]) for row in holders) or "unknown")
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)


async def apply_migrations(conn: asyncpg.Connection) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied by this call."""
    applied_now: list[int] = []
    await _lock(conn)
    step = "the schema_migrations table"
    try:
        await conn.execute(_CREATE_TABLE)
        done = await applied_versions(conn)
        for migration in available_migrations():
            if migration.version in done:
                continue
            step = f"migration {migration.version:04d}_{migration.name}"
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version, migration.name,
                )
            applied_now.append(migration.version)
    except asyncpg.PostgresError as exc:
        # The database refused the schema (no CREATE privilege on the schema, PostgreSQL 15's
        # default for other users; a table of another application in the way): an operator's
        # problem to name, not a traceback.
        raise StoreUnavailableError(
            f"PostgreSQL refused {step} (nothing of it was applied): {exc}") from exc
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now


async def migrations_complete(conn: asyncpg.Connection) -> bool:
    """True when every shipped migration is recorded as applied (readiness)."""
    wanted = {m.version for m in available_migrations()}
    return wanted <= await applied_versions(conn)
