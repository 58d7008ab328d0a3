"""Activation (DESIGN §7.1): verify → compile → test → swap; a refused candidate changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from runtime_support import (
    EngineFactory,
    FakeClock,
    Signing,
    sample,
    tampered,
    unpack,
    write_directory,
)

from pdp.bundle import Limits, build_bundle, write_archive
from pdp.runtime import ActivationError, BundleUpdate


async def test_good_bundle_becomes_active(make_engine: EngineFactory, signing: Signing,
                                          registry: CollectorRegistry) -> None:
    """A correctly signed bundle is verified, compiled and served, and status says so."""
    engine = make_engine()
    active = await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    assert engine.active is active
    assert (active.revision, active.sequence) == ("r1", 1)
    status = engine.status()
    assert status["state"] == "fresh"
    assert status["ready"] is True
    assert status["bundle"]["key_id"] == signing.key_id
    assert status["bundle"]["verified"] is True
    assert sample(registry, "pdp_bundle_loads_total", source="test", result="success") == 1
    assert sample(registry, "pdp_bundle_info", revision="r1", sequence="1") == 1
    assert sample(registry, "policy_engine_active_policies") == len(active.policy_set.policies)


async def test_tampered_bundle_is_refused_and_previous_keeps_serving(
        make_engine: EngineFactory, signing: Signing, registry: CollectorRegistry) -> None:
    """A changed byte is refused; the previous revision serves; status and metric show it."""
    engine = make_engine()
    first = await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    with pytest.raises(ActivationError) as refused:
        await engine.activate(BundleUpdate(tampered(signing.bundle(2)), source="test"))
    assert refused.value.reason == "hash_mismatch"
    assert engine.active is first
    status = engine.status()
    assert status["revision"] == "r1"
    assert status["last_error"]["reason"] == "hash_mismatch"
    assert "data.json" in status["last_error"]["message"]
    assert status["state"] == "last_known_good"
    assert sample(registry, "pdp_bundle_loads_total", source="test", result="failure") == 1


async def test_unsigned_bundle_is_refused(make_engine: EngineFactory, signing: Signing) -> None:
    """Verification is mandatory: a bundle without .signatures.json never becomes active."""
    engine = make_engine()
    files = unpack(signing.bundle(1))
    del files[".signatures.json"]
    with pytest.raises(ActivationError):
        await engine.activate(BundleUpdate(write_archive(files), source="test"))
    assert engine.active is None
    assert engine.status()["state"] == "starting"


async def test_unchanged_content_is_not_reactivated(
        make_engine: EngineFactory, signing: Signing, registry: CollectorRegistry,
        clock: FakeClock) -> None:
    """The same content again keeps the same compiled snapshot and only counts as unchanged."""
    engine = make_engine()
    data = signing.bundle(1)
    first = await engine.activate(BundleUpdate(data, source="test"))
    clock.advance(10)
    again = await engine.activate(BundleUpdate(data, source="test"))
    assert again.loaded is first.loaded
    assert again.activated_at == first.activated_at
    assert again.confirmed_at == first.confirmed_at + 10
    assert sample(registry, "pdp_bundle_loads_total", source="test", result="success") == 1
    assert sample(registry, "pdp_bundle_loads_total", source="test", result="unchanged") == 1


async def test_rollback_is_refused(make_engine: EngineFactory, signing: Signing) -> None:
    """A lower sequence than the active one is refused (anti-rollback on by default)."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(5), source="test"))
    with pytest.raises(ActivationError) as refused:
        await engine.activate(BundleUpdate(signing.bundle(4), source="test"))
    assert refused.value.reason == "sequence_rollback"
    assert engine.active is not None and engine.active.sequence == 5


