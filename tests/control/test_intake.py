"""Status reports and decision logs from sidecars, the fleet view and recent decisions (§7.4, §8.2).

The runtime's own StatusReporter and UploadSink are the clients, so the two sides are proven to
speak the same protocol.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from control_support import ApiClient, bearer
from prometheus_client import CollectorRegistry

from pdp.control.auth import Principal, Role
from pdp.control.plane import ControlPlane
from pdp.runtime.log_upload import UploadSink
from pdp.runtime.metrics import RuntimeMetrics
from pdp.runtime.status_report import StatusReporter

PUBLISHER = Principal(token_id=0, name="tester", role=Role.PUBLISHER)


def status(instance: str, sequence: int | None, state: str = "fresh") -> dict[str, Any]:
    """A status document shaped like the runtime's."""
    return {"instance_id": instance, "labels": {"pod": instance}, "state": state,
            "ready": True, "revision": None if sequence is None else str(sequence),
            "sequence": sequence, "last_error": None}


@pytest.fixture
def sidecar_token(tmp_path: Path, tokens: dict[Role, str]) -> Path:
    """A token file of the sidecar role."""
    path = tmp_path / "sidecar.token"
    path.write_text(tokens[Role.SIDECAR])
    return path


async def _fleet(client: ApiClient, tokens: dict[Role, str]) -> dict[str, Any]:
    answer = await client.get("/v1/fleet", headers=bearer(tokens[Role.VIEWER]))
    fleet: dict[str, Any] = await answer.json()
    return fleet


async def test_the_fleet_counts_sidecars_on_the_latest_bundle(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str]) -> None:
    """'N of M on revision R', with the stragglers' own revision and state."""
    await plane.publisher.publish(PUBLISHER)
    await plane.publisher.publish(PUBLISHER)
    for report in (status("a", 2), status("b", 2), status("c", 1, "last_known_good")):
        await client.post("/v1/status", json=report, headers=bearer(tokens[Role.SIDECAR]))
    fleet = await _fleet(client, tokens)
    assert fleet["summary"] == "2 of 3 on revision 2"
    assert [(s["instance_id"], s["sequence"], s["state"]) for s in fleet["sidecars"]] == [
        ("a", 2, "fresh"), ("b", 2, "fresh"), ("c", 1, "last_known_good")]


async def test_a_newer_report_replaces_the_older(client: ApiClient,
                                                 tokens: dict[Role, str]) -> None:
    """One row per instance: its latest report."""
    for sequence in (1, 2):
        await client.post("/v1/status", json=status("a", sequence),
                          headers=bearer(tokens[Role.SIDECAR]))
    fleet = await _fleet(client, tokens)
    assert [(s["instance_id"], s["sequence"]) for s in fleet["sidecars"]] == [("a", 2)]


