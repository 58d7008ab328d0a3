"""Opening the PostgreSQL pool the control plane shares between its HTTP and gRPC servers."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from pdp.control.errors import ConfigurationError, RequestError, StoreUnavailableError
from pdp.control.migrations import apply_migrations
from pdp.control.settings import DATABASE_TIMEOUT_SECONDS
from pdp.core import MAX_REQUEST_NUMBER, FieldError, whole_number

# Valid JSON, but PostgreSQL text and jsonb cannot hold NUL or lone UTF-16 surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class ServerRefusedConnection(Exception):
    """PostgreSQL answered but would not open a connection.

    For example the database does not exist or does not accept connections, there are too many
    clients, or the credentials are refused. asyncpg raises the server's error class for these,
    the same classes a failing statement raises; this type tells the two apart.
    """


async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect`` that raises :class:`ServerRefusedConnection` when the server says no."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except asyncpg.PostgresError as exc:
        raise ServerRefusedConnection(str(exc)) from exc


# The exceptions that mean "the database is not there", as opposed to a bad statement: it cannot
# be reached, it refused a new connection, the connection broke, or the server is shutting down
# or restarting.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    ServerRefusedConnection,
    # A connection cut mid-protocol can also surface as asyncpg's own state error.
    asyncpg.exceptions.InternalClientError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON columns come back as Python values, not strings, on every connection of the pool.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


# How asyncpg words a call on a connection PostgreSQL terminated meanwhile: its internals
# ("released back to the pool") sent operators looking for a bug in the pool, not for the
# terminated backend or restarted server it was.
_LOST_CONNECTION = ("connection has been released back to the pool",
                    "the underlying connection is closed")


def problem(exc: BaseException) -> str:
    """What went wrong with the database, for people: a timeout's own text is empty."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer in time (--database-timeout)"
    if isinstance(exc, asyncpg.InterfaceError) and any(w in str(exc) for w in _LOST_CONNECTION):
        return "the connection to PostgreSQL was lost"
    return str(exc) or type(exc).__name__


async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 10,
                    migrate: bool = True,
                    command_timeout: float = DATABASE_TIMEOUT_SECONDS) -> asyncpg.Pool:
    """Open a pool on `dsn`, applying pending migrations first unless `migrate` is false.

    ``command_timeout`` bounds every statement, lock waits included: without it a lock held by
    someone else (a manual LOCK TABLE, a frozen replica holding the publish lock) kept requests
    waiting as long as it was held; now they answer 503 / UNAVAILABLE.

    Raises ConfigurationError for a malformed URL and StoreUnavailableError when PostgreSQL
    cannot be reached or refuses.
    """
    try:
        if migrate:
            conn = await connect(dsn, timeout=10)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, timeout=10,
            connect=connect, command_timeout=command_timeout,
        )
    except asyncpg.ClientConfigurationError as exc:
        # Before CONNECTION_ERRORS: it is an InterfaceError too, but a wrong scheme or an
        # unknown sslmode is the operator's typo, not an unreachable database.
        raise ConfigurationError(_invalid_url(dsn, exc)) from None
    except CONNECTION_ERRORS as exc:
        raise StoreUnavailableError(f"cannot connect to PostgreSQL: {problem(exc)}") from exc
    except (ValueError, OverflowError) as exc:
        # asyncpg parses the URL before connecting (a port that is no number, a broken IPv6 host).
        raise ConfigurationError(_invalid_url(dsn, exc)) from None
    return pool


def _invalid_url(dsn: str, exc: Exception) -> str:
    """Why `dsn` was refused, without quoting the parser when the URL holds credentials: a
    password with an unescaped / # or ? is split there, and the parser's message quoted the
    piece ("invalid literal for int() with base 10: 'S3cret'")."""
    if "@" not in dsn:
        return f"the database URL is not valid: {exc}"
    return ("the database URL is not valid (its parser's message is not shown, as it may quote"
            " the password); characters such as / # ? @ : in the user name or password must be"
            " percent-encoded (/ as %2F)")


@asynccontextmanager
async def pool_for(dsn: str, **kwargs: Any) -> AsyncIterator[asyncpg.Pool]:
    """`open_pool` as a context manager that closes the pool on exit."""
    pool = await open_pool(dsn, **kwargs)
    try:
        yield pool
    finally:
        await pool.close()



MAX_BIGINT = MAX_REQUEST_NUMBER  # what a PostgreSQL bigint holds


def positive_int(value: object, field: str, *, minimum: int = 1) -> int:
    """`value` (a JSON number or the text of a query, path or header) as an integer from
    `minimum` to what a PostgreSQL bigint holds (``pdp.core.whole_number``); RequestError
    naming `field` otherwise."""
    number = whole_number(value)
    if number is None or number < minimum:
        message = f"expected an integer from {minimum} to {MAX_BIGINT}, got {value!r}"
        raise RequestError(f"invalid {field}: {message}", [FieldError(field, message)])
    return number


def check_storable(value: Any, *, what: str = "the request") -> None:
    """Refuse what PostgreSQL's jsonb cannot store anywhere in a JSON value, naming each place:
    strings with NUL or lone surrogates, and numbers that are not finite (``1e400`` parses as
    infinity). Without this they would fail deep in the database as a server error."""
    errors: list[FieldError] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str) and _UNSTORABLE.search(node):
            errors.append(FieldError(path, "contains a NUL or unpaired surrogate character"))
        elif isinstance(node, float) and not math.isfinite(node):
            errors.append(FieldError(path, "a number too large for JSON (or not a number)"))
        elif isinstance(node, dict):
            for key, child in node.items():
                child_path = f"{path}.{key}" if path else str(key)
                if _UNSTORABLE.search(str(key)):
                    errors.append(FieldError(path, "a key contains a NUL or unpaired surrogate"))
                stack.append((child_path, child))
        elif isinstance(node, list):
            stack.extend((f"{path}.{i}" if path else str(i), child)
                         for i, child in enumerate(node))
    if errors:
        errors.sort()
        raise RequestError(f"{what} holds values that cannot be stored: "
                           + "; ".join(str(e) for e in errors), errors)
