"""Hostile input to the admin API: whatever the body, the answer is a 4xx or a success, never a 5xx,
and a refused body changes nothing."""

from __future__ import annotations

import base64
from typing import Any

from control_support import ApiClient, bearer, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.control.auth import Role
from pdp.control.plane import ControlPlane

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=20,
)

# Policy-shaped documents get past the first checks, so the deeper validation is exercised too.
POLICY_LIKE = st.fixed_dictionaries(
    {"id": st.text(max_size=12), "name": st.text(max_size=12),
     "type": st.sampled_from(["security", "data_residency", "custom", "nope"])},
    optional={"rule": JSON, "when": JSON, "severity": JSON, "enabled": JSON, "metadata": JSON},
)

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=JSON | POLICY_LIKE)
async def test_no_policy_body_causes_a_server_error(plane: ControlPlane, client: ApiClient,
                                                    tokens: dict[Role, str], body: Any) -> None:
    """POST /v1/policies answers 201 or 4xx; a refusal leaves the database as it was."""
    before = await snapshot(plane.pool)
    answer = await client.post("/v1/policies", json=body, headers=bearer(tokens[Role.EDITOR]))
    assert answer.status < 500, await answer.text()
    if answer.status >= 400:
        assert await snapshot(plane.pool) == before


@FUZZ
@given(body=JSON, query=st.sampled_from(["validate_service", "check_access",
                                         "validate_consumption", "authorize_http"]))
async def test_no_evaluate_input_causes_a_server_error(client: ApiClient, tokens: dict[Role, str],
                                                       body: Any, query: str) -> None:
    """Evaluate refuses bad decision input with a 4xx, never a 5xx."""
    answer = await client.post(f"/v1/evaluate/{query}", json={"input": body},
                               headers=bearer(tokens[Role.EDITOR]))
    assert answer.status < 500, await answer.text()


@FUZZ
@given(body=JSON)
async def test_no_data_document_causes_a_server_error(client: ApiClient, tokens: dict[Role, str],
                                                      body: Any) -> None:
    """Any JSON document is stored or refused with a 4xx (PostgreSQL's limits included)."""
    answer = await client.put("/v1/data/fuzz", json=body, headers=bearer(tokens[Role.EDITOR]))
    assert answer.status < 500, await answer.text()


async def test_text_postgres_cannot_store_is_a_400(client: ApiClient,
                                                   tokens: dict[Role, str]) -> None:
    """A NUL character or a lone surrogate is valid JSON but not storable: a clear 400."""
    for text in ('{"a": "\\u0000"}', '{"a": "\\ud800"}'):
        answer = await client.put("/v1/data/odd", data=text.encode(),
                                  headers=bearer(tokens[Role.EDITOR]))
        assert answer.status == 400, (text, await answer.text())


async def test_unstorable_characters_in_the_url_are_not_a_server_error(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """A NUL in a path segment is a 4xx (no such policy or a bad path), never a 500."""
    for path in ("/v1/policies/a%00b", "/v1/policies/a%00b/history", "/v1/data/a%00b",
                 "/v1/tests/a%00b", "/v1/decisions?decision_id=a%00b", "/bundles/a%00b"):
        answer = await client.get(path, headers=bearer(tokens[Role.EDITOR]))
        assert 400 <= answer.status < 500, (path, answer.status)


TOO_BIG = "99999999999999999999"  # past PostgreSQL's bigint


async def test_numbers_past_what_the_database_holds_are_a_400(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str]) -> None:
    """Sequences, ids, versions, limits and page offsets too large for a bigint: 4xx, unchanged."""
    admin = bearer(tokens[Role.ADMIN])
    token = base64.urlsafe_b64encode(f"o:{TOO_BIG}".encode()).decode().rstrip("=")
    before = await snapshot(plane.pool)
    answers = [
        await client.get(f"/v1/bundles/{TOO_BIG}", headers=admin),
        await client.get(f"/v1/bundles?before={TOO_BIG}", headers=admin),
        await client.get(f"/v1/bundles/1/diff/{TOO_BIG}", headers=admin),
        await client.delete(f"/v1/tokens/{TOO_BIG}", headers=admin),
        await client.post("/v1/rollback", data=f'{{"sequence": {TOO_BIG}}}'.encode(),
                          headers={**admin, "Content-Type": "application/json"}),
        await client.get(f"/v1/policies?page_token={token}", headers=admin),
        await client.get(f"/v1/policies?page_size={TOO_BIG}", headers=admin),
        await client.put("/v1/policies/https-required", json={"description": "x"},
                         headers={**admin, "If-Match": TOO_BIG}),
        await client.post("/v1/status", json={"instance_id": "x", "state": "fresh",
                                              "sequence": int(TOO_BIG)},
                          headers=bearer(tokens[Role.SIDECAR])),
    ]
    assert [answer.status for answer in answers] == [400] * len(answers)
    assert await snapshot(plane.pool) == before


async def test_versions_are_ascii_digits(client: ApiClient, tokens: dict[Role, str]) -> None:
    """int() reads "٣" as 3 and fails on "²"; If-Match takes neither."""
    for version in ("٣", "²"):
        answer = await client.put("/v1/policies/https-required", json={"description": "x"},
                                  headers={**bearer(tokens[Role.EDITOR]), "If-Match": version})
        assert answer.status == 400, version
        assert [e["field"] for e in (await answer.json())["errors"]] == ["If-Match"]


async def test_a_body_that_claims_gzip_but_is_not_is_a_400(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """A Content-Encoding the body does not match is the client's error."""
    answer = await client.post("/v1/policies", data=b"garbage", headers={
        **bearer(tokens[Role.EDITOR]), "Content-Encoding": "gzip",
        "Content-Type": "application/json"})
    assert answer.status == 400
    assert (await answer.json())["message"] == (
        "cannot read the request body: Can not decode content-encoding: gzip")


async def test_a_number_too_large_for_json_is_a_400_everywhere(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str]) -> None:
    """`1e400` parses as infinity, which JSON cannot carry and jsonb cannot store: a 400 naming
    the field on every route that stores or answers JSON, and nothing changes."""
    editor = {**bearer(tokens[Role.EDITOR]), "Content-Type": "application/json"}
    sidecar = {**bearer(tokens[Role.SIDECAR]), "Content-Type": "application/json"}
    policy = ('{"id": "big", "name": "Big", "type": "security", "rule": {"require_https": true},'
              ' "metadata": {"x": 1e400}}')
    before = await snapshot(plane.pool)
    answers = [
        await client.put("/v1/data/big", data=b'{"a": 1e400}', headers=editor),
        await client.post("/v1/policies", data=policy.encode(), headers=editor),
        await client.post("/v1/policies/validate", data=policy.encode(), headers=editor),
        await client.post("/v1/status", data=b'{"instance_id": "z", "state": "fresh",'
                          b' "x": 1e400}', headers=sidecar),
        await client.post("/v1/logs", data=b'[{"decision_id": "d", "input": {"a": 1e400}}]',
                          headers=sidecar),
    ]
    assert [answer.status for answer in answers] == [400] * len(answers)
    assert [e["field"] for e in (await answers[0].json())["errors"]] == ["a"]
    assert await snapshot(plane.pool) == before
