"""Helpers for the runtime tests: signed marketplace bundles, tampering, a settable clock."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from pdp.bundle import (
    BundleContents,
    JwsSigner,
    build_bundle,
    load_private_key,
    read_source_dir,
    write_archive,
    write_key_pair,
)
from pdp.runtime import Engine, SourceEvent

REPO = Path(__file__).resolve().parents[2]
MARKETPLACE = REPO / "bundles" / "marketplace"

EngineFactory = Callable[..., Engine]
"""The ``make_engine`` fixture: keyword overrides of RuntimeConfig → a new Engine."""

EXAMPLES = MARKETPLACE / "examples"
COMPLIANT_LISTING: dict[str, Any] = json.loads((EXAMPLES / "compliant-listing.json").read_text())


class FakeClock:
    """A clock the test moves by hand; callable like ``time.time``."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class Signing:
    """A key pair on disk and a signer that builds marketplace bundles with it."""

    def __init__(self, key_dir: Path, key_id: str = "test-key") -> None:
        private, public = write_key_pair(key_dir, key_id)
        self.key_id = key_id
        self.public_key = public
        self.signer = JwsSigner(load_private_key(private), key_id)
        self.contents: BundleContents = read_source_dir(MARKETPLACE, created_at=1_700_000_000.0)

    def bundle(self, sequence: int, *, revision: str | None = None,
               expires_at: float | None = None) -> bytes:
        """A signed marketplace bundle with this sequence (revision ``r<sequence>`` by default)."""
        return build_bundle(
            self.contents, signer=self.signer, revision=revision or f"r{sequence}",
            sequence=sequence,
            expires_at=datetime.fromtimestamp(expires_at, tz=UTC) if expires_at else None)


class ScriptedSource:
    """An in-memory BundleSource: yields the given events, then optionally fails, then waits."""

    def __init__(self, events: Sequence[SourceEvent], *, then_fail: bool = False,
                 name: str = "scripted") -> None:
        self.name = name
        self._events = list(events)
        self._then_fail = then_fail
        self._closed = asyncio.Event()
        self.syncs = 0

    async def updates(self) -> AsyncIterator[SourceEvent]:
        for event in self._events:
            yield event
        if self._then_fail:
            raise ConnectionError("the scripted source broke")
        await self._closed.wait()

    def request_sync(self) -> None:
        self.syncs += 1

    async def close(self) -> None:
        self._closed.set()


def unpack(data: bytes) -> dict[str, bytes]:
    """The files of a .tar.gz bundle."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                files[member.name] = handle.read()
    return files


def tampered(data: bytes) -> bytes:
    """The bundle with one byte of data.json changed and the signature left as it was."""
    files = unpack(data)
    files["data.json"] = files["data.json"].replace(b"viewer", b"viewex", 1)
    return write_archive(files)


def write_directory(data: bytes, target: Path) -> Path:
    """Unpack a bundle into a directory (the ``--bundle DIR`` form)."""
    for name, content in unpack(data).items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return target


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A metric sample's value, 0 when it was never set."""
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
