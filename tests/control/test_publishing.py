"""Publishing, rollback and the bundle server (DESIGN §8.2, §8.4, §8.6)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from control_support import (
    KEY_ID,
    MARKETPLACE,
    ApiClient,
    SigningKeys,
    bearer,
    create_tokens,
    settings_for,
    snapshot,
)
from pytest_aiohttp import AiohttpClient

from pdp.bundle import Keyring, load_bundle, write_key_pair
from pdp.control.auth import Principal, Role
from pdp.control.bundle_server import CONTENT_TYPE
from pdp.control.http_app import make_app
from pdp.control.plane import ControlPlane, open_control_plane
from pdp.control.publish_pause import PublishPause

PUBLISHER = Principal(token_id=0, name="tester", role=Role.PUBLISHER)
EDITOR = Principal(token_id=0, name="tester", role=Role.EDITOR)
# Disabled, so adding it changes the bundle without breaking the marketplace's bundle tests.
EXTRA = {"id": "extra", "name": "Extra", "type": "security", "enabled": False,
         "rule": {"require_https": True}}


@pytest.fixture
async def replica(database_url: str, keys: SigningKeys, plane: ControlPlane,
                  tmp_path: Path) -> AsyncIterator[ControlPlane]:
    """A second control-plane replica on the same database (the first is `plane`), exporting
    bundles to a directory of its own, tmp/replica-published."""
    second = await open_control_plane(
        settings_for(database_url, keys, bundle_dir=tmp_path / "replica-published"),
        seed_dir=MARKETPLACE)
    yield second
    await second.close()


def _exported(plane: ControlPlane) -> Path:
    """The file a replica writes each published bundle to (DESIGN §8.4)."""
    assert plane.settings.bundle_dir is not None
    return plane.settings.bundle_dir / "main.tar.gz"


async def _stored(plane: ControlPlane, sequence: int) -> bytes:
    return (await plane.publisher.bundles.get(sequence, with_content=True)).content


async def _until_exported(plane: ControlPlane, content: bytes, *, within: float = 1.0) -> None:
    """Wait until the replica's bundle directory holds exactly `content`."""
    path = _exported(plane)
    deadline = time.monotonic() + within
    while not (path.exists() and path.read_bytes() == content):
        assert time.monotonic() < deadline, f"{path} does not hold the expected bundle"
        await asyncio.sleep(0.02)


async def _download(client: ApiClient, token: str, **headers: str) -> tuple[int, bytes, str]:
    async with client.get("/bundles/main", headers={**bearer(token), **headers}) as answer:
        return answer.status, await answer.read(), answer.headers.get("ETag", "")


async def test_sequences_strictly_increase_across_publish_and_rollback(
        plane: ControlPlane) -> None:
    """Publish, publish, roll back: 1, 2, 3."""
    first = await plane.publisher.publish(PUBLISHER)
    second = await plane.publisher.publish(PUBLISHER)
    rolled = await plane.publisher.rollback(PUBLISHER, 1)
    assert [first.sequence, second.sequence, rolled.sequence] == [1, 2, 3]
    assert rolled.rollback_of == 1


async def test_concurrent_publishes_on_two_replicas_get_distinct_sequences(
        plane: ControlPlane, replica: ControlPlane) -> None:
    """The publish lock serialises replicas: no sequence is taken twice."""
    records = await asyncio.gather(*(p.publisher.publish(PUBLISHER)
                                     for p in (plane, replica, plane, replica)))
    assert sorted(r.sequence for r in records) == [1, 2, 3, 4]


