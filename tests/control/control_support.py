"""Helpers for the control-plane tests: keys, settings, tokens per role, database snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from pdp.bundle import write_key_pair
from pdp.control.auth import Role, TokenStore
from pdp.control.settings import ControlSettings

REPO = Path(__file__).resolve().parents[2]
MARKETPLACE = REPO / "bundles" / "marketplace"
KEY_ID = "cp-test"

ApiClient = TestClient[web.Request, web.Application]
"""A client of the control plane's HTTP app on a real socket."""

# Tables whose rows a refused request must not change (everything a write can touch).
WRITABLE_TABLES = ("policies", "policy_versions", "data_documents", "bundle_tests", "bundles",
                   "api_tokens", "audit_log", "sidecars", "decision_logs")


@dataclass(frozen=True)
class SigningKeys:
    """A key pair written for one test."""

    private: Path
    public: Path
    key_id: str = KEY_ID


def make_keys(directory: Path) -> SigningKeys:
    """Write a fresh Ed25519 key pair into `directory`."""
    private, public = write_key_pair(directory, KEY_ID)
    return SigningKeys(private, public)


def settings_for(database_url: str, keys: SigningKeys, **overrides: Any) -> ControlSettings:
    """Control-plane settings on `database_url` with ephemeral listeners."""
    values: dict[str, Any] = {
        "database_url": database_url, "signing_key": keys.private, "key_id": keys.key_id,
        "http_addr": "127.0.0.1:0", "grpc_addr": "127.0.0.1:0", "recheck_seconds": 0.5,
        **overrides,
    }
    return ControlSettings(**values)


async def create_tokens(pool: asyncpg.Pool) -> dict[Role, str]:
    """One token per role, named after it."""
    store = TokenStore(pool)
    tokens: dict[Role, str] = {}
    async with pool.acquire() as conn, conn.transaction():
        for role in Role:
            tokens[role], _ = await store.create(conn, name=role.value, role=role,
                                                 created_by="test")
    return tokens


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Every row of every writable table, as text, to compare before and after a request."""
    rows: dict[str, list[str]] = {}
    async with pool.acquire() as conn:
        for table in WRITABLE_TABLES:
            records = await conn.fetch(f"SELECT t::text AS row FROM {table} t ORDER BY 1")
            rows[table] = [r["row"] for r in records]
    return rows


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}
