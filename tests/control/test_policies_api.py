"""The admin API's draft: policies, history, audit, data documents, validation and evaluation."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import pytest
from control_support import ApiClient, bearer, create_tokens, snapshot

from pdp.control.auth import Role
from pdp.control.plane import ControlPlane
from pdp.control.server import ControlServer

SEEDED = ["confidential-certification-required", "data-residency-required",
          "enterprise-sla-minimum", "https-required", "restricted-countries"]

EU_ONLY: dict[str, Any] = {
    "id": "eu-only", "name": "EU only", "type": "data_residency", "severity": "high",
    "rule": {"allowed_countries": ["DE", "FR"]},
}


@pytest.fixture
def editor(tokens: dict[Role, str]) -> dict[str, str]:
    """Headers of an editor."""
    return bearer(tokens[Role.EDITOR])


async def test_an_empty_database_is_seeded_with_the_five_default_policies(
        client: ApiClient, editor: dict[str, str]) -> None:
    """A fresh control plane starts with the built-in policies and marketplace data."""
    listed = await (await client.get("/v1/policies", headers=editor)).json()
    assert [p["policy"]["id"] for p in listed["policies"]] == SEEDED
    data = await (await client.get("/v1/data/users", headers=editor)).json()
    assert "user-456" in data["document"]


async def test_seeding_happens_once(plane: ControlPlane, client: ApiClient,
                                    editor: dict[str, str]) -> None:
    """A deleted default policy stays deleted when the control plane restarts."""
    from control_support import MARKETPLACE

    from pdp.control.seed import seed_if_empty

    await client.delete("/v1/policies/https-required", headers=editor)
    assert await seed_if_empty(plane.pool, MARKETPLACE) is False
    missing = await client.get("/v1/policies/https-required", headers=editor)
    assert missing.status == 404


async def test_create_returns_201_with_version_1(client: ApiClient,
                                                 editor: dict[str, str]) -> None:
    """A created policy gets version 1, an ETag and a Location."""
    answer = await client.post("/v1/policies", json=EU_ONLY, headers=editor)
    body = await answer.json()
    assert answer.status == 201
    assert body["version"] == 1 and body["policy"]["version"] == 1
    assert answer.headers["ETag"] == '"1"'
    assert answer.headers["Location"] == "/v1/policies/eu-only"


async def test_an_invalid_policy_is_refused_with_the_field_path(
        plane: ControlPlane, client: ApiClient, editor: dict[str, str]) -> None:
    """A wrong type deep in a rule answers 400 naming the field, and nothing is stored."""
    before = await snapshot(plane.pool)
    bad = {**EU_ONLY, "rule": {"allowed_countries": "DE"}}
    answer = await client.post("/v1/policies", json=bad, headers=editor)
    body = await answer.json()
    assert answer.status == 400
    assert any(e["field"].startswith("rule.allowed_countries") for e in body["errors"])
    assert await snapshot(plane.pool) == before


async def test_an_unknown_field_is_refused_with_its_path(client: ApiClient,
                                                         editor: dict[str, str]) -> None:
    """Unknown fields are errors, not silently dropped."""
    answer = await client.post("/v1/policies", json={**EU_ONLY, "colour": "red"}, headers=editor)
    body = await answer.json()
    assert answer.status == 400
    assert [e["field"] for e in body["errors"]] == ["colour"]


async def test_malformed_json_is_a_400_with_the_parse_error(client: ApiClient,
                                                            editor: dict[str, str]) -> None:
    """A body that is not JSON answers 400 saying so."""
    answer = await client.post("/v1/policies", data=b"{nope", headers=editor)
    assert answer.status == 400
    assert "invalid JSON" in (await answer.json())["message"]


async def test_a_body_over_one_mebibyte_is_a_413(client: ApiClient,
                                                 editor: dict[str, str]) -> None:
    """Oversized bodies are refused before parsing."""
    body = io.BytesIO(b"[" + b"1," * 600_000 + b"1]")
    answer = await client.put("/v1/data/big", data=body, headers=editor)
    assert answer.status == 413


async def test_creating_an_existing_id_is_a_409(client: ApiClient,
                                                editor: dict[str, str]) -> None:
    """Create never overwrites."""
    answer = await client.post("/v1/policies", json={**EU_ONLY, "id": "https-required"},
                               headers=editor)
    assert answer.status == 409
    assert (await answer.json())["code"] == "already_exists"


async def test_creates_of_one_new_id_at_once_are_one_201_and_409s(
        plane: ControlPlane, client: ApiClient, editor: dict[str, str]) -> None:
    """Two admins applying the same new policy at once: one creates it, the others get 409."""
    answers = await asyncio.gather(*(client.post("/v1/policies", json=EU_ONLY, headers=editor)
                                     for _ in range(8)))
    assert sorted(a.status for a in answers) == [201] + [409] * 7
    history = await (await client.get("/v1/policies/eu-only/history", headers=editor)).json()
    assert [v["version"] for v in history["versions"]] == [1]


async def test_update_with_the_current_version_increments_it(client: ApiClient,
                                                             editor: dict[str, str]) -> None:
    """If-Match with the current version succeeds and bumps the version."""
    await client.post("/v1/policies", json=EU_ONLY, headers=editor)
    changed = {**EU_ONLY, "severity": "low"}
    answer = await client.put("/v1/policies/eu-only", json=changed,
                              headers={**editor, "If-Match": '"1"'})
    body = await answer.json()
    assert answer.status == 200
    assert body["version"] == 2 and body["policy"]["severity"] == "low"


async def test_update_with_a_stale_version_is_a_409_and_changes_nothing(
        plane: ControlPlane, client: ApiClient, editor: dict[str, str]) -> None:
    """Two editors from the same version: the second write is refused."""
    await client.post("/v1/policies", json=EU_ONLY, headers=editor)
    await client.put("/v1/policies/eu-only", json={**EU_ONLY, "severity": "low"},
                     headers={**editor, "If-Match": '"1"'})
    before = await snapshot(plane.pool)
    answer = await client.put("/v1/policies/eu-only", json={**EU_ONLY, "severity": "critical"},
                              headers={**editor, "If-Match": '"1"'})
    body = await answer.json()
    assert answer.status == 409
    assert body["code"] == "version_conflict" and body["current_version"] == 2
    assert await snapshot(plane.pool) == before


async def test_reapplying_the_same_document_keeps_the_version(client: ApiClient,
                                                              editor: dict[str, str]) -> None:
    """An update that changes nothing is not a new version."""
    await client.post("/v1/policies", json=EU_ONLY, headers=editor)
    answer = await client.put("/v1/policies/eu-only", json=EU_ONLY, headers=editor)
    assert (await answer.json())["version"] == 1


async def test_an_id_differing_from_the_url_is_refused(client: ApiClient,
                                                       editor: dict[str, str]) -> None:
    """The URL names the policy; a body naming another is a 400 on `id`."""
    answer = await client.put("/v1/policies/https-required", json=EU_ONLY, headers=editor)
    assert answer.status == 400
    assert [e["field"] for e in (await answer.json())["errors"]] == ["id"]


async def test_history_lists_every_version_with_its_actor(client: ApiClient,
                                                          editor: dict[str, str]) -> None:
    """Create, update and delete each leave a version naming who did it."""
    await client.post("/v1/policies", json=EU_ONLY, headers=editor)
    await client.put("/v1/policies/eu-only", json={**EU_ONLY, "severity": "low"}, headers=editor)
    await client.delete("/v1/policies/eu-only", headers=editor)
    history = await (await client.get("/v1/policies/eu-only/history", headers=editor)).json()
    assert [(v["version"], v["change"]) for v in history["versions"]] == [
        (3, "delete"), (2, "update"), (1, "create")]
    assert {v["actor"] for v in history["versions"]} == {"editor (editor)"}
    assert history["versions"][1]["policy"]["severity"] == "low"


async def test_every_write_leaves_one_audit_row_with_the_actor(
        client: ApiClient, editor: dict[str, str], tokens: dict[Role, str]) -> None:
    """The audit log records each accepted write and who made it."""
    await client.post("/v1/policies", json=EU_ONLY, headers=editor)
    await client.put("/v1/data/regions", json={"eu": ["DE"]}, headers=editor)
    await client.delete("/v1/policies/eu-only", headers=editor)
    audit = await (await client.get("/v1/audit", headers=editor)).json()
    mine = [(e["action"], e["target"]) for e in audit["entries"] if e["actor"] == "editor (editor)"]
    assert mine == [("policy.delete", "eu-only"), ("data.put", "regions"),
                    ("policy.create", "eu-only")]


async def test_a_deleted_policy_is_gone_from_get_and_list(client: ApiClient,
                                                          editor: dict[str, str]) -> None:
    """Soft delete hides the policy everywhere but its history."""
    answer = await client.delete("/v1/policies/https-required", headers=editor)
    assert answer.status == 200
    assert (await client.get("/v1/policies/https-required", headers=editor)).status == 404
    listed = await (await client.get("/v1/policies", headers=editor)).json()
    assert "https-required" not in [p["policy"]["id"] for p in listed["policies"]]


async def test_list_filters_by_type_and_severity(client: ApiClient,
                                                 editor: dict[str, str]) -> None:
    """Filters combine."""
    answer = await client.get("/v1/policies?type=data_residency&severity=critical",
                              headers=editor)
    listed = await answer.json()
    assert [p["policy"]["id"] for p in listed["policies"]] == ["restricted-countries"]
    assert listed["total_count"] == 1


async def test_list_filters_by_enabled_and_enforcement(client: ApiClient,
                                                      editor: dict[str, str]) -> None:
    """`enabled=false&enforcement=warn` keeps the disabled warn-only policies."""
    for policy_id, enabled, enforcement in (("w-off", False, "warn"), ("w-on", True, "warn"),
                                            ("d-off", False, "deny")):
        await client.post("/v1/policies", headers=editor, json={
            **EU_ONLY, "id": policy_id, "enabled": enabled, "enforcement": enforcement})
    answer = await client.get("/v1/policies?enabled=false&enforcement=WARN", headers=editor)
    listed = await answer.json()
    assert [p["policy"]["id"] for p in listed["policies"]] == ["w-off"]


async def test_list_pages_with_tokens_until_the_end(client: ApiClient,
                                                    editor: dict[str, str]) -> None:
    """Following next_page_token visits every policy once, in order."""
    seen: list[str] = []
    token = ""
    while True:
        query = f"/v1/policies?page_size=2&order_by=id desc&page_token={token}"
        page = await (await client.get(query, headers=editor)).json()
        seen.extend(p["policy"]["id"] for p in page["policies"])
        token = page["next_page_token"]
        if not token:
            break
    assert seen == sorted(SEEDED, reverse=True)


@pytest.mark.parametrize("query, field", [
    ("type=nonsense", "type"), ("enabled=perhaps", "enabled"), ("order_by=colour", "order_by"),
    ("page_size=0", "page_size"), ("page_token=xyz", "page_token"), ("sort=id", "sort"),
    ("enabled=1", "enabled"), ("enforcement=block", "enforcement"), ("order_by=name,", "order_by"),
])
async def test_bad_list_parameters_are_named(client: ApiClient, editor: dict[str, str],
                                             query: str, field: str) -> None:
    """Each bad list parameter answers 400 naming it."""
    answer = await client.get(f"/v1/policies?{query}", headers=editor)
    assert answer.status == 400
    assert [e["field"] for e in (await answer.json())["errors"]] == [field]


async def test_validate_checks_without_saving(plane: ControlPlane, client: ApiClient,
                                              editor: dict[str, str]) -> None:
    """Validation answers like a create would, but stores nothing."""
    before = await snapshot(plane.pool)
    good = await client.post("/v1/policies/validate", json=EU_ONLY, headers=editor)
    bad = await client.post("/v1/policies/validate", json={**EU_ONLY, "severity": "dire"},
                            headers=editor)
    assert good.status == 200 and (await good.json())["valid"] is True
    assert bad.status == 400 and [e["field"] for e in (await bad.json())["errors"]] == ["severity"]
    assert await snapshot(plane.pool) == before


async def test_data_documents_round_trip_with_versions(client: ApiClient,
                                                       editor: dict[str, str]) -> None:
    """PUT then GET returns the document; each PUT bumps its version."""
    first = await client.put("/v1/data/limits/eu", json={"max": 3}, headers=editor)
    second = await client.put("/v1/data/limits/eu", json={"max": 4}, headers=editor)
    got = await (await client.get("/v1/data/limits/eu", headers=editor)).json()
    assert (await first.json())["version"] == 1 and (await second.json())["version"] == 2
    assert got["document"] == {"max": 4}


async def test_deleting_a_document_with_a_stale_if_match_is_a_409_and_keeps_it(
        plane: ControlPlane, client: ApiClient, editor: dict[str, str]) -> None:
    """A delete based on an old read refuses, as a PUT does, instead of deleting newer data."""
    await client.put("/v1/data/limits/eu", json={"max": 3}, headers=editor)
    await client.put("/v1/data/limits/eu", json={"max": 4}, headers=editor)
    before = await snapshot(plane.pool)
    stale = await client.delete("/v1/data/limits/eu", headers={**editor, "If-Match": '"1"'})
    assert stale.status == 409 and (await stale.json())["current_version"] == 2
    assert await snapshot(plane.pool) == before
    current = await client.delete("/v1/data/limits/eu", headers={**editor, "If-Match": '"2"'})
    assert current.status == 200


async def test_overlapping_data_paths_are_refused(client: ApiClient,
                                                  editor: dict[str, str]) -> None:
    """`users` and `users/x` would both claim data.users.x: the second is a 400 on path."""
    answer = await client.put("/v1/data/users/extra", json={}, headers=editor)
    assert answer.status == 400
    assert [e["field"] for e in (await answer.json())["errors"]] == ["path"]


async def test_overlapping_data_paths_written_at_once_are_refused_one_of_them(
        plane: ControlPlane, client: ApiClient, editor: dict[str, str]) -> None:
    """`a` and `a/x` sent together: one is stored, the other is a 400, and the draft works."""
    for attempt in range(10):
        parent, child = f"race{attempt}", f"race{attempt}/x"
        answers = await asyncio.gather(
            client.put(f"/v1/data/{parent}", json=5, headers=editor),
            client.put(f"/v1/data/{child}", json=6, headers=editor))
        assert sorted(answer.status for answer in answers) == [200, 400]
    evaluated = await client.post("/v1/evaluate/check_access", json={"input": {
        "user_id": "user-456", "service_id": "svc-1", "action": "consume"}},
                                  headers=editor)
    assert evaluated.status == 200


async def test_overlapping_documents_already_stored_are_named_not_a_500(
        plane: ControlPlane, client: ApiClient, editor: dict[str, str]) -> None:
    """A database written before overlaps were refused: evaluate says which two paths clash."""
    await plane.pool.execute(
        "INSERT INTO data_documents (path, document, version, updated_by)"
        " VALUES ('old', $1, 1, 'x'), ('old/x', $2, 1, 'x')", 5, 6)
    answer = await client.post("/v1/evaluate/check_access", json={"input": {
        "user_id": "user-456", "service_id": "svc-1", "action": "consume"}}, headers=editor)
    assert answer.status == 400
    assert "'old' and 'old/x' overlap" in (await answer.json())["message"]


async def test_data_the_core_refuses_is_refused_on_the_way_in(
        plane: ControlPlane, client: ApiClient, editor: dict[str, str]) -> None:
    """Bundle data is checked as the bundle will hold it: a 400 naming the field, nothing kept."""
    before = await snapshot(plane.pool)
    answer = await client.put("/v1/data/roles", json="oops", headers=editor)
    dangling = await client.put("/v1/data/users", json={"u-1": {"roles": ["nobody"]}},
                                headers=editor)
    assert answer.status == 400
    assert [e["field"] for e in (await answer.json())["errors"]] == ["data.roles"]
    assert dangling.status == 400
    assert "unknown role 'nobody'" in (await dangling.json())["message"]
    assert await snapshot(plane.pool) == before
    created = await client.post("/v1/policies", json=EU_ONLY, headers=editor)
    assert created.status == 201


async def test_deleting_data_others_depend_on_is_refused(
        plane: ControlPlane, client: ApiClient, editor: dict[str, str]) -> None:
    """Deleting `roles` while users hold them is a 400 that keeps the draft editable."""
    before = await snapshot(plane.pool)
    answer = await client.delete("/v1/data/roles", headers=editor)
    assert answer.status == 400
    assert "unknown role 'consumer'" in (await answer.json())["message"]
    assert await snapshot(plane.pool) == before
    created = await client.post("/v1/policies", json=EU_ONLY, headers=editor)
    assert created.status == 201
    assert (await client.delete("/v1/data/approvals", headers=editor)).status == 200


async def test_an_invalid_bundle_test_file_is_refused(client: ApiClient,
                                                      editor: dict[str, str]) -> None:
    """Test files are validated on the way in."""
    answer = await client.put("/v1/tests/broken", json={"cases": [{"name": "x"}]}, headers=editor)
    assert answer.status == 400


async def test_evaluate_runs_against_the_unpublished_draft(client: ApiClient,
                                                           editor: dict[str, str]) -> None:
    """A policy created but not published already decides in evaluate."""
    await client.post("/v1/policies", json=EU_ONLY, headers=editor)
    listing = {"service_id": "s", "name": "S", "endpoint": {"url": "https://s.example"},
               "compliance": {"data_residency": ["US"]}}
    answer = await client.post("/v1/evaluate/validate_service", json={"input": listing},
                               headers=editor)
    result = (await answer.json())["result"]
    assert answer.status == 200
    assert result["compliant"] is False
    assert [v["policy_id"] for v in result["violations"]] == ["eu-only"]


async def test_evaluate_refuses_bad_input_with_the_field(client: ApiClient,
                                                         editor: dict[str, str]) -> None:
    """Schema errors of the decision input are named under `input.`."""
    answer = await client.post("/v1/evaluate/check_access", json={"input": {"user_id": 5}},
                               headers=editor)
    body = await answer.json()
    assert answer.status == 400
    assert all(e["field"].startswith("input") for e in body["errors"])


async def test_evaluate_of_an_unknown_query_is_a_404(client: ApiClient,
                                                     editor: dict[str, str]) -> None:
    """Only the core's queries exist."""
    answer = await client.post("/v1/evaluate/launch_rockets", json={"input": {}}, headers=editor)
    assert answer.status == 404


async def test_a_client_hanging_up_mid_body_is_not_logged_as_a_database_outage(
        served: ControlServer, caplog: pytest.LogCaptureFixture) -> None:
    """Clients that drop their connection half-way through a body leave no warning about
    PostgreSQL in the log, where operators would go looking for an outage that never happened."""
    assert served.plane is not None and served.http_address is not None
    tokens = await create_tokens(served.plane.pool)
    with caplog.at_level(logging.DEBUG, logger="pdp.control"):
        for path, role in (("/v1/policies", Role.EDITOR), ("/v1/status", Role.SIDECAR)):
            _, writer = await asyncio.open_connection(served.http_address.host,
                                                      served.http_address.port)
            writer.write((f"POST {path} HTTP/1.1\r\nHost: pdp\r\n"
                          f"Authorization: Bearer {tokens[role]}\r\n"
                          "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                          '{"id":').encode())
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.3)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert sum("client gone" in r.getMessage() for r in caplog.records) == 2
