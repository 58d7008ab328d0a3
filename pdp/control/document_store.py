"""Named JSON documents: bundle data (``data_documents``) and bundle tests (``bundle_tests``).

A data document at path ``a/b`` is placed at ``data.a.b`` in the bundle (OPA-style); a test document
named ``n`` becomes ``tests/n.json``. Both tables have the same shape, so one class serves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pdp.control.errors import NotFoundError, RequestError, VersionConflictError
from pdp.core import FieldError

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
MAX_DEPTH = 8


@dataclass(frozen=True)
class StoredDocument:
    """A document with its version and last change."""

    path: str
    document: Any
    version: int
    updated_at: datetime
    updated_by: str

    def to_json(self) -> dict[str, Any]:
        """The admin API's shape of a document."""
        return {"path": self.path, "document": self.document, "version": self.version,
                "updated_at": self.updated_at.isoformat(), "updated_by": self.updated_by}


def _record(row: asyncpg.Record) -> StoredDocument:
    return StoredDocument(path=row["path"], document=row["document"], version=row["version"],
                          updated_at=row["updated_at"], updated_by=row["updated_by"])


class DocumentStore:
    """Reads and transactional writes of one document table."""

    def __init__(self, pool: asyncpg.Pool, table: str, *, nested: bool) -> None:
        if table not in {"data_documents", "bundle_tests"}:
            raise ValueError(f"not a document table: {table}")
        self._pool = pool
        self._table = table
        self._nested = nested

    def check_path(self, path: str) -> str:
        """`path` if it is a valid document path; RequestError naming it otherwise."""
        segments = path.split("/")
        limit = MAX_DEPTH if self._nested else 1
        if len(segments) > limit or not all(_SEGMENT.match(s) for s in segments):
            shape = "segments of letters, digits, '_', '-', '.' joined by '/'" if self._nested \
                else "letters, digits, '_', '-', '.'"
            message = f"invalid document path {path!r}: expected {shape}"
            raise RequestError(message, [FieldError("path", message)])
        return path

    async def all(self) -> list[StoredDocument]:
        """Every document, in path order."""
        rows = await self._pool.fetch(f"SELECT * FROM {self._table} ORDER BY path")
        return [_record(row) for row in rows]

    async def get(self, path: str) -> StoredDocument:
        """The document at `path`; NotFoundError if there is none."""
        row = await self._pool.fetchrow(f"SELECT * FROM {self._table} WHERE path = $1", path)
        if row is None:
            raise NotFoundError(f"no document at {path!r}")
        return _record(row)

    async def put(self, conn: asyncpg.Connection, path: str, document: Any,
                  expected_version: int | None, actor: str) -> StoredDocument:
        """Create or replace the document at `path` inside the caller's transaction."""
        self.check_path(path)
        if self._nested:
            # Two overlapping paths written at once would each pass the other's overlap check
            # under READ COMMITTED; one lock per table makes the check and the insert one step.
            await self._lock(conn)
            await self._refuse_overlap(conn, path)
        current = await conn.fetchval(
            f"SELECT version FROM {self._table} WHERE path = $1 FOR UPDATE", path
        )
        if expected_version is not None and expected_version != (current or 0):
            raise VersionConflictError(
                f"document {path!r} is at version {current or 0}, not {expected_version}",
                current_version=int(current or 0),
            )
        row = await conn.fetchrow(
            f"INSERT INTO {self._table} (path, document, version, updated_by)"
            " VALUES ($1, $2, 1, $3) ON CONFLICT (path) DO UPDATE SET document = $2,"
            f" version = {self._table}.version + 1, updated_at = now(), updated_by = $3"
            " RETURNING *",
            path, document, actor,
        )
        return _record(row)

    async def delete(self, conn: asyncpg.Connection, path: str,
                     expected_version: int | None = None) -> None:
        """Delete the document at `path` inside the caller's transaction; VersionConflictError
        if `expected_version` is not its current version."""
        if self._nested:
            # The same lock as put: the caller checks what is left, and a write landing beside
            # this delete (a user given a role this delete removes) must not pass that check.
            await self._lock(conn)
        current = await conn.fetchval(
            f"DELETE FROM {self._table} WHERE path = $1 RETURNING version", path
        )
        if current is None:
            raise NotFoundError(f"no document at {path!r}")
        if expected_version is not None and expected_version != current:
            # The caller's transaction rolls the delete back.
            raise VersionConflictError(
                f"document {path!r} is at version {current}, not {expected_version}",
                current_version=int(current),
            )

    async def all_documents(self, conn: asyncpg.Connection) -> dict[str, Any]:
        """Every document by path, read on the caller's connection (a publish's snapshot)."""
        rows = await conn.fetch(f"SELECT path, document FROM {self._table} ORDER BY path")
        return {row["path"]: row["document"] for row in rows}

    async def _lock(self, conn: asyncpg.Connection) -> None:
        # Released when the caller's transaction ends.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._table)

    async def _refuse_overlap(self, conn: asyncpg.Connection, path: str) -> None:
        # `a` and `a/b` would both claim data.a.b; refuse rather than pick a winner.
        clash = await conn.fetchval(
            f"SELECT path FROM {self._table} WHERE path <> $1"
            " AND (starts_with($1, path || '/') OR starts_with(path, $1 || '/')) LIMIT 1",
            path,
        )
        if clash is not None:
            message = f"{path!r} overlaps the existing document {clash!r}"
            raise RequestError(message, [FieldError("path", message)])


def nest_documents(documents: dict[str, Any]) -> dict[str, Any]:
    """Bundle data from documents by path: ``{"a/b": 1}`` becomes ``{"a": {"b": 1}}``.

    Raises RequestError naming both paths if two documents overlap (``a`` and ``a/b``): writes
    refuse that, but a database written before they did may still hold such a pair.
    """
    data: dict[str, Any] = {}
    # Sorted, a document comes before every path below it, so a clash is always found as a
    # parent path that is itself a document.
    for path, document in sorted(documents.items()):
        *parents, leaf = path.split("/")
        node = data
        for depth, segment in enumerate(parents, start=1):
            parent = "/".join(parents[:depth])
            if parent in documents:
                message = (f"data documents {parent!r} and {path!r} overlap; delete one of "
                           "them to publish or evaluate the draft")
                raise RequestError(message, [FieldError("path", message)])
            node = node.setdefault(segment, {})
        node[leaf] = document
    return data
