"""Reading JSON request bodies within the limits of DESIGN §10, and writing JSON answers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from pdp.control.database import check_storable
from pdp.control.errors import BodyTooLargeError, ClientGoneError, RequestError
from pdp.core import MAX_JSON_DEPTH, FieldError, json_too_deep

MAX_BODY_BYTES = 1024 * 1024


def _reject_constant(name: str) -> Any:
    raise RequestError(f"invalid JSON: {name} is not a JSON value")


async def read_json(request: web.Request, *, limit: int = MAX_BODY_BYTES) -> Any:
    """The body parsed as JSON; RequestError (400) or BodyTooLargeError (413) when it is not."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError(f"request body of {request.content_length} bytes exceeds {limit}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLargeError(f"request body exceeds {limit} bytes") from None
    except ConnectionResetError:
        # aiohttp fails the read this way when the connection is lost mid-body.
        raise ClientGoneError("the client closed the connection before sending its body") from None
    except web.RequestPayloadError as exc:
        # aiohttp keeps the parser's own error (say, a gzip body that is not gzip) as the cause.
        reason = getattr(exc.__cause__, "message", None) or str(exc)
        raise RequestError(f"cannot read the request body: {reason}") from None
    if len(body) > limit:
        raise BodyTooLargeError(f"request body of {len(body)} bytes exceeds {limit}")
    if not body.strip():
        raise RequestError("the request body is empty; expected JSON", [FieldError("", "empty")])
    try:
        parsed = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestError(f"JSON nesting exceeds {MAX_JSON_DEPTH} levels") from None
    except UnicodeDecodeError as exc:
        raise RequestError(f"the body is not UTF-8 text: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise RequestError(f"invalid JSON: {exc}") from None
    if json_too_deep(parsed):
        raise RequestError(f"JSON nesting exceeds {MAX_JSON_DEPTH} levels")
    check_storable(parsed, what="the body")
    return parsed


async def read_json_object(request: web.Request, *, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object; RequestError if it is another JSON value."""
    parsed = await read_json(request, limit=limit)
    if not isinstance(parsed, dict):
        raise RequestError(f"the body must be a JSON object, got {type(parsed).__name__}",
                           [FieldError("", "expected an object")])
    return parsed


def json_response(body: Any, *, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer."""
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers=headers)


def query_params(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    """The request's query parameters, refusing any not in `allowed` by name: a misspelt
    `?limt=5` or an unsupported `?since=` was ignored, and its caller silently got the default."""
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        message = f"unknown parameter; use {', '.join(sorted(allowed))}"
        raise RequestError(f"invalid query: {unknown[0]}: {message}",
                           [FieldError(name, message) for name in unknown])
    return dict(request.query)
