"""`FileSource` (DESIGN §7.1): --bundle PATH watched with watchfiles, however it is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from runtime_support import Signing, write_directory

from pdp.runtime import BundleUnchanged, BundleUpdate, FileSource, SourceError, SourceEvent

# Generous: the watcher debounces for 50 ms, but CI machines can be slow.
EVENT_TIMEOUT = 10.0


class Events:
    """Reads a source's events one at a time with a timeout."""

    def __init__(self, source: FileSource) -> None:
        self.source = source
        self._iterator: AsyncGenerator[SourceEvent, None] = source.updates()
        self._pending: asyncio.Future[SourceEvent] | None = None

    def _read(self) -> asyncio.Future[SourceEvent]:
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._iterator))
        return self._pending

    async def next(self) -> SourceEvent:
        event = await asyncio.wait_for(asyncio.shield(self._read()), EVENT_TIMEOUT)
        self._pending = None
        return event

    async def nothing_within(self, seconds: float) -> bool:
        done, _ = await asyncio.wait({self._read()}, timeout=seconds)
        return not done

    async def close(self) -> None:
        await self.source.close()
        if self._pending is not None:
            with contextlib.suppress(StopAsyncIteration):
                await asyncio.wait_for(self._pending, EVENT_TIMEOUT)
        await self._iterator.aclose()


@pytest.fixture
async def bundle_file(tmp_path: Path, signing: Signing) -> Path:
    """A signed bundle file in a directory of its own."""
    path = tmp_path / "dist" / "bundle.tar.gz"
    path.parent.mkdir()
    path.write_bytes(signing.bundle(1))
    return path


async def watch(path: Path) -> Events:
    return Events(FileSource(path, debounce_ms=50))


async def test_the_current_bundle_is_delivered_at_start(bundle_file: Path) -> None:
    """The first event is the bundle as it is now."""
    events = await watch(bundle_file)
    first = await events.next()
    await events.close()
    assert isinstance(first, BundleUpdate)
    assert first.data == bundle_file
    assert first.source == "file"


async def test_atomic_rename_replace_is_detected(bundle_file: Path, signing: Signing) -> None:
    """`mv new bundle.tar.gz` (a new inode) yields a new update."""
    events = await watch(bundle_file)
    first = await events.next()
    staged = bundle_file.with_name(".staged.tar.gz")
    staged.write_bytes(signing.bundle(2))
    os.replace(staged, bundle_file)
    second = await events.next()
    await events.close()
    assert isinstance(first, BundleUpdate) and isinstance(second, BundleUpdate)
    assert second.etag != first.etag


async def test_in_place_rewrite_is_detected(bundle_file: Path, signing: Signing) -> None:
    """Rewriting the same file (same inode) yields a new update."""
    events = await watch(bundle_file)
    await events.next()
    inode = os.stat(bundle_file).st_ino
    with bundle_file.open("r+b") as handle:
        handle.truncate(0)
        handle.write(signing.bundle(2))
    assert os.stat(bundle_file).st_ino == inode
    assert isinstance(await events.next(), BundleUpdate)
    await events.close()


async def test_unrelated_files_in_the_directory_are_ignored(bundle_file: Path) -> None:
    """Other files changing next to the bundle do not re-deliver it."""
    events = await watch(bundle_file)
    await events.next()
    (bundle_file.parent / "notes.txt").write_text("hello")
    assert await events.nothing_within(0.6)
    await events.close()


async def test_missing_file_is_an_error_then_an_update_when_it_appears(
        tmp_path: Path, signing: Signing) -> None:
    """A missing bundle is reported as a source error; creating it later delivers it."""
    path = tmp_path / "later" / "bundle.tar.gz"
    path.parent.mkdir()
    events = await watch(path)
    missing = await events.next()
    assert isinstance(missing, SourceError)
    assert missing.reason == "not_found"
    assert str(path) in str(missing)
    path.write_bytes(signing.bundle(1))
    assert isinstance(await events.next(), BundleUpdate)
    await events.close()


