"""Admin API handlers for the draft: policies, data documents, bundle tests, evaluate.

Handlers only translate HTTP to calls on :class:`~pdp.control.draft.Draft` and back; permissions,
validation and audit happen there, error answers in :mod:`pdp.control.http_errors`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pdp.control.auth import Permission, Principal
from pdp.control.database import positive_int
from pdp.control.draft import policy_spec
from pdp.control.errors import RequestError
from pdp.control.http_errors import Handler
from pdp.control.http_json import json_response, read_json, read_json_object
from pdp.control.listing import query_from_params
from pdp.control.plane import ControlPlane
from pdp.core import FieldError

PLANE = web.AppKey("control_plane", ControlPlane)

Route = tuple[str, str, Handler, Permission]
"""An API route and the permission it needs, checked before its body is read."""
PRINCIPAL = web.RequestKey("principal", Principal)


def principal(request: web.Request) -> Principal:
    """The caller, authenticated by the app's middleware."""
    return request[PRINCIPAL]


def body_limit(request: web.Request) -> int:
    """The largest accepted request body."""
    return request.app[PLANE].settings.max_body_bytes


def expected_version(request: web.Request, body: Any = None) -> int | None:
    """The version a write is based on: ``If-Match``, else the body's ``version``, else None."""
    header = request.headers.get("If-Match")
    if header is not None:
        try:
            return positive_int(header.strip().removeprefix("W/").strip('"'), "If-Match")
        except RequestError:
            message = f"If-Match must be a policy version such as \"3\", got {header!r}"
            raise RequestError(message, [FieldError("If-Match", message)]) from None
    if isinstance(body, dict) and isinstance(body.get("version"), int):
        # Bounded so a huge number is a 400, not a database error; 0 stays a plain 409.
        return positive_int(body["version"], "version", minimum=0)
    return None


async def list_policies(request: web.Request) -> web.Response:
    """``GET /v1/policies?type=&enabled=&severity=&enforcement=&order_by=&page_size=&page_token=``
    (parsed as in :mod:`pdp.core.policy_query`)."""
    query = query_from_params(dict(request.query))
    records, total = await request.app[PLANE].draft.list_policies(principal(request), query)
    return json_response({
        "policies": [r.to_json() for r in records],
        "next_page_token": query.next_page_token(total),
        "total_count": total,
    })


async def get_policy(request: web.Request) -> web.Response:
    """``GET /v1/policies/{id}``; the ETag is the version, for a later ``If-Match``."""
    record = await request.app[PLANE].draft.get_policy(principal(request), request.match_info["id"])
    return json_response(record.to_json(), headers={"ETag": f'"{record.version}"'})


async def create_policy(request: web.Request) -> web.Response:
    """``POST /v1/policies`` with a policy document: 201, or 409 if the id exists."""
    body = await read_json_object(request, limit=body_limit(request))
    record = await request.app[PLANE].draft.create_policy(principal(request), body)
    return json_response(record.to_json(), status=201,
                         headers={"ETag": f'"{record.version}"',
                                  "Location": f"/v1/policies/{record.id}"})


async def update_policy(request: web.Request) -> web.Response:
    """``PUT /v1/policies/{id}``; a stale ``If-Match`` (or body version) answers 409."""
    body = await read_json_object(request, limit=body_limit(request))
    record = await request.app[PLANE].draft.update_policy(
        principal(request), request.match_info["id"], body, expected_version(request, body)
    )
    return json_response(record.to_json(), headers={"ETag": f'"{record.version}"'})


async def delete_policy(request: web.Request) -> web.Response:
    """``DELETE /v1/policies/{id}`` (``If-Match`` optional)."""
    policy_id = request.match_info["id"]
    deleted_at = await request.app[PLANE].draft.delete_policy(
        principal(request), policy_id, expected_version(request)
    )
    return json_response({"id": policy_id, "deleted": True, "deleted_at": deleted_at.isoformat()})


