"""Published bundles in PostgreSQL: the signed bytes exactly as served, and their provenance."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pdp.control.database import CONNECTION_ERRORS
from pdp.control.errors import NotFoundError

# Every replica takes this transaction-scoped advisory lock to publish, so sequences never race.
PUBLISH_LOCK_ID = 0x7064700007075626

# The NOTIFY channel a publish signals on; the payload is the new sequence.
BUNDLE_CHANNEL = "pdp_bundles"


@dataclass(frozen=True)
class BundleRecord:
    """One published bundle; ``content`` is empty when listed without the bytes."""

    sequence: int
    revision: str
    sha256: str
    manifest: dict[str, Any]
    key_id: str
    published_by: str
    published_at: datetime
    notes: str
    rollback_of: int | None
    content: bytes = b""

    @property
    def etag(self) -> str:
        """The HTTP entity tag of the bundle: its quoted SHA-256."""
        return f'"{self.sha256}"'

    def to_json(self) -> dict[str, Any]:
        """The admin API's shape of a bundle (without its bytes)."""
        return {
            "sequence": self.sequence, "revision": self.revision, "sha256": self.sha256,
            "manifest": self.manifest, "key_id": self.key_id, "published_by": self.published_by,
            "published_at": self.published_at.isoformat(), "notes": self.notes,
            "rollback_of": self.rollback_of,
        }


_META = (
    "sequence, revision, sha256, manifest, key_id, published_by, published_at, notes, rollback_of"
)


def _record(row: asyncpg.Record) -> BundleRecord:
    content = row.get("content", b"")
    return BundleRecord(
        sequence=row["sequence"], revision=row["revision"], sha256=row["sha256"],
        manifest=row["manifest"], key_id=row["key_id"], published_by=row["published_by"],
        published_at=row["published_at"], notes=row["notes"], rollback_of=row["rollback_of"],
        content=bytes(content),
    )


class BundleStore:
    """Reads of the ``bundles`` table, and the insert a publish makes in its transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def latest(self) -> BundleRecord | None:
        """The highest-sequence bundle with its bytes, or None before the first publish."""
        row = await self._pool.fetchrow(
            f"SELECT {_META}, content FROM bundles ORDER BY sequence DESC LIMIT 1"
        )
        return None if row is None else _record(row)

    async def latest_sequence(self) -> int:
        """The highest published sequence, 0 before the first publish."""
        value = await self._pool.fetchval("SELECT coalesce(max(sequence), 0) FROM bundles")
        return int(value)

    async def get(self, sequence: int, *, with_content: bool = False) -> BundleRecord:
        """The bundle `sequence`; NotFoundError if it was never published."""
        columns = f"{_META}, content" if with_content else _META
        row = await self._pool.fetchrow(
            f"SELECT {columns} FROM bundles WHERE sequence = $1", sequence
        )
        if row is None:
            raise NotFoundError(f"no bundle with sequence {sequence}")
        return _record(row)

    async def recent(self, *, limit: int = 50, before: int | None = None) -> list[BundleRecord]:
        """Bundles newest first, without their bytes; `before` pages backwards."""
        rows = await self._pool.fetch(
            f"SELECT {_META} FROM bundles WHERE $2::bigint IS NULL OR sequence < $2"
            " ORDER BY sequence DESC LIMIT $1",
            limit, before,
        )
        return [_record(row) for row in rows]

    @contextlib.asynccontextmanager
    async def publishing(self, conn: asyncpg.Connection) -> AsyncIterator[int]:
        """Hold the publish lock on `conn` for the block (replicas publish one at a time) and
        give the next sequence.

        A session lock, not a transaction's: the publisher reads the draft in a snapshot taken
        *after* the lock is held, then builds and signs outside any transaction (a database's
        idle-in-transaction timeout would otherwise end a long build), then inserts in a short
        transaction of its own, all under this one lock. If the process dies the session ends
        and the lock with it; if the unlock fails, the pool's reset on release unlocks all.
        """
        await conn.execute("SELECT pg_advisory_lock($1)", PUBLISH_LOCK_ID)
        try:
            value = await conn.fetchval("SELECT coalesce(max(sequence), 0) + 1 FROM bundles")
            yield int(value)
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
                await conn.execute("SELECT pg_advisory_unlock($1)", PUBLISH_LOCK_ID)

    async def insert(self, conn: asyncpg.Connection, *, sequence: int, revision: str,
                     sha256: str, manifest: dict[str, Any], content: bytes, key_id: str,
                     published_by: str, notes: str, rollback_of: int | None) -> BundleRecord:
        """Store a bundle and NOTIFY listeners; both take effect when the transaction commits.

        Call it under :meth:`publishing`. The database stamps ``published_at``: the
        column's default, ``now()``, is when the transaction began, before it waited for the
        publish lock, so a publisher that waited longest would stamp a later sequence earlier.
        ``clock_timestamp()`` is read here, with the lock held; ``greatest`` with the previous
        bundle's stamp keeps the order even if the database's clock steps back.
        """
        row = await conn.fetchrow(
            "INSERT INTO bundles (sequence, revision, sha256, manifest, content, key_id,"
            " published_by, published_at, notes, rollback_of) VALUES ($1, $2, $3, $4, $5, $6, $7,"
            " greatest(clock_timestamp(),"
            " (SELECT published_at FROM bundles ORDER BY sequence DESC LIMIT 1)), $8, $9)"
            f" RETURNING {_META}, content",
            sequence, revision, sha256, manifest, content, key_id, published_by, notes,
            rollback_of,
        )
        await conn.execute("SELECT pg_notify($1, $2)", BUNDLE_CHANNEL, str(sequence))
        return _record(row)
