"""Persistence and cold start (DESIGN §7.1): the last good bundle outlives restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from runtime_support import COMPLIANT_LISTING, EngineFactory, FakeClock, Signing, sample

from pdp.bundle import Limits
from pdp.runtime import BundleStore, BundleUpdate, FileSource
from pdp.runtime.persist import CorruptPersistedFile, max_archive_bytes


async def test_activated_bundle_is_persisted(make_engine: EngineFactory, signing: Signing,
                                             tmp_path: Path) -> None:
    """Each activated bundle's bytes land in the persist directory; no temp files remain."""
    engine = make_engine()
    data = signing.bundle(1)
    await engine.activate(BundleUpdate(data, source="test"))
    persist = tmp_path / "persist"
    assert (persist / "bundle.tar.gz").read_bytes() == data
    assert sorted(p.name for p in persist.iterdir()) == ["bundle.tar.gz"]


async def test_a_refused_bundle_is_not_persisted(make_engine: EngineFactory, signing: Signing,
                                                 tmp_path: Path) -> None:
    """Only activated bundles are persisted: a rollback attempt leaves the good copy in place."""
    engine = make_engine()
    good = signing.bundle(2)
    await engine.activate(BundleUpdate(good, source="test"))
    await engine.activator.handle(BundleUpdate(signing.bundle(1), source="test"))
    assert (tmp_path / "persist" / "bundle.tar.gz").read_bytes() == good


async def test_cold_start_serves_the_persisted_bundle(make_engine: EngineFactory,
                                                      signing: Signing, tmp_path: Path) -> None:
    """With the source missing, a restarted sidecar serves its persisted bundle, re-verified."""
    first = make_engine()
    await first.activate(BundleUpdate(signing.bundle(4), source="test"))
    await first.stop()

    missing = FileSource(tmp_path / "nowhere" / "bundle.tar.gz")
    restarted = make_engine(registry=CollectorRegistry(), sources=[missing])
    await restarted.start()
    assert await restarted.wait_active(5)
    status = restarted.status()
    assert status["revision"] == "r4"
    assert status["state"] == "last_known_good"
    assert status["ready"] is True
    assert status["bundle"]["verified"] is True
    assert restarted.decide("validate_service", COMPLIANT_LISTING)["bundle_revision"] == "r4"


async def test_source_confirming_the_persisted_bundle_makes_it_fresh(
        make_engine: EngineFactory, signing: Signing, tmp_path: Path) -> None:
    """When the source delivers the same content as the persisted copy, the state is fresh."""
    data = signing.bundle(2)
    first = make_engine()
    await first.activate(BundleUpdate(data, source="test"))
    bundle_file = tmp_path / "bundle.tar.gz"
    bundle_file.write_bytes(data)
    registry = CollectorRegistry()
    restarted = make_engine(registry=registry, sources=[FileSource(bundle_file)])
    await restarted.start()
    for _ in range(100):
        if restarted.status()["state"] == "fresh":
            break
        await asyncio.sleep(0.05)
    assert restarted.status()["state"] == "fresh"
    assert sample(registry, "pdp_bundle_loads_total", source="file", result="unchanged") == 1


async def test_persisted_bundle_is_reverified_at_start(make_engine: EngineFactory,
                                                       signing: Signing, tmp_path: Path) -> None:
    """A persisted bundle signed by a key no longer trusted is not served after a restart."""
    first = make_engine()
    await first.activate(BundleUpdate(signing.bundle(1), source="test"))
    other = Signing(tmp_path / "other-keys", key_id="other")
    restarted = make_engine(registry=CollectorRegistry(), verification_keys=(other.public_key,))
    await restarted.start()
    assert restarted.active is None
    assert restarted.status()["last_error"]["reason"] == "key_unknown"


async def test_corrupt_persisted_file_is_reported_not_fatal(
        make_engine: EngineFactory, tmp_path: Path, registry: CollectorRegistry) -> None:
    """A damaged persisted file is reported in status and metrics; the sidecar starts anyway."""
    persist = tmp_path / "persist"
    persist.mkdir()
    (persist / "bundle.tar.gz").write_bytes(b"\x1f\x8b this is not a bundle")
    engine = make_engine()
    await engine.start()
    status = engine.status()
    assert status["state"] == "starting"
    assert status["last_error"]["source"] == "persisted"
    assert sample(registry, "pdp_bundle_persist_failures_total", operation="load") == 1
    assert sample(registry, "pdp_bundle_loads_total", source="persisted", result="failure") == 1


async def test_a_good_bundle_replaces_a_corrupt_persisted_file(
        make_engine: EngineFactory, signing: Signing, tmp_path: Path) -> None:
    """After a corrupt start, the next activation overwrites the persisted file."""
    persist = tmp_path / "persist"
    persist.mkdir()
    (persist / "bundle.tar.gz").write_bytes(b"garbage")
    engine = make_engine()
    await engine.start()
    data = signing.bundle(1)
    await engine.activate(BundleUpdate(data, source="test"))
    assert (persist / "bundle.tar.gz").read_bytes() == data
    assert engine.status()["state"] == "fresh"


