"""Publishing: draft → bundle → bundle tests → signature → stored row → NOTIFY.

A publish holds the publish advisory lock throughout, so replicas never race for a sequence: it
reads the draft in one REPEATABLE READ snapshot, builds and signs outside any transaction, then
inserts the bundle and its audit row in one short transaction, so a crash leaves either no new
bundle or a complete one. The candidate is loaded with
:func:`pdp.bundle.load_bundle` — the very check a sidecar runs (signature, hashes, compilation,
bundle tests) — before it is stored: what the control plane serves, sidecars accept. After the
commit the new bundle is handed to ``on_published`` (the replica's bundle feed, which serves it and
writes ``--bundle-dir``); other replicas learn of it from the NOTIFY or their re-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import asyncpg

from pdp.bundle import Keyring, Signer, build_bundle, compile_contents, load_bundle
from pdp.bundle.archive import Limits, read_bundle_files
from pdp.bundle.contents import json_bytes, parse_contents
from pdp.bundle.errors import BundleError
from pdp.bundle.manifest import DEFAULT_ROOTS, MANIFEST_FILE, Manifest, timestamp
from pdp.bundle.signing import SIGNATURES_FILE
from pdp.control import audit
from pdp.control.auth import Permission, Principal
from pdp.control.bundle_store import BundleRecord, BundleStore
from pdp.control.document_store import nest_documents
from pdp.control.draft import Draft
from pdp.control.errors import PublishRefusedError
from pdp.control.metrics import ControlMetrics
from pdp.control.publish_pause import PublishPause
from pdp.core import PolicySet

Clock = Callable[[], float]
OnPublished = Callable[[BundleRecord], Awaitable[None]]


def draft_files(policies: list[dict[str, Any]], data: dict[str, Any],
                tests: Mapping[str, Any], manifest: Manifest) -> dict[str, bytes]:
    """The unsigned files of a bundle holding the given draft."""
    files = {f"policies/{spec['id']}.json": json_bytes(spec) for spec in policies}
    files["data.json"] = json_bytes(data)
    files.update({f"tests/{name}.json": json_bytes(doc) for name, doc in tests.items()})
    files[MANIFEST_FILE] = manifest.to_json_bytes()
    return files


class Publisher:
    """Publish, roll back and read published bundles."""

    def __init__(self, pool: asyncpg.Pool, draft: Draft, *, signer: Signer, keyring: Keyring,
                 clock: Clock, metrics: ControlMetrics, on_published: OnPublished | None = None,
                 pause: PublishPause | None = None) -> None:
        self._pool = pool
        self._draft = draft
        self._signer = signer
        self._keyring = keyring
        self._clock = clock
        self._on_published = on_published
        self._metrics = metrics
        self._pause = pause
        self.bundles = BundleStore(pool)
        self._compiled: tuple[str, PolicySet] | None = None
        self._compile_lock = asyncio.Lock()

    async def publish(self, actor: Principal, *, notes: str = "") -> BundleRecord:
        """Publish the current draft as the next sequence."""
        actor.require(Permission.PUBLISH)
        with self._counted("publish"):
            async with self._pool.acquire() as conn, self.bundles.publishing(conn) as sequence:
                await self._reached("after_lock", sequence)
                # One snapshot for policies, data and tests: read in three statements at READ
                # COMMITTED, a draft edited meanwhile was published half old, half new.
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    policies = await self._draft.policies.live_specs(conn)
                    await self._reached("draft_read", sequence)
                    data = nest_documents(await self._draft.data.all_documents(conn))
                    tests = await self._draft.tests.all_documents(conn)
                manifest = self._manifest(sequence, {"published_by": actor.actor})
                files = draft_files(policies, data, tests, manifest)
                record = await self._store(conn, actor, files, notes=notes, rollback_of=None)
            await self._reached("after_commit", sequence)
        await self._published(record)
        return record

    async def rollback(self, actor: Principal, to_sequence: int, *,
                       notes: str = "") -> BundleRecord:
        """Publish the content of bundle `to_sequence` again, as a new and higher sequence."""
        actor.require(Permission.PUBLISH)
        earlier = await self.bundles.get(to_sequence, with_content=True)
        files = await asyncio.to_thread(read_bundle_files, earlier.content, Limits())
        files.pop(SIGNATURES_FILE, None)
        with self._counted("rollback"):
            async with self._pool.acquire() as conn, self.bundles.publishing(conn) as sequence:
                await self._reached("after_lock", sequence)
                files[MANIFEST_FILE] = self._manifest(
                    sequence, {"published_by": actor.actor, "rollback_of": to_sequence}
                ).to_json_bytes()
                record = await self._store(conn, actor, files, notes=notes,
                                           rollback_of=to_sequence)
            await self._reached("after_commit", sequence)
        await self._published(record)
        return record

    async def list_bundles(self, actor: Principal, *, limit: int = 50,
                   before: int | None = None) -> list[BundleRecord]:
        """Published bundles, newest first."""
        actor.require(Permission.READ)
        return await self.bundles.recent(limit=limit, before=before)

    async def get(self, actor: Principal, sequence: int) -> BundleRecord:
        """One published bundle's metadata."""
        actor.require(Permission.READ)
        return await self.bundles.get(sequence)

    async def diff(self, actor: Principal, from_sequence: int, to_sequence: int) -> dict[str, Any]:
        """What changed between two published bundles, file by file (signature excluded)."""
        actor.require(Permission.READ)
        old = await self.bundles.get(from_sequence, with_content=True)
        new = await self.bundles.get(to_sequence, with_content=True)
        before, after = await asyncio.gather(
            asyncio.to_thread(read_bundle_files, old.content, Limits()),
            asyncio.to_thread(read_bundle_files, new.content, Limits()),
        )
        names = (set(before) | set(after)) - {SIGNATURES_FILE}
        changed = sorted(n for n in names & set(before) & set(after) if before[n] != after[n])
        return {
            "from": from_sequence, "to": to_sequence,
            "added": sorted(names - set(before)), "removed": sorted(names - set(after)),
            "changed": changed,
            "patches": {name: "".join(difflib.unified_diff(
                before[name].decode("utf-8", "replace").splitlines(keepends=True),
                after[name].decode("utf-8", "replace").splitlines(keepends=True),
                f"{from_sequence}/{name}", f"{to_sequence}/{name}")) for name in changed},
        }

    async def policy_set(self, record: BundleRecord) -> PolicySet:
        """The compiled policy set of a published bundle (cached for the latest one asked for).

        Loading runs in a worker thread, once per bundle: a large bundle takes long enough to
        compile that doing it on the event loop would stall every other request. The signature
        is not checked again: the bytes are this control plane's own row, verified and tested
        when published, and the key that signed them may since have been rotated away (the
        keyring here trusts only the current signing key, so every decision failed until the
        next publish).
        """
        async with self._compile_lock:
            cached = self._compiled
            if cached is not None and cached[0] == record.sha256:
                return cached[1]
            policy_set = await asyncio.to_thread(self._compile_stored, record.content)
            self._compiled = (record.sha256, policy_set)
            return policy_set

    @staticmethod
    def _compile_stored(content: bytes) -> PolicySet:
        return compile_contents(parse_contents(read_bundle_files(content, Limits())))

    def _manifest(self, sequence: int, metadata: dict[str, Any]) -> Manifest:
        return Manifest(revision=str(sequence), sequence=sequence, roots=DEFAULT_ROOTS,
                        created_at=timestamp(self._clock()), metadata=metadata)

    async def _store(self, conn: asyncpg.Connection, actor: Principal, files: dict[str, bytes],
                     *, notes: str, rollback_of: int | None) -> BundleRecord:
        # Built, signed and self-checked outside any transaction (the publish lock is held).
        content, manifest = await asyncio.to_thread(self._build_and_check, files)
        async with conn.transaction():
            # published_at is stamped by the database, under the publish lock (BundleStore.insert).
            record = await self.bundles.insert(
                conn, sequence=manifest.sequence, revision=manifest.revision,
                sha256=hashlib.sha256(content).hexdigest(),
                manifest=manifest.model_dump(mode="json"), content=content,
                key_id=self._signer.key_id, published_by=actor.actor, notes=notes,
                rollback_of=rollback_of,
            )
            action = "bundle.rollback" if rollback_of is not None else "bundle.publish"
            details: dict[str, Any] = {"sha256": record.sha256, "notes": notes}
            if rollback_of is not None:
                details["rollback_of"] = rollback_of
            await audit.record(conn, actor=actor.actor, action=action,
                               target=str(record.sequence), details=details)
            await self._reached("before_commit", record.sequence)
        return record

    async def _reached(self, point: str, sequence: int) -> None:
        if self._pause is not None:
            await self._pause.reached(point, sequence)

    @contextlib.contextmanager
    def _counted(self, action: str) -> Iterator[None]:
        """Count one publish or rollback by its outcome: success, refused (the draft does not
        build or its tests fail) or error (anything else, e.g. the database went away)."""
        try:
            yield
        except PublishRefusedError:
            self._metrics.publishes.labels(action=action, result="refused").inc()
            raise
        except Exception:
            self._metrics.publishes.labels(action=action, result="error").inc()
            raise
        self._metrics.publishes.labels(action=action, result="success").inc()

    def _build_and_check(self, files: dict[str, bytes]) -> tuple[bytes, Manifest]:
        try:
            contents = parse_contents(files)
            content = build_bundle(contents, signer=self._signer)
            # The sidecar's own load path: verify, compile, run the bundle tests.
            load_bundle(content, self._keyring, now=self._clock())
        except BundleError as exc:
            raise PublishRefusedError(f"publish refused: {exc}", reason=exc.reason) from None
        return content, contents.manifest

    async def _published(self, record: BundleRecord) -> None:
        if self._on_published is not None:
            await self._on_published(record)
