"""The engine end to end with real files: start, watch, reload, refuse, rotate keys, stop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry
from runtime_support import EngineFactory, ScriptedSource, Signing, sample, tampered

from pdp.bundle import build_bundle
from pdp.runtime import BundleUpdate, Engine, FileSource, SourceError

WAIT = 10.0


async def eventually(check: Callable[[], bool], within: float = WAIT) -> bool:
    """Poll ``check`` until it holds or ``within`` seconds pass."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def revision(engine: Engine) -> str | None:
    return engine.active.revision if engine.active else None


def replace_file(path: Path, data: bytes) -> None:
    """Publish ``data`` at ``path`` the safe way: write aside, then rename over."""
    staged = path.with_name(f".{path.name}.new")
    staged.write_bytes(data)
    os.replace(staged, path)


async def test_bundle_path_is_served_and_reloaded(make_engine: EngineFactory, signing: Signing,
                                                  tmp_path: Path) -> None:
    """`--bundle PATH`: the file is served at start and every replacement is activated."""
    path = tmp_path / "dist" / "bundle.tar.gz"
    path.parent.mkdir()
    path.write_bytes(signing.bundle(1))
    engine = make_engine(sources=None, bundle_path=path, watch_debounce_ms=50)
    await engine.start()
    assert await engine.wait_active(WAIT)
    assert revision(engine) == "r1"
    replace_file(path, signing.bundle(2))
    assert await eventually(lambda: revision(engine) == "r2")


async def test_tampered_replacement_keeps_the_previous_bundle(
        make_engine: EngineFactory, signing: Signing, tmp_path: Path,
        registry: CollectorRegistry) -> None:
    """A tampered file on disk is refused; the previous revision keeps serving until a good one."""
    path = tmp_path / "dist" / "bundle.tar.gz"
    path.parent.mkdir()
    path.write_bytes(signing.bundle(1))
    engine = make_engine(sources=[FileSource(path, debounce_ms=50)])
    await engine.start()
    assert await engine.wait_active(WAIT)
    replace_file(path, tampered(signing.bundle(2)))
    assert await eventually(lambda: engine.status()["last_error"] is not None)
    assert revision(engine) == "r1"
    assert engine.status()["state"] == "last_known_good"
    assert sample(registry, "pdp_bundle_loads_total", source="file", result="failure") == 1
    replace_file(path, signing.bundle(3))
    assert await eventually(lambda: revision(engine) == "r3")
    assert engine.status()["state"] == "fresh"


async def test_new_key_file_lets_a_refused_bundle_in(make_engine: EngineFactory,
                                                     signing: Signing, tmp_path: Path) -> None:
    """Adding a key to the keyring directory reloads the keys and retries the bundle."""
    key_dir = signing.public_key.parent
    rotated = Signing(tmp_path / "rotation", key_id="rotated")
    path = tmp_path / "dist" / "bundle.tar.gz"
    path.parent.mkdir()
    path.write_bytes(build_bundle(rotated.contents, signer=rotated.signer, revision="rot",
                                  sequence=1))
    engine = make_engine(sources=[FileSource(path, debounce_ms=50)],
                         verification_keys=(key_dir,), watch_debounce_ms=50)
    await engine.start()
    assert await eventually(lambda: engine.status()["last_error"] is not None)
    assert engine.active is None
    (key_dir / "rotated.pem").write_bytes(rotated.public_key.read_bytes())
    assert await eventually(lambda: revision(engine) == "rot")
    assert "rotated" in engine.status()["keyring"]


