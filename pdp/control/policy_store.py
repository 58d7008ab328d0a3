"""Policies in PostgreSQL: the current spec of each, and every version it went through.

Methods that write take the caller's connection, so the service layer wraps a write, its history
row and its audit row in one transaction. Specs arrive here already validated by the core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pdp.control.errors import AlreadyExistsError, NotFoundError, VersionConflictError
from pdp.control.listing import PolicyQuery, order_sql, where_sql


@dataclass(frozen=True)
class PolicyRecord:
    """A live policy: its document (``version`` included) and when it was created and changed."""

    id: str
    version: int
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def document(self) -> dict[str, Any]:
        """The policy document as a client sees it, with its current version."""
        return {**self.spec, "version": self.version}

    def to_json(self) -> dict[str, Any]:
        """The admin API's shape of a policy."""
        return {
            "policy": self.document(), "version": self.version,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class PolicyVersion:
    """One entry of a policy's history."""

    version: int
    change: str
    spec: dict[str, Any] | None
    actor: str
    changed_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The admin API's shape of a history entry."""
        return {"version": self.version, "change": self.change, "actor": self.actor,
                "changed_at": self.changed_at.isoformat(), "policy": self.spec}


_COLUMNS = "id, version, spec, created_at, updated_at"

# DESIGN §4's slug. An id of any other shape cannot exist, so it is not even looked up (and a NUL
# in a URL never reaches PostgreSQL, which would refuse it as a server error).
_POLICY_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def _existing_id(policy_id: str) -> str:
    if not _POLICY_ID.fullmatch(policy_id):
        raise NotFoundError(f"no policy with id {policy_id!r} (ids are lower-case slugs)")
    return policy_id


def _record(row: asyncpg.Record) -> PolicyRecord:
    return PolicyRecord(id=row["id"], version=row["version"], spec=row["spec"],
                        created_at=row["created_at"], updated_at=row["updated_at"])


def _stored_spec(spec: dict[str, Any]) -> dict[str, Any]:
    # The version lives in its own column; a copy inside the spec could only disagree with it.
    return {k: v for k, v in spec.items() if k != "version"}


class PolicyStore:
    """Reads and transactional writes of the ``policies`` and ``policy_versions`` tables."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, query: PolicyQuery) -> tuple[list[PolicyRecord], int]:
        """One page of live policies matching `query`, and how many match in all."""
        where, args = where_sql(query)
        page = f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            total = await conn.fetchval(f"SELECT count(*) FROM policies WHERE {where}", *args)
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM policies WHERE {where} ORDER BY {order_sql(query)} {page}",
                *args, query.page_size, query.offset,
            )
        return [_record(row) for row in rows], int(total)

    async def get(self, policy_id: str) -> PolicyRecord:
        """The live policy `policy_id`; NotFoundError if there is none."""
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM policies WHERE id = $1 AND deleted_at IS NULL",
            _existing_id(policy_id),
        )
        if row is None:
            raise NotFoundError(f"no policy with id {policy_id!r}")
        return _record(row)

    async def live_specs(self, conn: asyncpg.Connection) -> list[dict[str, Any]]:
        """Every live policy document (with its version), in id order: the draft's policies."""
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM policies WHERE deleted_at IS NULL ORDER BY id"
        )
        return [_record(row).document() for row in rows]

    async def create(self, conn: asyncpg.Connection, spec: dict[str, Any],
                     actor: str) -> PolicyRecord:
        """Insert a policy at version 1 (or revive a deleted id at its next version)."""
        policy_id = spec["id"]
        existing = await conn.fetchrow(
            "SELECT version, deleted_at FROM policies WHERE id = $1 FOR UPDATE", policy_id
        )
        stored = _stored_spec(spec)
        if existing is None:
            # FOR UPDATE locks no row that does not exist yet: two creates of one new id both
            # get here, and the second waits on the first's insert. DO NOTHING makes it an
            # "already exists" then, not a unique violation answered 500.
            row = await conn.fetchrow(
                "INSERT INTO policies (id, spec, type, enabled, severity, version)"
                " VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (id) DO NOTHING"
                f" RETURNING {_COLUMNS}",
                policy_id, stored, stored["type"], stored["enabled"], stored["severity"],
            )
            if row is None:
                raise AlreadyExistsError(f"a policy with id {policy_id!r} already exists")
        elif existing["deleted_at"] is not None:
            row = await conn.fetchrow(
                "UPDATE policies SET spec = $2, type = $3, enabled = $4, severity = $5,"
                " version = version + 1, created_at = now(), updated_at = now(), deleted_at = NULL"
                f" WHERE id = $1 RETURNING {_COLUMNS}",
                policy_id, stored, stored["type"], stored["enabled"], stored["severity"],
            )
        else:
            raise AlreadyExistsError(f"a policy with id {policy_id!r} already exists")
        record = _record(row)
        await self._add_version(conn, record.id, record.version, "create", stored, actor)
        return record

    async def update(self, conn: asyncpg.Connection, spec: dict[str, Any],
                     expected_version: int | None, actor: str) -> tuple[PolicyRecord, bool]:
        """Replace a live policy's spec; VersionConflictError if `expected_version` is stale.

        Returns the record and whether anything changed: re-applying the current spec keeps the
        version, so `pdp admin policy apply` is idempotent and history holds only real changes.
        """
        policy_id = spec["id"]
        current = await self._lock_live(conn, policy_id, expected_version)
        stored = _stored_spec(spec)
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM policies WHERE id = $1", policy_id)
        if row["spec"] == stored:
            return _record(row), False
        row = await conn.fetchrow(
            "UPDATE policies SET spec = $2, type = $3, enabled = $4, severity = $5,"
            f" version = $6, updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
            policy_id, stored, stored["type"], stored["enabled"], stored["severity"], current + 1,
        )
        record = _record(row)
        await self._add_version(conn, record.id, record.version, "update", stored, actor)
        return record, True

    async def delete(self, conn: asyncpg.Connection, policy_id: str,
                     expected_version: int | None, actor: str) -> datetime:
        """Soft-delete a live policy; return when."""
        current = await self._lock_live(conn, policy_id, expected_version)
        deleted_at: datetime = await conn.fetchval(
            "UPDATE policies SET deleted_at = now(), updated_at = now(), version = $2"
            " WHERE id = $1 RETURNING deleted_at",
            policy_id, current + 1,
        )
        await self._add_version(conn, policy_id, current + 1, "delete", None, actor)
        return deleted_at

    async def history(self, policy_id: str) -> list[PolicyVersion]:
        """Every version of `policy_id`, newest first (deleted policies keep theirs)."""
        rows = await self._pool.fetch(
            "SELECT version, change, spec, actor, changed_at FROM policy_versions"
            " WHERE policy_id = $1 ORDER BY version DESC",
            _existing_id(policy_id),
        )
        if not rows:
            raise NotFoundError(f"no policy with id {policy_id!r}")
        return [PolicyVersion(version=r["version"], change=r["change"], spec=r["spec"],
                              actor=r["actor"], changed_at=r["changed_at"]) for r in rows]

    async def _lock_live(self, conn: asyncpg.Connection, policy_id: str,
                         expected_version: int | None) -> int:
        current = await conn.fetchval(
            "SELECT version FROM policies WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            _existing_id(policy_id),
        )
        if current is None:
            raise NotFoundError(f"no policy with id {policy_id!r}")
        if expected_version is not None and expected_version != current:
            raise VersionConflictError(
                f"policy {policy_id!r} is at version {current}, not {expected_version};"
                " read it again and re-apply your change",
                current_version=int(current),
            )
        return int(current)

    async def _add_version(self, conn: asyncpg.Connection, policy_id: str, version: int,
                           change: str, spec: dict[str, Any] | None, actor: str) -> None:
        await conn.execute(
            "INSERT INTO policy_versions (policy_id, version, change, spec, actor)"
            " VALUES ($1, $2, $3, $4, $5)",
            policy_id, version, change, spec, actor,
        )