async def test_published_at_never_decreases_as_the_sequence_rises(
        plane: ControlPlane, replica: ControlPlane) -> None:
    """Under concurrent publishes on two replicas, a later sequence is never stamped earlier,
    in the bundle table or in the audit log."""
    for _ in range(3):
        await asyncio.gather(*(p.publisher.publish(PUBLISHER)
                               for _ in range(4) for p in (plane, replica)))
    rows = await plane.pool.fetch("SELECT sequence, published_at FROM bundles ORDER BY sequence")
    stamps = [r["published_at"] for r in rows]
    assert len(stamps) == 24
    assert stamps == sorted(stamps), [(r["sequence"], r["published_at"].time()) for r in rows]
    audited = await plane.pool.fetch("SELECT target, at FROM audit_log"
                                     " WHERE action = 'bundle.publish' ORDER BY target::int")
    assert [r["at"] for r in audited] == sorted(r["at"] for r in audited)


async def test_the_served_bundle_is_the_stored_one_and_verifies(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str],
        keys: SigningKeys) -> None:
    """Bytes served = bytes stored; they verify with the public key; ETag is their sha256."""
    await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    status, body, etag = await _download(client, tokens[Role.SIDECAR])
    stored = await plane.pool.fetchval("SELECT content FROM bundles WHERE sequence = 1")
    assert status == 200
    assert body == bytes(stored)
    assert etag == f'"{hashlib.sha256(body).hexdigest()}"'
    loaded = load_bundle(body, Keyring.from_paths([keys.public]), now=time.time())
    assert loaded.verified and loaded.key_id == keys.key_id
    assert loaded.contents.manifest.sequence == 1
    assert {p.id for p in loaded.policy_set.policies} == {
        "confidential-certification-required", "data-residency-required",
        "enterprise-sla-minimum", "https-required", "restricted-countries"}


async def test_the_bundle_has_the_opa_content_type(client: ApiClient,
                                                  tokens: dict[Role, str]) -> None:
    """Sidecars and OPA recognise the media type."""
    await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    async with client.get("/bundles/main", headers=bearer(tokens[Role.SIDECAR])) as answer:
        assert answer.headers["Content-Type"] == CONTENT_TYPE


async def test_an_unchanged_etag_gets_304(client: ApiClient, tokens: dict[Role, str]) -> None:
    """A client holding the latest bundle downloads nothing."""
    await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    _, _, etag = await _download(client, tokens[Role.SIDECAR])
    status, body, again = await _download(client, tokens[Role.SIDECAR], **{"If-None-Match": etag})
    assert status == 304 and body == b"" and again == etag


async def test_a_stale_etag_gets_the_new_bundle_at_once(client: ApiClient,
                                                        tokens: dict[Role, str]) -> None:
    """Even with Prefer: wait, an out-of-date client is answered without waiting."""
    await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    _, _, old = await _download(client, tokens[Role.SIDECAR])
    await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    started = time.monotonic()
    status, _, new = await _download(client, tokens[Role.SIDECAR],
                                     **{"If-None-Match": old, "Prefer": "wait=10"})
    assert status == 200 and new != old
    assert time.monotonic() - started < 1.0


async def test_a_long_poll_returns_within_100_ms_of_a_publish_on_another_replica(
        plane: ControlPlane, replica: ControlPlane, client: ApiClient,
        tokens: dict[Role, str]) -> None:
    """LISTEN/NOTIFY wakes a waiting request on every replica within milliseconds."""
    await replica.publisher.publish(PUBLISHER)
    await plane.feed.refresh()
    _, _, etag = await _download(client, tokens[Role.SIDECAR])
    waiting = asyncio.create_task(_download(client, tokens[Role.SIDECAR],
                                            **{"If-None-Match": etag, "Prefer": "wait=20"}))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await replica.publisher.publish(PUBLISHER)
    committed = time.monotonic()
    status, _, new = await waiting
    latency = time.monotonic() - committed
    assert status == 200 and new != etag
    assert latency < 0.1, f"long-poll answered {latency * 1000:.0f} ms after the publish"


