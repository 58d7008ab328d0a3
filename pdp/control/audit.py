"""The audit log: one row per accepted write, written in the write's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class AuditEntry:
    """One audited write."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The admin API's shape of an audit row."""
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor,
                "action": self.action, "target": self.target, "details": self.details}


async def record(conn: asyncpg.Connection, *, actor: str, action: str, target: str,
                 details: dict[str, Any] | None = None) -> None:
    """Add an audit row inside the caller's transaction, so it commits (or not) with the write.

    Stamped when the row is written, not with the column default ``now()`` (the transaction's
    start): a publish that waited for the publish lock would otherwise be dated before the one it
    waited for, and rows would not read in the order their ids give.
    """
    await conn.execute(
        "INSERT INTO audit_log (actor, action, target, details, at)"
        " VALUES ($1, $2, $3, $4, clock_timestamp())",
        actor, action, target, details or {},
    )


async def recent(pool: asyncpg.Pool, *, limit: int = 100) -> list[AuditEntry]:
    """The newest audit rows, newest first."""
    rows = await pool.fetch(
        "SELECT id, at, actor, action, target, details FROM audit_log ORDER BY id DESC LIMIT $1",
        limit,
    )
    return [AuditEntry(id=r["id"], at=r["at"], actor=r["actor"], action=r["action"],
                       target=r["target"], details=r["details"]) for r in rows]