async def test_a_bundle_path_unreadable_for_a_while_is_an_error_then_watched_again(
        bundle_file: Path, signing: Signing) -> None:
    """A path that cannot be read for now (here a symlink loop; for a non-root sidecar, a
    directory made unreadable) is a source error, and the source keeps watching: the bundle put
    there afterwards is delivered."""
    events = await watch(bundle_file)
    assert isinstance(await events.next(), BundleUpdate)
    loop = bundle_file.with_name("loop")
    loop.symlink_to(bundle_file.name)  # stat() fails with ELOOP, not "not found"
    loop.rename(bundle_file)
    events.source.request_sync()
    unreadable = await events.next()
    assert isinstance(unreadable, SourceError) and unreadable.reason == "unreadable", unreadable
    staged = bundle_file.with_name("staged.tar.gz")
    staged.write_bytes(signing.bundle(2))
    staged.rename(bundle_file)
    assert isinstance(await events.next(), BundleUpdate)
    await events.close()


async def test_request_sync_redelivers_an_unchanged_bundle(bundle_file: Path) -> None:
    """An explicit sync reads the bundle again even when nothing changed."""
    source = FileSource(bundle_file, debounce_ms=50)
    events = Events(source)
    await events.next()
    source.request_sync()
    assert isinstance(await events.next(), BundleUpdate)
    await events.close()


async def test_an_unchanged_bundle_is_confirmed_on_the_confirm_period(
        bundle_file: Path) -> None:
    """With confirm_seconds an unchanged file is reported unchanged on that period, with the
    etag it was delivered with, so max_bundle_age does not make it stale."""
    events = Events(FileSource(bundle_file, debounce_ms=50, confirm_seconds=0.1))
    first = await events.next()
    second = await events.next()
    await events.close()
    assert isinstance(first, BundleUpdate)
    assert isinstance(second, BundleUnchanged)
    assert (second.etag, second.source) == (first.etag, "file")


async def test_bundle_directory_changes_are_detected(tmp_path: Path, signing: Signing) -> None:
    """Editing a file inside a bundle directory yields a new update."""
    directory = write_directory(signing.bundle(1), tmp_path / "parent" / "bundle")
    events = await watch(directory)
    first = await events.next()
    assert isinstance(first, BundleUpdate)
    (directory / "data.json").write_bytes(b"{}")
    second = await events.next()
    assert isinstance(second, BundleUpdate)
    assert second.etag != first.etag
    await events.close()


async def test_a_recreated_directory_is_watched_again(tmp_path: Path, signing: Signing) -> None:
    """If the bundle's directory is removed and created again, the new one is watched."""
    directory = tmp_path / "dist"
    directory.mkdir()
    path = directory / "bundle.tar.gz"
    path.write_bytes(signing.bundle(1))
    events = await watch(path)
    await events.next()
    shutil.rmtree(directory)
    assert isinstance(await events.next(), SourceError)
    directory.mkdir()
    path.write_bytes(signing.bundle(2))
    assert isinstance(await events.next(), BundleUpdate)
    path.write_bytes(signing.bundle(3))
    assert isinstance(await events.next(), BundleUpdate)
    await events.close()


async def test_configmap_symlink_swap_is_detected(tmp_path: Path, signing: Signing) -> None:
    """A Kubernetes ConfigMap update (the ..data symlink swapped atomically) yields an update."""
    volume = tmp_path / "volume"
    (volume / "..v1").mkdir(parents=True)
    (volume / "..v1" / "bundle.tar.gz").write_bytes(signing.bundle(1))
    (volume / "..data").symlink_to("..v1")
    (volume / "bundle.tar.gz").symlink_to("..data/bundle.tar.gz")
    events = await watch(volume / "bundle.tar.gz")
    first = await events.next()
    (volume / "..v2").mkdir()
    (volume / "..v2" / "bundle.tar.gz").write_bytes(signing.bundle(2))
    (volume / "..data_tmp").symlink_to("..v2")
    os.replace(volume / "..data_tmp", volume / "..data")
    second = await events.next()
    await events.close()
    assert isinstance(first, BundleUpdate) and isinstance(second, BundleUpdate)
    assert second.etag != first.etag


async def test_close_ends_the_updates(bundle_file: Path) -> None:
    """After close() the iterator finishes instead of waiting forever."""
    source = FileSource(bundle_file, debounce_ms=50)
    iterator = source.updates()
    await anext(iterator)
    await source.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(iterator), EVENT_TIMEOUT)
