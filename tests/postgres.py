"""A PostgreSQL server for tests, and a fresh database per test.

Where the server comes from, in order:

1. ``PDP_TEST_DATABASE_URL`` (CI sets it);
2. ``postgresql://postgres@127.0.0.1:5432/postgres`` when something answers there;
3. a throwaway cluster started with ``initdb`` / ``pg_ctl`` in a temporary directory on a free port.

When none of these works the tests are skipped with a loud reason, except under ``CI=true``, where a
missing database is a failure: CI must never pass by testing nothing.

Each test gets its own database (``CREATE DATABASE`` with a random name, dropped afterwards), so
tests never see each other's rows and can run in any order.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from ports import free_port

ENV_VAR = "PDP_TEST_DATABASE_URL"
LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_database(dsn: str, database: str) -> str:
    """Return `dsn` pointing at `database` on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def _maintenance_dsn(dsn: str) -> str | None:
    """A DSN on the server of `dsn` that accepts CREATE DATABASE, or None if nothing answers.

    CI's DSN names a database (``test``) that may not exist yet; the server's ``postgres`` database
    is then used to create the per-test databases.
    """
    if await _answers(dsn):
        return dsn
    fallback = with_database(dsn, "postgres")
    if fallback != dsn and await _answers(fallback):
        return fallback
    return None


@dataclass
class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory, owned by this test session."""

    directory: Path
    port: int
    run_as: list[str] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        """The DSN of the cluster's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls) -> ThrowawayCluster:
        """Create and start a cluster; raise RuntimeError with the tools' output if that fails."""
        if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
            raise RuntimeError("initdb/pg_ctl are not on PATH")
        directory = Path(tempfile.mkdtemp(prefix="pdp-pg-"))
        run_as: list[str] = []
        # initdb refuses to run as root; run the cluster as the distribution's postgres user.
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root and no 'postgres' user exists") from exc
            os.chown(directory, owner.pw_uid, owner.pw_gid)
            run_as = ["runuser", "-u", "postgres", "--"]
        cluster = cls(directory=directory, port=free_port(), run_as=run_as)
        data = directory / "data"
        cluster._run(["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        options = f"-p {cluster.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        cluster._run(["pg_ctl", "-D", str(data), "-o", options, "-l", str(directory / "log"),
                      "-w", "start"])
        return cluster

    def stop(self) -> None:
        """Stop the cluster and delete its directory."""
        try:
            self._run(["pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run([*self.run_as, *argv], capture_output=True, text=True, timeout=60,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")


@dataclass
class PostgresServer:
    """The server the session's tests use: a maintenance DSN and, maybe, a cluster to stop."""

    maintenance_dsn: str
    cluster: ThrowawayCluster | None = None

    async def create_database(self) -> str:
        """Create a database with a random name and return its DSN."""
        name = "pdp_test_" + secrets.token_hex(6)
        conn = await asyncpg.connect(self.maintenance_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return with_database(self.maintenance_dsn, name)

    async def drop_database(self, dsn: str) -> None:
        """Drop the database of `dsn`, disconnecting anything still attached to it."""
        name = urlsplit(dsn).path.lstrip("/")
        conn = await asyncpg.connect(self.maintenance_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def stop(self) -> None:
        """Stop the throwaway cluster, if this session started one."""
        if self.cluster is not None:
            self.cluster.stop()


def _unavailable(reason: str) -> None:
    message = f"NO POSTGRESQL FOR THE CONTROL-PLANE TESTS: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: the tests must not be skipped)", pytrace=False)
    pytest.skip(message)


def find_server() -> PostgresServer:
    """Find or start a PostgreSQL server; skip (or fail under CI) when there is none."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        dsn = asyncio.run(_maintenance_dsn(configured))
        if dsn is None:
            _unavailable(f"{ENV_VAR}={configured} does not answer")
        assert dsn is not None
        return PostgresServer(dsn)
    if asyncio.run(_answers(LOCAL_DSN)):
        return PostgresServer(LOCAL_DSN)
    try:
        cluster = ThrowawayCluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        _unavailable(f"nothing at {LOCAL_DSN} and no throwaway cluster: {exc}")
        raise
    return PostgresServer(cluster.dsn, cluster)