async def policy_history(request: web.Request) -> web.Response:
    """``GET /v1/policies/{id}/history``: every version, newest first."""
    versions = await request.app[PLANE].draft.policy_history(
        principal(request), request.match_info["id"]
    )
    return json_response({"id": request.match_info["id"],
                          "versions": [v.to_json() for v in versions]})


async def validate_policy(request: web.Request) -> web.Response:
    """``POST /v1/policies/validate``: 200 with the normalised document, or 400 with the errors."""
    body = await read_json(request, limit=body_limit(request))
    document = await request.app[PLANE].draft.validate_policy(principal(request), body)
    return json_response({"valid": True, "policy": policy_spec(document)})


def _kind(request: web.Request) -> str:
    return "tests" if request.path.startswith("/v1/tests") else "data"


async def list_documents(request: web.Request) -> web.Response:
    """``GET /v1/data`` or ``GET /v1/tests``: every document with its version."""
    kind = _kind(request)
    documents = await request.app[PLANE].draft.list_documents(principal(request), kind)
    return json_response({"documents": [d.to_json() for d in documents]})


async def get_document(request: web.Request) -> web.Response:
    """``GET /v1/data/{path}`` or ``GET /v1/tests/{name}``."""
    stored = await request.app[PLANE].draft.get_document(
        principal(request), _kind(request), request.match_info["path"]
    )
    return json_response(stored.to_json(), headers={"ETag": f'"{stored.version}"'})


async def put_document(request: web.Request) -> web.Response:
    """``PUT /v1/data/{path}`` or ``PUT /v1/tests/{name}`` with the document as the body."""
    body = await read_json(request, limit=body_limit(request))
    stored = await request.app[PLANE].draft.put_document(
        principal(request), _kind(request), request.match_info["path"], body,
        expected_version(request),
    )
    return json_response(stored.to_json(), headers={"ETag": f'"{stored.version}"'})


async def delete_document(request: web.Request) -> web.Response:
    """``DELETE /v1/data/{path}`` or ``DELETE /v1/tests/{name}`` (``If-Match`` optional)."""
    path = request.match_info["path"]
    await request.app[PLANE].draft.delete_document(principal(request), _kind(request), path,
                                                   expected_version(request))
    return json_response({"path": path, "deleted": True})


async def evaluate(request: web.Request) -> web.Response:
    """``POST /v1/evaluate/{query}`` with ``{"input": ..., "explain": bool}``, on the draft."""
    body = await read_json_object(request, limit=body_limit(request))
    if "input" not in body:
        raise RequestError("the body needs an 'input' object", [FieldError("input", "required")])
    explain = body.get("explain", False)
    if not isinstance(explain, bool):
        raise RequestError("explain must be true or false", [FieldError("explain", "not a bool")])
    decision = await request.app[PLANE].draft.evaluate(
        principal(request), request.match_info["query"], body["input"], explain=explain
    )
    return json_response({"result": decision, "revision": "draft"})


def _document_routes(prefix: str) -> list[Route]:
    return [
        ("GET", prefix, list_documents, Permission.READ),
        ("GET", prefix + "/{path:.+}", get_document, Permission.READ),
        ("PUT", prefix + "/{path:.+}", put_document, Permission.EDIT),
        ("DELETE", prefix + "/{path:.+}", delete_document, Permission.EDIT),
    ]


ROUTES: list[Route] = [
    ("GET", "/v1/policies", list_policies, Permission.READ),
    ("POST", "/v1/policies", create_policy, Permission.EDIT),
    ("POST", "/v1/policies/validate", validate_policy, Permission.EVALUATE),
    ("GET", "/v1/policies/{id}", get_policy, Permission.READ),
    ("PUT", "/v1/policies/{id}", update_policy, Permission.EDIT),
    ("DELETE", "/v1/policies/{id}", delete_policy, Permission.EDIT),
    ("GET", "/v1/policies/{id}/history", policy_history, Permission.READ),
    *_document_routes("/v1/data"),
    *_document_routes("/v1/tests"),
    ("POST", "/v1/evaluate/{query}", evaluate, Permission.EVALUATE),
]
"""The draft's routes: method, path, handler and the permission checked before the handler."""