async def test_a_long_poll_with_nothing_new_ends_with_304_after_the_wait(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """Prefer: wait=1 holds the request about a second, then answers 304."""
    await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    _, _, etag = await _download(client, tokens[Role.SIDECAR])
    started = time.monotonic()
    status, _, _ = await _download(client, tokens[Role.SIDECAR],
                                   **{"If-None-Match": etag, "Prefer": "wait=1"})
    assert status == 304
    assert 0.9 <= time.monotonic() - started < 3.0


async def test_nothing_published_is_a_404(client: ApiClient, tokens: dict[Role, str]) -> None:
    """Before the first publish there is no bundle to serve."""
    status, _, _ = await _download(client, tokens[Role.SIDECAR])
    assert status == 404


async def test_only_the_main_bundle_exists(client: ApiClient, tokens: dict[Role, str]) -> None:
    """Other bundle names are unknown."""
    await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    async with client.get("/bundles/other", headers=bearer(tokens[Role.SIDECAR])) as answer:
        assert answer.status == 404


async def test_a_failing_bundle_test_blocks_the_publish_and_changes_nothing(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str],
        tmp_path: Path) -> None:
    """A deny policy that breaks the marketplace tests: 422, no bundle row, no file, no audit."""
    await plane.draft.create_policy(EDITOR, {
        "id": "no-us", "name": "No US", "type": "data_residency",
        "rule": {"blocked_countries": ["US"]}})
    before = await snapshot(plane.pool)
    answer = await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    body = await answer.json()
    assert answer.status == 422
    assert body["code"] == "publish_refused" and "no-us" in body["message"]
    assert await snapshot(plane.pool) == before
    assert not (tmp_path / "published" / "main.tar.gz").exists()


async def test_rollback_serves_the_earlier_content_under_a_new_sequence(
        plane: ControlPlane, keys: SigningKeys) -> None:
    """After a bad change, rolling back restores the old policies; the sequence still rises."""
    await plane.publisher.publish(PUBLISHER)
    await plane.draft.create_policy(EDITOR, EXTRA)
    await plane.publisher.publish(PUBLISHER)
    rolled = await plane.publisher.rollback(PUBLISHER, 1)
    stored = await plane.publisher.bundles.get(rolled.sequence, with_content=True)
    loaded = load_bundle(stored.content, Keyring.from_paths([keys.public]), now=time.time())
    assert loaded.contents.manifest.sequence == 3
    assert loaded.contents.manifest.metadata["rollback_of"] == 1
    assert loaded.policy_set.get("extra") is None
    assert len(loaded.policy_set.policies) == 5


async def test_decisions_and_rollback_survive_a_rotated_signing_key(
        plane: ControlPlane, database_url: str, tmp_path: Path) -> None:
    """A replica restarted with a new signing key still decides on the bundle the old key signed,
    and rolls back to it, re-signed with the new key."""
    await plane.publisher.publish(PUBLISHER)
    rotated = SigningKeys(*write_key_pair(tmp_path / "rotated", "cp-rotated"), "cp-rotated")
    second = await open_control_plane(settings_for(database_url, rotated), seed_dir=MARKETPLACE)
    try:
        latest = second.feed.latest
        assert latest is not None and latest.key_id == KEY_ID
        policy_set = await second.publisher.policy_set(latest)
        assert len(policy_set.policies) == 5
        rolled = await second.publisher.rollback(PUBLISHER, 1)
        assert rolled.key_id == "cp-rotated"
    finally:
        await second.close()


async def test_rolling_back_to_an_unknown_sequence_is_a_404(client: ApiClient,
                                                            tokens: dict[Role, str]) -> None:
    """Only published sequences can be restored."""
    answer = await client.post("/v1/rollback", json={"sequence": 42},
                               headers=bearer(tokens[Role.PUBLISHER]))
    assert answer.status == 404