async def test_same_sequence_with_other_content_is_refused(make_engine: EngineFactory,
                                                           signing: Signing) -> None:
    """Equal sequence but different content is a conflict, not an update."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(3, revision="a"), source="test"))
    with pytest.raises(ActivationError) as refused:
        await engine.activate(BundleUpdate(signing.bundle(3, revision="b"), source="test"))
    assert refused.value.reason == "sequence_conflict"
    assert engine.active is not None and engine.active.revision == "a"


async def test_allow_downgrade_accepts_a_lower_sequence(make_engine: EngineFactory,
                                                        signing: Signing) -> None:
    """With allow_downgrade an operator can go back to an older bundle."""
    engine = make_engine(allow_downgrade=True)
    await engine.activate(BundleUpdate(signing.bundle(5), source="test"))
    active = await engine.activate(BundleUpdate(signing.bundle(4), source="test"))
    assert active.sequence == 4


async def test_expired_candidate_is_refused(make_engine: EngineFactory, signing: Signing,
                                            clock: FakeClock) -> None:
    """A new bundle already past its expires_at is refused."""
    engine = make_engine()
    with pytest.raises(ActivationError) as refused:
        await engine.activate(BundleUpdate(signing.bundle(1, expires_at=clock.now - 1),
                                           source="test"))
    assert refused.value.reason == "bundle_expired"


async def test_directory_bundle_is_activated(make_engine: EngineFactory, signing: Signing,
                                             tmp_path: Path) -> None:
    """A bundle directory is read like its .tar.gz and has the same content hash."""
    engine = make_engine()
    data = signing.bundle(1)
    directory = write_directory(data, tmp_path / "bundle-dir")
    from_dir = await engine.activate(BundleUpdate(directory, source="test"))
    other = make_engine(persist_dir=None, registry=CollectorRegistry())
    from_tar = await other.activate(BundleUpdate(data, source="test"))
    assert from_dir.content_hash == from_tar.content_hash


async def test_unknown_key_is_refused_until_the_keyring_reloads(
        make_engine: EngineFactory, signing: Signing, tmp_path: Path) -> None:
    """A bundle signed by a new key is accepted once that key's file appears and keys reload."""
    key_dir = signing.public_key.parent
    engine = make_engine(verification_keys=(key_dir,))
    rotated = Signing(tmp_path / "new-keys", key_id="rotated")
    data = build_bundle(rotated.contents, signer=rotated.signer, revision="r2", sequence=2)
    with pytest.raises(ActivationError) as refused:
        await engine.activate(BundleUpdate(data, source="test"))
    assert refused.value.reason == "key_unknown"
    (key_dir / "rotated.pem").write_bytes(rotated.public_key.read_bytes())
    await engine.activator.reload_keyring()
    assert "rotated" in engine.status()["keyring"]
    active = await engine.activate(BundleUpdate(data, source="test"))
    assert active.revision == "r2"


async def test_insecure_skip_verification_is_visible(make_engine: EngineFactory,
                                                     signing: Signing,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Skipping verification works only when asked, and every load says so loudly."""
    files = unpack(signing.bundle(1))
    del files[".signatures.json"]
    engine = make_engine(verification_keys=(), insecure_skip_verification=True)
    active = await engine.activate(BundleUpdate(write_archive(files), source="test"))
    assert active.loaded.verified is False
    assert engine.status()["verification_skipped"] is True
    assert any("verification" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)


async def test_unreadable_candidate_is_reported(make_engine: EngineFactory,
                                                tmp_path: Path) -> None:
    """A path that cannot be read is a refused candidate with a clear reason, not a crash."""
    engine = make_engine()
    with pytest.raises(ActivationError) as refused:
        await engine.activate(BundleUpdate(tmp_path / "missing.tar.gz", source="test"))
    assert refused.value.reason == "read_error"
    assert "missing.tar.gz" in str(refused.value)


async def test_oversized_file_is_refused_before_reading(make_engine: EngineFactory,
                                                        tmp_path: Path) -> None:
    """A file bigger than the bundle size limit is refused without being loaded into memory."""
    engine = make_engine(limits=Limits(max_total_bytes=1024))
    huge = tmp_path / "huge.tar.gz"
    with huge.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of nothing, cheap to make
    with pytest.raises(ActivationError) as refused:
        await engine.activate(BundleUpdate(huge, source="test"))
    assert refused.value.reason == "total_too_large"
