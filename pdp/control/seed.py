"""Seeding an empty database with the built-in marketplace bundle: 5 policies, data and tests.

A database counts as empty when no policy and no data document was ever written (deleted policies
keep their history), so restarting never re-adds what an admin removed. Replicas starting together
serialise on an advisory lock; the first seeds, the others find the rows already there.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg

from pdp.bundle import compile_contents, read_source_dir
from pdp.bundle.contents import TESTS_DIR, BundleContents
from pdp.bundle.errors import BundleError
from pdp.control import audit
from pdp.control.auth import SYSTEM_ACTOR
from pdp.control.document_store import DocumentStore
from pdp.control.draft import policy_spec
from pdp.control.errors import ConfigurationError
from pdp.control.policy_store import PolicyStore

SEED_LOCK_ID = 0x7064700073656564  # "pdp\0seed"


def _checked_source(source_dir: Path) -> BundleContents:
    """The seed source, refused unless its policies compile with its data: rows are written
    one by one below, bypassing the checks of the admin API, and a seed the core refuses made
    every later edit and publish fail with the seed's error."""
    contents = read_source_dir(source_dir)
    compile_contents(contents)
    return contents


async def seed_if_empty(pool: asyncpg.Pool, source_dir: Path) -> bool:
    """Load `source_dir` into an empty database; return whether it seeded."""
    try:
        contents = await asyncio.to_thread(_checked_source, source_dir)
    except BundleError as exc:
        raise ConfigurationError(f"--seed-dir {source_dir}: {exc}") from None
    policies = PolicyStore(pool)
    data = DocumentStore(pool, "data_documents", nested=True)
    tests = DocumentStore(pool, "bundle_tests", nested=False)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SEED_LOCK_ID)
        used = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM policy_versions) OR EXISTS (SELECT 1 FROM data_documents)"
        )
        if used:
            return False
        for document in contents.policies:
            await policies.create(conn, policy_spec(document), SYSTEM_ACTOR)
        for key, value in sorted(contents.data.items()):
            await data.put(conn, key, value, None, SYSTEM_ACTOR)
        for name, raw in sorted(contents.files.items()):
            if name.startswith(TESTS_DIR + "/") and name.endswith(".json"):
                stem = name[len(TESTS_DIR) + 1:-len(".json")]
                await tests.put(conn, stem, json.loads(raw), None, SYSTEM_ACTOR)
        await audit.record(conn, actor=SYSTEM_ACTOR, action="seed", target=str(source_dir),
                           details={"policies": [p.id for p in contents.policies]})
    return True