async def test_each_publish_is_written_atomically_into_the_bundle_dir(
        plane: ControlPlane, tmp_path: Path) -> None:
    """--bundle-dir holds the latest bundle, byte for byte, and no temporary files."""
    await plane.publisher.publish(PUBLISHER)
    record = await plane.publisher.publish(PUBLISHER)
    directory = tmp_path / "published"
    stored = await plane.publisher.bundles.get(record.sequence, with_content=True)
    assert (directory / "main.tar.gz").read_bytes() == stored.content
    assert [p.name for p in directory.iterdir()] == ["main.tar.gz"]


async def test_a_publish_on_one_replica_is_written_to_every_replicas_bundle_dir(
        plane: ControlPlane, replica: ControlPlane) -> None:
    """Each replica's --bundle-dir follows publishes and rollbacks made on any replica."""
    first = await plane.publisher.publish(PUBLISHER)
    await _until_exported(plane, await _stored(plane, first.sequence), within=0)
    await _until_exported(replica, await _stored(plane, first.sequence))
    await plane.publisher.publish(PUBLISHER)
    rolled = await replica.publisher.rollback(PUBLISHER, first.sequence)
    await _until_exported(replica, await _stored(plane, rolled.sequence), within=0)
    await _until_exported(plane, await _stored(plane, rolled.sequence))


async def test_a_replica_writes_the_latest_bundle_when_it_starts(
        plane: ControlPlane, database_url: str, keys: SigningKeys, tmp_path: Path) -> None:
    """A replica (re)started after publishes replaces its directory's old bundle at once."""
    first = await plane.publisher.publish(PUBLISHER)
    latest = await plane.publisher.publish(PUBLISHER)
    directory = tmp_path / "restarted"
    directory.mkdir()
    (directory / "main.tar.gz").write_bytes(await _stored(plane, first.sequence))
    late = await open_control_plane(settings_for(database_url, keys, bundle_dir=directory),
                                    seed_dir=None)
    try:
        assert _exported(late).read_bytes() == await _stored(plane, latest.sequence)
    finally:
        await late.close()


async def test_a_late_notice_of_an_older_bundle_leaves_the_newer_one_in_the_bundle_dir(
        plane: ControlPlane) -> None:
    """Out-of-order or concurrent news of bundles never moves the directory back a sequence."""
    first = await plane.publisher.publish(PUBLISHER)
    second = await plane.publisher.publish(PUBLISHER)
    newest = await plane.publisher.bundles.get(second.sequence, with_content=True)
    older = await plane.publisher.bundles.get(first.sequence, with_content=True)
    await asyncio.gather(plane.feed.adopt(newest), plane.feed.adopt(older), plane.feed.refresh())
    await plane.feed.adopt(older)
    assert _exported(plane).read_bytes() == newest.content
    assert plane.feed.latest is not None and plane.feed.latest.sequence == second.sequence


async def test_a_bundle_dir_that_could_not_be_written_catches_up_at_the_next_recheck(
        plane: ControlPlane) -> None:
    """A failed write does not fail the publish, and is retried until it succeeds."""
    directory = _exported(plane).parent
    directory.mkdir(parents=True, exist_ok=True)
    _exported(plane).mkdir()  # a directory in the way makes every write fail
    record = await plane.publisher.publish(PUBLISHER)
    _exported(plane).rmdir()
    await _until_exported(plane, await _stored(plane, record.sequence), within=2.0)


async def test_diff_names_the_changed_policy_files(plane: ControlPlane, client: ApiClient,
                                                   tokens: dict[Role, str]) -> None:
    """Between two bundles the diff lists what was added, removed and changed."""
    await plane.publisher.publish(PUBLISHER)
    await plane.draft.create_policy(EDITOR, EXTRA)
    await plane.draft.put_document(EDITOR, "data", "regions", {"eu": ["DE"]}, None)
    await plane.publisher.publish(PUBLISHER)
    answer = await client.get("/v1/bundles/1/diff/2", headers=bearer(tokens[Role.VIEWER]))
    diff = await answer.json()
    assert diff["added"] == ["policies/extra.json"]
    assert diff["removed"] == []
    assert diff["changed"] == [".manifest", "data.json"]
    assert '"regions"' in diff["patches"]["data.json"]


