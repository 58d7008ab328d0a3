"""The control plane's parts, wired once at start-up and shared by its HTTP and gRPC servers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from prometheus_client import CollectorRegistry

from pdp.bundle import JwsSigner, Keyring
from pdp.bundle.errors import BundleError
from pdp.bundle.keys import check_key_id, load_private_key
from pdp.control import audit
from pdp.control.auth import SYSTEM_ACTOR, Role, TokenRecord, TokenStore
from pdp.control.bundle_feed import BundleFeed
from pdp.control.bundle_store import BundleStore
from pdp.control.database import open_pool
from pdp.control.draft import Draft
from pdp.control.errors import ConfigurationError
from pdp.control.intake import Intake
from pdp.control.metrics import ControlMetrics
from pdp.control.publish_pause import PublishPause
from pdp.control.publisher import Publisher
from pdp.control.seed import seed_if_empty
from pdp.control.settings import ControlSettings
from pdp.control.token_admin import TokenAdmin, check_token_name

Clock = Callable[[], float]


@dataclass
class ControlPlane:
    """Everything a request handler needs; built by :func:`open_control_plane`."""

    settings: ControlSettings
    pool: asyncpg.Pool
    tokens: TokenStore
    token_admin: TokenAdmin
    draft: Draft
    publisher: Publisher
    feed: BundleFeed
    intake: Intake
    metrics: ControlMetrics
    clock: Clock

    async def close(self) -> None:
        """Stop the feed and close the pool."""
        await self.feed.close()
        await self.pool.close()


def load_signer(key_path: Path, key_id: str) -> tuple[JwsSigner, Keyring]:
    """The signer of published bundles, and a keyring trusting its public half (self-check)."""
    try:
        check_key_id(key_id)
    except BundleError as exc:
        raise ConfigurationError(f"--key-id: {exc}") from None
    try:
        private = load_private_key(key_path)
        return JwsSigner(private, key_id), Keyring({key_id: private.public_key()})
    except BundleError as exc:
        raise ConfigurationError(f"--signing-key: {exc}") from None


async def open_control_plane(settings: ControlSettings, *, seed_dir: Path | None,
                             clock: Clock = time.time,
                             registry: CollectorRegistry | None = None,
                             publish_pause: PublishPause | None = None) -> ControlPlane:
    """Connect, migrate, seed an empty database from `seed_dir`, and start the bundle feed.

    Metrics go to `registry` (a fresh one when None: never the process-global registry);
    `publish_pause` is the test-only hook of :mod:`pdp.control.publish_pause`.
    """
    signer, keyring = load_signer(settings.signing_key, settings.key_id)
    metrics = ControlMetrics(registry if registry is not None else CollectorRegistry())
    pool = await open_pool(settings.database_url, max_size=settings.pool_size,
                           command_timeout=settings.database_timeout)
    try:
        if seed_dir is not None:
            await seed_if_empty(pool, seed_dir)
        tokens = TokenStore(pool)
        draft = Draft(pool, clock=clock)
        # The feed is the one writer of --bundle-dir: at start-up, on every publish it hears of
        # from any replica, and (via on_published) right after this replica's own publishes.
        feed = BundleFeed(settings.database_url, BundleStore(pool), metrics=metrics,
                          recheck_seconds=settings.recheck_seconds,
                          bundle_dir=settings.bundle_dir)
        publisher = Publisher(pool, draft, signer=signer, keyring=keyring, clock=clock,
                              metrics=metrics, on_published=feed.adopt, pause=publish_pause)
        await feed.start()
    except BaseException:
        await pool.close()
        raise
    return ControlPlane(settings=settings, pool=pool, tokens=tokens,
                        token_admin=TokenAdmin(pool, tokens), draft=draft, publisher=publisher,
                        feed=feed, intake=Intake(pool), metrics=metrics, clock=clock)


async def create_token(database_url: str, *, role: Role, name: str) -> tuple[str, TokenRecord]:
    """`pdp control create-token`: migrate if needed, create a token, audit it as the system."""
    pool = await open_pool(database_url, max_size=2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            token, record = await TokenStore(pool).create(
                conn, name=check_token_name(name), role=role, created_by=SYSTEM_ACTOR)
            await audit.record(conn, actor=SYSTEM_ACTOR, action="token.create",
                               target=str(record.id),
                               details={"name": record.name, "role": role.value})
    finally:
        await pool.close()
    return token, record
