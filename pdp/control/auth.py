"""Bearer tokens, roles and the permission each operation needs (DESIGN §8.3).

A token is 32 random bytes (``secrets.token_urlsafe``) behind a ``pdp_`` prefix. Only its SHA-256 is
stored: with 256 bits of entropy a fast hash is as safe as a slow one (nobody can enumerate the
input space), and it lets a token be looked up by an indexed equality instead of checking every row
with argon2 on every request.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pdp.control.errors import AuthenticationError, NotFoundError, PermissionDeniedError

TOKEN_PREFIX = "pdp_"
# RFC 6750 b64token: what a bearer token may be made of (ours are "pdp_" + URL-safe base64).
# The same pattern as pdp.runtime.credentials', written again: importing it from there would
# load the whole runtime package into `create-token` and the admin paths (~0.2 s).
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class Role(enum.StrEnum):
    """What a token may do; see ``PERMISSIONS``."""

    ADMIN = "admin"
    EDITOR = "editor"
    PUBLISHER = "publisher"
    VIEWER = "viewer"
    SIDECAR = "sidecar"


class Permission(enum.StrEnum):
    """An operation class; every API operation needs exactly one."""

    READ = "read"                 # policies, data, tests, history, bundles, audit
    EDIT = "edit"                 # policies, data, tests
    EVALUATE = "evaluate"         # evaluate or validate against the unpublished draft
    PUBLISH = "publish"           # publish, rollback
    DOWNLOAD = "download"         # GET /bundles/main
    DECIDE = "decide"             # gRPC decisions on the latest published bundle
    REPORT = "report"             # sidecar status and decision-log intake
    MANAGE_TOKENS = "manage_tokens"


_EVERYONE = frozenset(Role)

PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.READ: frozenset({Role.ADMIN, Role.EDITOR, Role.PUBLISHER, Role.VIEWER}),
    Permission.EDIT: frozenset({Role.ADMIN, Role.EDITOR}),
    Permission.EVALUATE: frozenset({Role.ADMIN, Role.EDITOR}),
    Permission.PUBLISH: frozenset({Role.ADMIN, Role.PUBLISHER}),
    Permission.DOWNLOAD: _EVERYONE,
    Permission.DECIDE: _EVERYONE,
    Permission.REPORT: frozenset({Role.ADMIN, Role.SIDECAR}),
    Permission.MANAGE_TOKENS: frozenset({Role.ADMIN}),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    token_id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """How the caller appears in audit rows and history."""
        return f"{self.name} ({self.role})"

    def require(self, permission: Permission) -> None:
        """Raise PermissionDeniedError unless this caller's role grants `permission`."""
        if self.role not in PERMISSIONS[permission]:
            raise PermissionDeniedError(
                f"role {self.role!s} may not {permission.value.replace('_', ' ')}"
            )


# The actor of writes made by the control plane itself (seeding, create-token on the command line).
SYSTEM_ACTOR = "pdp-control (system)"


@dataclass(frozen=True)
class TokenRecord:
    """A stored token as listed to admins (never its value)."""

    id: int
    name: str
    role: Role
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of the admin API."""
        return {
            "id": self.id, "name": self.name, "role": self.role.value,
            "created_at": self.created_at.isoformat(), "created_by": self.created_by,
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def hash_token(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_role(value: str) -> Role:
    """The Role named `value`; ValueError listing the roles otherwise."""
    try:
        return Role(value)
    except ValueError:
        raise ValueError(
            f"unknown role {value!r}; expected one of {', '.join(r.value for r in Role)}"
        ) from None


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header; AuthenticationError if absent."""
    if not header:
        raise AuthenticationError("missing bearer token (Authorization: Bearer <token>)")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _B64TOKEN.fullmatch(token):
        # RFC 6750's token characters only: a byte that is not UTF-8 reached the hash as a
        # lone surrogate and failed there, a 500 on every authenticated route.
        raise AuthenticationError("the Authorization header is not 'Bearer <token>'")
    return token


class TokenStore:
    """Tokens in the ``api_tokens`` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def authenticate(self, token: str) -> Principal:
        """The principal holding `token`; AuthenticationError if it is unknown or revoked."""
        row = await self._pool.fetchrow(
            "SELECT id, name, role, revoked_at FROM api_tokens WHERE token_hash = $1",
            hash_token(token),
        )
        if row is None:
            raise AuthenticationError("unknown bearer token")
        if row["revoked_at"] is not None:
            raise AuthenticationError("the bearer token has been revoked")
        return Principal(token_id=row["id"], name=row["name"], role=Role(row["role"]))

    async def create(self, conn: asyncpg.Connection, *, name: str, role: Role,
                     created_by: str) -> tuple[str, TokenRecord]:
        """Create a token inside the caller's transaction; return its value (shown once) and row."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = await conn.fetchrow(
            "INSERT INTO api_tokens (name, role, token_hash, created_by) VALUES ($1, $2, $3, $4)"
            " RETURNING id, name, role, created_at, created_by, revoked_at",
            name, role.value, hash_token(token), created_by,
        )
        return token, _record(row)

    async def all(self) -> list[TokenRecord]:
        """Every token, oldest first."""
        rows = await self._pool.fetch(
            "SELECT id, name, role, created_at, created_by, revoked_at FROM api_tokens ORDER BY id"
        )
        return [_record(row) for row in rows]

    async def revoke(self, conn: asyncpg.Connection,
                     token_id: int) -> tuple[TokenRecord, bool]:
        """Revoke a token inside the caller's transaction (idempotent): the token and whether
        this call revoked it (False when it already was); NotFoundError if unknown."""
        # now() is this transaction's time, so only a token revoked by this UPDATE carries it.
        row = await conn.fetchrow(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1"
            " RETURNING id, name, role, created_at, created_by, revoked_at,"
            " revoked_at = now() AS revoked_now",
            token_id,
        )
        if row is None:
            raise NotFoundError(f"no token with id {token_id}")
        return _record(row), bool(row["revoked_now"])


def _record(row: asyncpg.Record) -> TokenRecord:
    return TokenRecord(
        id=row["id"], name=row["name"], role=Role(row["role"]), created_at=row["created_at"],
        created_by=row["created_by"], revoked_at=row["revoked_at"],
    )
