"""Admin API handlers for publishing, published bundles, tokens and the audit log."""

from __future__ import annotations

from aiohttp import web

from pdp.control.admin_routes import PLANE, Route, body_limit, principal
from pdp.control.auth import Permission
from pdp.control.database import positive_int
from pdp.control.errors import RequestError
from pdp.control.http_json import json_response, read_json_object
from pdp.core import FieldError


def _notes(body: dict[str, object]) -> str:
    notes = body.get("notes", "")
    if not isinstance(notes, str) or len(notes) > 4096:
        message = "notes must be a string of at most 4096 characters"
        raise RequestError(message, [FieldError("notes", message)])
    return notes


async def _optional_body(request: web.Request) -> dict[str, object]:
    if not request.can_read_body:
        return {}
    return await read_json_object(request, limit=body_limit(request))


async def publish(request: web.Request) -> web.Response:
    """``POST /v1/publish`` (body optional: ``{"notes": str}``): 201 with the new bundle."""
    body = await _optional_body(request)
    # The publisher hands the committed bundle to this replica's feed, so it is served at once
    # rather than after the NOTIFY round trip.
    record = await request.app[PLANE].publisher.publish(principal(request), notes=_notes(body))
    return json_response(record.to_json(), status=201)


async def rollback(request: web.Request) -> web.Response:
    """``POST /v1/rollback`` with ``{"sequence": N}``: republish N's content as a new sequence."""
    body = await read_json_object(request, limit=body_limit(request))
    sequence = positive_int(body.get("sequence"), "sequence")
    record = await request.app[PLANE].publisher.rollback(
        principal(request), sequence, notes=_notes(body)
    )
    return json_response(record.to_json(), status=201)


async def list_bundles(request: web.Request) -> web.Response:
    """``GET /v1/bundles?limit=&before=``: published bundles, newest first."""
    limit = positive_int(request.query.get("limit", "50"), "limit")
    before = (positive_int(request.query["before"], "before")
              if "before" in request.query else None)
    records = await request.app[PLANE].publisher.list_bundles(
        principal(request), limit=min(limit, 500), before=before
    )
    return json_response({"bundles": [r.to_json() for r in records]})


async def get_bundle(request: web.Request) -> web.Response:
    """``GET /v1/bundles/{sequence}``: one bundle's metadata."""
    sequence = positive_int(request.match_info["sequence"], "sequence")
    record = await request.app[PLANE].publisher.get(principal(request), sequence)
    return json_response(record.to_json())


async def diff_bundles(request: web.Request) -> web.Response:
    """``GET /v1/bundles/{from}/diff/{to}``: files added, removed and changed, with patches."""
    old = positive_int(request.match_info["from"], "from")
    new = positive_int(request.match_info["to"], "to")
    return json_response(await request.app[PLANE].publisher.diff(principal(request), old, new))


async def create_token(request: web.Request) -> web.Response:
    """``POST /v1/tokens`` with ``{"name", "role"}``: 201 with the token, shown this once."""
    body = await read_json_object(request, limit=body_limit(request))
    token, record = await request.app[PLANE].token_admin.create(
        principal(request), name=body.get("name"), role=body.get("role")
    )
    return json_response({**record.to_json(), "token": token}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    """``GET /v1/tokens``: every token's id, name, role and state (never a value)."""
    records = await request.app[PLANE].token_admin.list_tokens(principal(request))
    return json_response({"tokens": [r.to_json() for r in records]})


async def revoke_token(request: web.Request) -> web.Response:
    """``DELETE /v1/tokens/{id}``: revoke a token."""
    token_id = positive_int(request.match_info["id"], "id")
    record = await request.app[PLANE].token_admin.revoke(principal(request), token_id)
    return json_response(record.to_json())


async def audit_log(request: web.Request) -> web.Response:
    """``GET /v1/audit?limit=``: the newest audit rows."""
    limit = min(positive_int(request.query.get("limit", "100"), "limit"), 1000)
    entries = await request.app[PLANE].token_admin.audit_log(principal(request), limit=limit)
    return json_response({"entries": [e.to_json() for e in entries]})


ROUTES: list[Route] = [
    ("POST", "/v1/publish", publish, Permission.PUBLISH),
    ("POST", "/v1/rollback", rollback, Permission.PUBLISH),
    ("GET", "/v1/bundles", list_bundles, Permission.READ),
    ("GET", "/v1/bundles/{sequence}", get_bundle, Permission.READ),
    ("GET", "/v1/bundles/{from}/diff/{to}", diff_bundles, Permission.READ),
    ("GET", "/v1/tokens", list_tokens, Permission.MANAGE_TOKENS),
    ("POST", "/v1/tokens", create_token, Permission.MANAGE_TOKENS),
    ("DELETE", "/v1/tokens/{id}", revoke_token, Permission.MANAGE_TOKENS),
    ("GET", "/v1/audit", audit_log, Permission.READ),
]
"""Publishing, bundle, token and audit routes with the permission each needs."""
