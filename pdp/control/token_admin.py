"""Managing bearer tokens through the admin API (admin role only), and reading the audit log."""

from __future__ import annotations

import asyncpg

from pdp.control import audit
from pdp.control.auth import Permission, Principal, TokenRecord, TokenStore, parse_role
from pdp.control.errors import RequestError
from pdp.core import FieldError

MAX_NAME_LENGTH = 128


def check_token_name(name: object) -> str:
    """`name` if it is a usable token name; RequestError otherwise."""
    # Printable only: names are shown in token lists and the audit log, on people's terminals.
    if (not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH
            or not name.strip().isprintable()):
        message = f"a token name is 1-{MAX_NAME_LENGTH} printable characters"
        raise RequestError(f"invalid name: {message}", [FieldError("name", message)])
    return name.strip()


class TokenAdmin:
    """Create, list and revoke tokens; every change audited with the admin who made it."""

    def __init__(self, pool: asyncpg.Pool, tokens: TokenStore) -> None:
        self._pool = pool
        self._tokens = tokens

    async def create(self, actor: Principal, *, name: object,
                     role: object) -> tuple[str, TokenRecord]:
        """A new token (its value is returned once and never stored)."""
        actor.require(Permission.MANAGE_TOKENS)
        checked_name = check_token_name(name)
        try:
            checked_role = parse_role(role if isinstance(role, str) else repr(role))
        except ValueError as exc:
            raise RequestError(f"invalid role: {exc}", [FieldError("role", str(exc))]) from None
        async with self._pool.acquire() as conn, conn.transaction():
            token, record = await self._tokens.create(conn, name=checked_name, role=checked_role,
                                                      created_by=actor.actor)
            await audit.record(conn, actor=actor.actor, action="token.create",
                               target=str(record.id),
                               details={"name": record.name, "role": record.role.value})
        return token, record

    async def list_tokens(self, actor: Principal) -> list[TokenRecord]:
        """Every token, revoked ones included."""
        actor.require(Permission.MANAGE_TOKENS)
        return await self._tokens.all()

    async def revoke(self, actor: Principal, token_id: int) -> TokenRecord:
        """Revoke a token; it is refused from the next request on. Revoking it again changes
        nothing and, like any write that changes nothing, leaves no audit row."""
        actor.require(Permission.MANAGE_TOKENS)
        async with self._pool.acquire() as conn, conn.transaction():
            record, revoked_now = await self._tokens.revoke(conn, token_id)
            if revoked_now:
                await audit.record(conn, actor=actor.actor, action="token.revoke",
                                   target=str(token_id), details={"name": record.name})
        return record

    async def audit_log(self, actor: Principal, *, limit: int = 100) -> list[audit.AuditEntry]:
        """The newest audit rows."""
        actor.require(Permission.READ)
        return await audit.recent(self._pool, limit=limit)