async def test_age_before_restart_counts_toward_staleness(
        make_engine: EngineFactory, signing: Signing, clock: FakeClock) -> None:
    """max_bundle_age spans restarts: the persisted file keeps its last confirmation time."""
    first = make_engine(max_bundle_age_seconds=100)
    await first.activate(BundleUpdate(signing.bundle(1), source="test"))
    clock.advance(101)
    restarted = make_engine(registry=CollectorRegistry(), max_bundle_age_seconds=100)
    await restarted.start()
    assert restarted.status()["state"] == "stale"


async def test_expired_persisted_bundle_still_serves_as_stale(
        make_engine: EngineFactory, signing: Signing, clock: FakeClock) -> None:
    """A persisted bundle past expires_at is loaded as stale, so stale_action decides."""
    first = make_engine()
    await first.activate(BundleUpdate(signing.bundle(1, expires_at=clock.now + 10),
                                      source="test"))
    clock.advance(20)
    restarted = make_engine(registry=CollectorRegistry(), stale_action="serve")
    await restarted.start()
    assert restarted.status()["state"] == "stale"
    assert restarted.decide("validate_service", COMPLIANT_LISTING)["bundle_revision"] == "r1"


async def test_persist_failure_is_reported_and_the_bundle_still_serves(
        make_engine: EngineFactory, signing: Signing, tmp_path: Path,
        registry: CollectorRegistry) -> None:
    """If the persist directory cannot be written, activation still succeeds and says so."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the directory should be")
    engine = make_engine(persist_dir=blocker / "persist")
    active = await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    assert engine.active is active
    status = engine.status()
    assert status["state"] == "fresh"
    assert status["last_error"]["reason"] == "persist_failed"
    assert sample(registry, "pdp_bundle_persist_failures_total", operation="save") == 1


def test_store_replaces_atomically(tmp_path: Path) -> None:
    """Saving writes a new inode by rename, so a reader holding the old file sees it whole."""
    store = BundleStore(tmp_path)
    store.save(b"first", confirmed_at=1000.0)
    with store.path.open("rb") as reader:
        store.save(b"second", confirmed_at=2000.0)
        assert reader.read() == b"first"
    loaded = store.load()
    assert loaded is not None
    assert loaded.data == b"second"
    assert loaded.confirmed_at == 2000.0
    assert os.listdir(tmp_path) == ["bundle.tar.gz"]


def test_store_without_a_bundle_loads_nothing(tmp_path: Path) -> None:
    """An empty persist directory is simply no bundle, not an error."""
    assert BundleStore(tmp_path / "empty").load() is None


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
async def test_a_persisted_path_that_is_no_regular_file_is_reported_not_fatal(
        make_engine: EngineFactory, signing: Signing, tmp_path: Path,
        registry: CollectorRegistry, kind: str) -> None:
    """A FIFO (which would block start-up for good), a symbolic link (to /dev/zero, it would
    fill the memory) or a directory at the persisted path is reported; the sidecar starts."""
    persist = tmp_path / "persist"
    persist.mkdir()
    path = persist / "bundle.tar.gz"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        elsewhere = tmp_path / "elsewhere.tar.gz"
        elsewhere.write_bytes(signing.bundle(1))
        path.symlink_to(elsewhere)
    else:
        path.mkdir()
    engine = make_engine()
    try:
        await asyncio.wait_for(engine.start(), 5)
    finally:
        if kind == "fifo":
            # Without the fix the loader blocks in open(): a writer's open and close release it.
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    status = engine.status()
    assert status["state"] == "starting"
    assert status["last_error"]["source"] == "persisted"
    assert status["last_error"]["reason"] == "persisted_corrupt"
    assert "corrupt persisted bundle" in status["last_error"]["message"]
    assert sample(registry, "pdp_bundle_persist_failures_total", operation="load") == 1


def test_a_persisted_file_larger_than_a_bundle_is_not_read_whole(tmp_path: Path) -> None:
    """The loader reads at most the size limit plus one byte, then refuses the file."""
    store = BundleStore(tmp_path, max_bytes=1024)
    store.save(b"x" * 1024, confirmed_at=1000.0)
    loaded = store.load()
    assert loaded is not None and len(loaded.data) == 1024
    store.save(b"x" * 1025, confirmed_at=1000.0)
    with pytest.raises(CorruptPersistedFile, match="larger than the 1024-byte limit"):
        store.load()


async def test_the_persisted_file_is_bounded_by_the_engines_own_limits(
        make_engine: EngineFactory, tmp_path: Path, registry: CollectorRegistry) -> None:
    """A sidecar with a smaller bundle limit does not read a persisted file beyond that limit
    (plus framing) into memory: it is refused as corrupt, as a bundle file of that size is."""
    limits = Limits(max_total_bytes=1024)
    persist = tmp_path / "persist"
    persist.mkdir()
    (persist / "bundle.tar.gz").write_bytes(b"x" * (max_archive_bytes(limits) + 1))
    engine = make_engine(limits=limits)
    await engine.start()
    error = engine.status()["last_error"]
    assert error["reason"] == "persisted_corrupt"
    assert f"larger than the {max_archive_bytes(limits)}-byte limit" in error["message"]
    assert sample(registry, "pdp_bundle_loads_total", source="persisted", result="failure") == 0


def test_the_persist_directory_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Created under umask 000, the persist directory is still 0700: the policies and data in
    the persisted bundle are not every local user's to read."""
    previous = os.umask(0)
    try:
        BundleStore(tmp_path / "persist").save(b"bundle", confirmed_at=1000.0)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "persist").stat().st_mode) == 0o700
