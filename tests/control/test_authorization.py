"""Authorization (DESIGN §8.3): every HTTP endpoint by every role, no token and a revoked token.

The documented matrix: viewer reads; editor reads, edits and evaluates; publisher reads and
publishes; admin does everything including tokens; sidecar only downloads bundles and reports
its status and decisions. Everyone may
download bundles. A missing, unknown or revoked token is 401; a wrong role is 403; and a refused
request leaves the database exactly as it was.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from control_support import ApiClient, bearer, snapshot

from pdp.control.auth import SYSTEM_ACTOR, Principal, Role
from pdp.control.plane import ControlPlane

READERS = {Role.ADMIN, Role.EDITOR, Role.PUBLISHER, Role.VIEWER}
EDITORS = {Role.ADMIN, Role.EDITOR}
PUBLISHERS = {Role.ADMIN, Role.PUBLISHER}
ADMINS = {Role.ADMIN}
EVERYONE = set(Role)
REPORTERS = {Role.ADMIN, Role.SIDECAR}

SYSTEM = Principal(token_id=0, name="matrix-setup", role=Role.ADMIN)
_counter = itertools.count()

PASSING_TEST = {"name": "consumer may consume", "query": "check_access",
                "input": {"user_id": "user-456", "service_id": "svc-1", "action": "consume",
                          "context": {"ip_address": "10.0.0.7"}},
                "expect": {"allowed": True}}


def fresh_id(prefix: str) -> str:
    """A name no other request of the matrix uses."""
    return f"{prefix}-{next(_counter)}"


def disabled_policy(policy_id: str) -> dict[str, Any]:
    """A policy that never decides anything, so publishing stays possible."""
    return {"id": policy_id, "name": policy_id, "type": "security", "enabled": False,
            "rule": {"require_https": True}}


Prepare = Callable[[ControlPlane], Awaitable[tuple[str, Any]]]


@dataclass
class Endpoint:
    """One operation of the API: how to call it and who may."""

    method: str
    path: str
    allowed: set[Role]
    success: int = 200
    body: Any = None
    prepare: Prepare | None = field(default=None)

    async def request(self, plane: ControlPlane) -> tuple[str, Any]:
        """The path and body of one call, after any setup it needs."""
        if self.prepare is not None:
            return await self.prepare(plane)
        return self.path, self.body


async def _policy_to_delete(plane: ControlPlane) -> tuple[str, Any]:
    policy_id = fresh_id("doomed")
    await plane.draft.create_policy(SYSTEM, disabled_policy(policy_id))
    return f"/v1/policies/{policy_id}", None


async def _new_policy(plane: ControlPlane) -> tuple[str, Any]:
    return "/v1/policies", disabled_policy(fresh_id("new"))


async def _document_to_delete(plane: ControlPlane) -> tuple[str, Any]:
    path = fresh_id("doomed")
    await plane.draft.put_document(SYSTEM, "data", path, {"x": 1}, None)
    return f"/v1/data/{path}", None


async def _test_to_delete(plane: ControlPlane) -> tuple[str, Any]:
    name = fresh_id("doomed")
    await plane.draft.put_document(SYSTEM, "tests", name, PASSING_TEST, None)
    return f"/v1/tests/{name}", None


async def _token_to_revoke(plane: ControlPlane) -> tuple[str, Any]:
    _, record = await plane.token_admin.create(SYSTEM, name=fresh_id("doomed"), role="viewer")
    return f"/v1/tokens/{record.id}", None


async def _changed_policy(plane: ControlPlane) -> tuple[str, Any]:
    current = (await plane.draft.get_policy(SYSTEM, "https-required")).spec
    return "/v1/policies/https-required", {**current, "description": fresh_id("changed")}


LISTING = {"service_id": "s", "name": "S", "endpoint": {"url": "https://s.example"}}

ENDPOINTS = [
    Endpoint("GET", "/v1/policies", READERS),
    Endpoint("GET", "/v1/policies/https-required", READERS),
    Endpoint("GET", "/v1/policies/https-required/history", READERS),
    Endpoint("POST", "/v1/policies", EDITORS, 201, prepare=_new_policy),
    Endpoint("PUT", "/v1/policies/https-required", EDITORS, prepare=_changed_policy),
    Endpoint("DELETE", "", EDITORS, prepare=_policy_to_delete),
    Endpoint("POST", "/v1/policies/validate", EDITORS, body=disabled_policy("checked")),
    Endpoint("GET", "/v1/data", READERS),
    Endpoint("GET", "/v1/data/users", READERS),
    Endpoint("PUT", "/v1/data/matrix", EDITORS, body={"k": "v"}),
    Endpoint("DELETE", "", EDITORS, prepare=_document_to_delete),
    Endpoint("GET", "/v1/tests", READERS),
    Endpoint("GET", "/v1/tests/check-access", READERS),
    Endpoint("PUT", "/v1/tests/matrix", EDITORS, body=PASSING_TEST),
    Endpoint("DELETE", "", EDITORS, prepare=_test_to_delete),
    Endpoint("POST", "/v1/evaluate/validate_service", EDITORS, body={"input": LISTING}),
    Endpoint("POST", "/v1/publish", PUBLISHERS, 201, body={"notes": "matrix"}),
    Endpoint("POST", "/v1/rollback", PUBLISHERS, 201, body={"sequence": 1}),
    Endpoint("GET", "/v1/bundles", READERS),
    Endpoint("GET", "/v1/bundles/1", READERS),
    Endpoint("GET", "/v1/bundles/1/diff/1", READERS),
    Endpoint("GET", "/bundles/main", EVERYONE),
    Endpoint("GET", "/v1/tokens", ADMINS),
    Endpoint("POST", "/v1/tokens", ADMINS, 201, body={"name": "made", "role": "viewer"}),
    Endpoint("DELETE", "", ADMINS, prepare=_token_to_revoke),
    Endpoint("GET", "/v1/audit", READERS),
    Endpoint("POST", "/v1/status", REPORTERS,
             body={"instance_id": "sc-1", "state": "fresh", "revision": "1", "sequence": 1}),
    Endpoint("POST", "/v1/logs", REPORTERS,
             body=[{"decision_id": "d-1", "instance_id": "sc-1", "query": "check_access"}]),
    Endpoint("GET", "/v1/fleet", READERS),
    Endpoint("GET", "/v1/decisions", READERS),
]


async def _call(client: ApiClient, endpoint: Endpoint, path: str, body: Any,
                headers: dict[str, str]) -> int:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    async with client.request(endpoint.method, path, **kwargs) as answer:
        await answer.read()
        return answer.status


async def _published_once(plane: ControlPlane) -> None:
    admin = Principal(token_id=0, name=SYSTEM_ACTOR, role=Role.ADMIN)
    await plane.publisher.publish(admin)
    await plane.feed.refresh()


async def test_every_endpoint_answers_each_role_as_documented(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str]) -> None:
    """Allowed roles succeed; every other role gets 403 and leaves no trace in the database."""
    await _published_once(plane)
    wrong: list[str] = []
    for endpoint, role in itertools.product(ENDPOINTS, Role):
        path, body = await endpoint.request(plane)
        before = await snapshot(plane.pool)
        status = await _call(client, endpoint, path, body, bearer(tokens[role]))
        expected = endpoint.success if role in endpoint.allowed else 403
        if status != expected:
            wrong.append(f"{endpoint.method} {path} as {role}: {status}, expected {expected}")
        elif expected == 403 and await snapshot(plane.pool) != before:
            wrong.append(f"{endpoint.method} {path} as {role}: refused but changed the database")
    assert not wrong, "\n".join(wrong)


async def test_every_endpoint_refuses_a_missing_or_unknown_token_with_401(
        plane: ControlPlane, client: ApiClient) -> None:
    """No token, a malformed header or an unknown token: 401, and nothing changes."""
    await _published_once(plane)
    headers_variants = [{}, {"Authorization": "Basic dXNlcjpwdw=="},
                        bearer("pdp_not-a-real-token")]
    wrong: list[str] = []
    for endpoint, headers in itertools.product(ENDPOINTS, headers_variants):
        path, body = await endpoint.request(plane)
        before = await snapshot(plane.pool)
        status = await _call(client, endpoint, path, body, headers)
        if status != 401 or await snapshot(plane.pool) != before:
            wrong.append(f"{endpoint.method} {path} with {headers}: {status}")
    assert not wrong, "\n".join(wrong)


async def test_a_token_with_bytes_no_token_holds_is_a_401(client: ApiClient) -> None:
    """A header byte that is not UTF-8 (sent raw, as a hostile client may) is an unknown token,
    not a server error."""
    assert client.server.host is not None and client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /v1/policies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pdp_\xff\r\n"
                 b"Connection: close\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"401"


async def test_a_revoked_token_is_refused_from_the_next_request(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """Revocation takes effect at once."""
    admin = bearer(tokens[Role.ADMIN])
    created = await (await client.post("/v1/tokens", json={"name": "temp", "role": "editor"},
                                       headers=admin)).json()
    assert (await client.get("/v1/policies", headers=bearer(created["token"]))).status == 200
    await client.delete(f"/v1/tokens/{created['id']}", headers=admin)
    answer = await client.get("/v1/policies", headers=bearer(created["token"]))
    assert answer.status == 401
    assert "revoked" in (await answer.json())["message"]


async def test_revoking_a_revoked_token_changes_nothing_and_is_not_audited(
        plane: ControlPlane, client: ApiClient, tokens: dict[Role, str]) -> None:
    """A second DELETE answers as the first did and leaves no second audit row."""
    admin = bearer(tokens[Role.ADMIN])
    created = await (await client.post("/v1/tokens", json={"name": "temp", "role": "editor"},
                                       headers=admin)).json()
    first = await client.delete(f"/v1/tokens/{created['id']}", headers=admin)
    second = await client.delete(f"/v1/tokens/{created['id']}", headers=admin)
    assert first.status == second.status == 200
    assert (await first.json())["revoked_at"] == (await second.json())["revoked_at"]
    audited = await plane.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'token.revoke' AND target = $1",
        str(created["id"]))
    assert audited == 1


async def test_health_needs_no_token(client: ApiClient) -> None:
    """Probes work without credentials; readiness reports the database."""
    assert (await client.get("/health/live")).status == 200
    ready = await client.get("/health/ready")
    assert ready.status == 200 and (await ready.json())["status"] == "ok"


async def test_tokens_are_stored_only_as_hashes(plane: ControlPlane,
                                                tokens: dict[Role, str]) -> None:
    """No token value appears anywhere in the database."""
    rows = await snapshot(plane.pool)
    text = repr(rows)
    assert not any(token in text for token in tokens.values())


async def test_a_wrong_role_is_refused_before_the_body_is_read(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """A viewer sending garbage to a write endpoint learns it may not write, not what is wrong."""
    answer = await client.post("/v1/policies", data=b"{not json",
                               headers=bearer(tokens[Role.VIEWER]))
    assert answer.status == 403


async def test_a_token_name_with_control_characters_is_refused(
        client: ApiClient, tokens: dict[Role, str]) -> None:
    """Token names are shown on terminals (token lists, the audit log): printable text only."""
    answer = await client.post("/v1/tokens", json={"name": "ci\x1b[2Kbot", "role": "viewer"},
                               headers=bearer(tokens[Role.ADMIN]))
    assert answer.status == 400
    assert [e["field"] for e in (await answer.json())["errors"]] == ["name"]