async def test_bundles_are_listed_newest_first(plane: ControlPlane, client: ApiClient,
                                               tokens: dict[Role, str]) -> None:
    """The bundle list shows sequence, publisher and notes."""
    await client.post("/v1/publish", json={"notes": "first"},
                      headers=bearer(tokens[Role.PUBLISHER]))
    await client.post("/v1/publish", json={"notes": "second"},
                      headers=bearer(tokens[Role.ADMIN]))
    listed = await (await client.get("/v1/bundles", headers=bearer(tokens[Role.VIEWER]))).json()
    assert [(b["sequence"], b["notes"], b["published_by"]) for b in listed["bundles"]] == [
        (2, "second", "admin (admin)"), (1, "first", "publisher (publisher)")]


async def test_shutting_down_answers_held_long_polls_at_once(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str]) -> None:
    """A stopping replica answers 304 to waiting sidecars instead of holding its shutdown."""
    await client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER]))
    _, _, etag = await _download(client, tokens[Role.SIDECAR])
    waiting = asyncio.create_task(_download(client, tokens[Role.SIDECAR],
                                            **{"If-None-Match": etag, "Prefer": "wait=30"}))
    await asyncio.sleep(0.2)
    plane.feed.release_waiters()
    status, _, _ = await asyncio.wait_for(waiting, 2)
    assert status == 304


async def test_a_publish_reads_the_draft_as_of_one_moment(
        database_url: str, keys: SigningKeys, plane: ControlPlane) -> None:
    """Policies and data edited while a publish reads the draft (between its reads of the two)
    reach the bundle together or not at all: never the new data beside the old policies."""
    pausing = await open_control_plane(settings_for(database_url, keys), seed_dir=MARKETPLACE,
                                       publish_pause=PublishPause("draft_read", 1.0))
    try:
        publishing = asyncio.create_task(pausing.publisher.publish(PUBLISHER))
        await asyncio.sleep(0.5)  # inside the pause: the policies are read, the data not yet
        await plane.draft.create_policy(EDITOR, EXTRA)
        await plane.draft.put_document(EDITOR, "data", "regions", {"eu": ["DE"]}, None)
        record = await publishing
    finally:
        await pausing.close()
    loaded = load_bundle(await plane.pool.fetchval(
        "SELECT content FROM bundles WHERE sequence = $1", record.sequence),
        Keyring.from_paths([keys.public]), now=time.time())
    has_policy = loaded.policy_set.get("extra") is not None
    has_data = "regions" in loaded.policy_set.data
    assert has_policy == has_data, (has_policy, has_data)


async def test_a_publish_whose_connection_is_terminated_names_the_lost_connection(
        database_url: str, keys: SigningKeys, aiohttp_client: AiohttpClient) -> None:
    """A publish whose database session is killed answers 503 saying the connection to
    PostgreSQL was lost, not asyncpg's "released back to the pool" (which reads as our bug)."""
    pausing = await open_control_plane(settings_for(database_url, keys), seed_dir=MARKETPLACE,
                                       publish_pause=PublishPause("after_lock", 1.0))
    try:
        client = await aiohttp_client(make_app(pausing))
        tokens = await create_tokens(pausing.pool)
        publishing = asyncio.create_task(
            client.post("/v1/publish", headers=bearer(tokens[Role.PUBLISHER])))
        await asyncio.sleep(0.5)  # inside the pause: the publish lock is held
        killed = await pausing.pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query LIKE '%coalesce(max(sequence)%' AND pid <> pg_backend_pid()")
        assert killed == 1
        answer = await publishing
        assert answer.status == 503
        body = await answer.json()
        assert "the connection to PostgreSQL was lost" in body["message"], body
        assert "pool" not in body["message"], body
    finally:
        await pausing.close()