async def test_a_key_path_unreadable_for_a_while_is_reported_and_watched_again(
        make_engine: EngineFactory, signing: Signing, tmp_path: Path) -> None:
    """A key directory that cannot be read for a moment (here a symlink loop in its place) is a
    keyring error that keeps the keys; the watch goes on, so a key added afterwards is trusted
    (it used to end, ignoring every later rotation until a restart)."""
    keys = tmp_path / "trusted"
    keys.mkdir()
    (keys / f"{signing.key_id}.pem").write_bytes(signing.public_key.read_bytes())
    path = tmp_path / "dist" / "bundle.tar.gz"
    path.parent.mkdir()
    path.write_bytes(signing.bundle(1))
    engine = make_engine(sources=[FileSource(path, debounce_ms=50)], verification_keys=(keys,),
                         watch_debounce_ms=50)
    await engine.start()
    assert await engine.wait_active(WAIT)
    aside, loop = tmp_path / "aside", tmp_path / "loop"
    keys.rename(aside)
    loop.symlink_to(keys.name)  # once renamed to it, the link points at itself
    loop.rename(keys)
    assert await eventually(lambda: (engine.status()["last_error"] or {}).get("source")
                            == "keyring")
    assert signing.key_id in engine.status()["keyring"]
    rotated = Signing(tmp_path / "rotation", key_id="rotated")
    (aside / "rotated.pem").write_bytes(rotated.public_key.read_bytes())
    keys.unlink()
    aside.rename(keys)
    assert await eventually(lambda: "rotated" in engine.status()["keyring"])
    await engine.stop()


async def test_request_sync_reads_the_source_again(make_engine: EngineFactory, signing: Signing,
                                                   tmp_path: Path) -> None:
    """POST /v1/bundles/sync's hook makes the source deliver again (seen as unchanged)."""
    path = tmp_path / "dist" / "bundle.tar.gz"
    path.parent.mkdir()
    path.write_bytes(signing.bundle(1))
    registry = CollectorRegistry()
    engine = make_engine(registry=registry, sources=[FileSource(path, debounce_ms=50)])
    await engine.start()
    assert await engine.wait_active(WAIT)
    engine.request_sync()
    assert await eventually(lambda: sample(registry, "pdp_bundle_loads_total", source="file",
                                           result="unchanged") == 1)


async def test_events_are_applied_in_order(make_engine: EngineFactory,
                                           signing: Signing) -> None:
    """A source's updates, errors and confirmations reach activation in the order yielded."""
    source = ScriptedSource([
        BundleUpdate(signing.bundle(1), source="scripted"),
        SourceError("server said 500", reason="http_500", source="scripted"),
        BundleUpdate(signing.bundle(2), source="scripted"),
    ])
    engine = make_engine(sources=[source])
    await engine.start()
    assert await eventually(lambda: revision(engine) == "r2")
    status = engine.status()
    assert status["state"] == "fresh"
    assert status["last_error"]["reason"] == "http_500"


async def test_a_crashing_source_is_reported_and_the_bundle_keeps_serving(
        make_engine: EngineFactory, signing: Signing) -> None:
    """A source that breaks shows in status; the bundle it delivered before keeps serving."""
    source = ScriptedSource([BundleUpdate(signing.bundle(1), source="scripted")],
                            then_fail=True)
    engine = make_engine(sources=[source])
    await engine.start()
    assert await eventually(lambda: engine.status()["last_error"] is not None)
    status = engine.status()
    assert status["last_error"]["reason"] == "source_crashed"
    assert status["state"] == "last_known_good"
    assert revision(engine) == "r1"


def test_request_sync_reaches_every_source(make_engine: EngineFactory) -> None:
    """POST /v1/bundles/sync asks each configured source for a fetch."""
    sources = [ScriptedSource([]), ScriptedSource([], name="other")]
    engine = make_engine(sources=sources)
    engine.request_sync()
    assert [s.syncs for s in sources] == [1, 1]


async def test_stop_ends_every_task(make_engine: EngineFactory, signing: Signing,
                                    tmp_path: Path) -> None:
    """stop() returns promptly and leaves no task of the engine running."""
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(signing.bundle(1))
    engine = make_engine(sources=[FileSource(path, debounce_ms=50)],
                         decision_log={"sink": "stdout"})
    await engine.start()
    assert await engine.wait_active(WAIT)
    before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    assert before, "the engine should be running background tasks"
    await asyncio.wait_for(engine.stop(), 5)
    assert all(task.done() for task in before)