async def test_a_malformed_report_is_refused_with_the_field(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """A report without an instance id names the missing field."""
    answer = await client.post("/v1/status", json={"state": "fresh"},
                               headers=bearer(tokens[Role.SIDECAR]))
    assert answer.status == 400
    assert [e["field"] for e in (await answer.json())["errors"]] == ["instance_id"]


@pytest.mark.parametrize("last_error", ["boom", ["boom"], {"reason": "x"}, {"message": 3}])
async def test_a_last_error_that_is_not_an_error_object_is_refused(
        client: ApiClient, tokens: dict[Role, str], last_error: object) -> None:
    """The fleet view and `pdp admin fleet` read last_error as an object with a message."""
    answer = await client.post("/v1/status", json={**status("a", 1), "last_error": last_error},
                               headers=bearer(tokens[Role.SIDECAR]))
    assert answer.status == 400
    assert [e["field"] for e in (await answer.json())["errors"]] == ["last_error"]
    assert (await _fleet(client, tokens))["total"] == 0


async def test_a_long_last_error_is_kept_shortened(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """A megabyte of error text (a hostile bundle's quoted key id) is cut in the fleet view."""
    error = {"reason": "signature_invalid", "message": "unknown key " + "k" * 1_000_000,
             "source": "http", "at": "2026-11-28T00:00:00Z", "extra": "dropped"}
    answer = await client.post("/v1/status", json={**status("a", 1), "last_error": error},
                               headers=bearer(tokens[Role.SIDECAR]))
    assert answer.status == 200
    [sidecar] = (await _fleet(client, tokens))["sidecars"]
    shown = sidecar["last_error"]
    assert shown["reason"] == "signature_invalid" and "extra" not in shown
    assert shown["message"].startswith("unknown key kkk") and len(shown["message"]) <= 1001


async def test_the_runtime_status_reporter_is_understood(
        client: ApiClient, tokens: dict[Role, str], sidecar_token: Path) -> None:
    """The sidecar's StatusReporter reaches the fleet view."""
    reporter = StatusReporter(str(client.make_url("/v1/status")), lambda: status("rt-1", None,
                                                                                 "starting"),
                              registry=CollectorRegistry(), token_file=sidecar_token)
    reporter.start()
    try:
        for _ in range(50):
            fleet = await _fleet(client, tokens)
            if fleet["total"]:
                break
            await asyncio.sleep(0.05)
    finally:
        await reporter.stop()
    assert [(s["instance_id"], s["state"]) for s in fleet["sidecars"]] == [("rt-1", "starting")]


async def test_gzip_decision_batches_are_stored_and_queryable(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """OPA's upload body: a gzip JSON array; events come back newest first and by id."""
    events = [{"decision_id": f"d-{i}", "instance_id": "a", "query": "check_access",
               "result": {"allowed": i % 2 == 0}} for i in range(3)]
    answer = await client.post(
        "/v1/logs", data=gzip.compress(json.dumps(events).encode()),
        headers={**bearer(tokens[Role.SIDECAR]), "Content-Encoding": "gzip",
                 "Content-Type": "application/json"})
    assert answer.status == 200 and (await answer.json())["accepted"] == 3
    recent = await (await client.get("/v1/decisions?limit=2",
                                     headers=bearer(tokens[Role.VIEWER]))).json()
    one = await (await client.get("/v1/decisions?decision_id=d-1",
                                  headers=bearer(tokens[Role.VIEWER]))).json()
    assert [e["decision_id"] for e in recent["decisions"]] == ["d-2", "d-1"]
    assert [e["result"] for e in one["decisions"]] == [{"allowed": False}]


async def test_an_unknown_decision_query_parameter_is_refused_by_name(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """`?since=` (not supported) or a misspelt `?limt=` is a 400 naming it, not the default."""
    answer = await client.get("/v1/decisions?limt=5&since=2026-01-01",
                              headers=bearer(tokens[Role.VIEWER]))
    assert answer.status == 400
    assert [e["field"] for e in (await answer.json())["errors"]] == ["limt", "since"]


async def test_the_runtime_upload_sink_is_understood(
        plane: ControlPlane, client: ApiClient, sidecar_token: Path) -> None:
    """The sidecar's UploadSink delivers its batch on close."""
    sink = UploadSink(str(client.make_url("/v1/logs")), metrics=RuntimeMetrics(CollectorRegistry()),
                      token_file=sidecar_token, upload_interval=0.1)
    lines = [json.dumps({"decision_id": f"u-{i}", "instance_id": "rt"}) for i in range(5)]
    await asyncio.to_thread(sink.write, lines)
    await asyncio.to_thread(sink.close)
    stored = await plane.pool.fetchval("SELECT count(*) FROM decision_logs")
    assert stored == 5


async def test_a_batch_with_one_bad_event_stores_nothing(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str]) -> None:
    """All or nothing: an event without a decision id refuses the whole batch."""
    answer = await client.post("/v1/logs", json=[{"decision_id": "ok"}, {"query": "x"}],
                               headers=bearer(tokens[Role.SIDECAR]))
    assert answer.status == 400
    assert [e["field"] for e in (await answer.json())["errors"]] == ["1.decision_id"]
    assert await plane.pool.fetchval("SELECT count(*) FROM decision_logs") == 0


async def test_retention_deletes_only_old_events(plane: ControlPlane, client: ApiClient,
                                                 tokens: dict[Role, str]) -> None:
    """Events older than the retention period are pruned; recent ones stay."""
    await client.post("/v1/logs", json=[{"decision_id": "old"}, {"decision_id": "new"}],
                      headers=bearer(tokens[Role.SIDECAR]))
    await plane.pool.execute("UPDATE decision_logs SET received_at = now() - interval '8 days'"
                             " WHERE decision_id = 'old'")
    deleted = await plane.intake.prune_decisions(older_than=7 * 24 * 3600)
    left = await plane.pool.fetch("SELECT decision_id FROM decision_logs")
    assert deleted == 1 and [r["decision_id"] for r in left] == ["new"]
