"""The one place where the control plane's exceptions become HTTP answers.

Every error is JSON: ``{"code": str, "message": str, "errors": [{"field", "message"}]}``, the
``errors`` list naming each offending field by its dotted path when the input was at fault.
Unexpected exceptions are logged with their traceback and answered 500 without internals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pdp.control.database import CONNECTION_ERRORS, problem
from pdp.control.errors import (
    AlreadyExistsError,
    AuthenticationError,
    BodyTooLargeError,
    ClientGoneError,
    ControlError,
    NotFoundError,
    NotPublishedError,
    PermissionDeniedError,
    PublishRefusedError,
    RequestError,
    StoreUnavailableError,
    VersionConflictError,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (status, code) of each exception class; the first match in this order wins.
_STATUS: tuple[tuple[type[ControlError], int, str], ...] = (
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "permission_denied"),
    (BodyTooLargeError, 413, "body_too_large"),
    (RequestError, 400, "invalid_request"),
    (NotFoundError, 404, "not_found"),
    (NotPublishedError, 404, "not_published"),
    (AlreadyExistsError, 409, "already_exists"),
    (VersionConflictError, 409, "version_conflict"),
    (PublishRefusedError, 422, "publish_refused"),
    (StoreUnavailableError, 503, "store_unavailable"),
)


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """An error answer with the given status."""
    body = {"code": code, "message": message, **extra}
    answer = web.Response(status=status, text=json.dumps(body), content_type="application/json")
    if status == 401:
        answer.headers["WWW-Authenticate"] = 'Bearer realm="pdp"'
    return answer


CLIENT_CLOSED_REQUEST = 499
"""nginx's "client closed request": the status of a request whose client hung up (never sent)."""


def response_for(exc: BaseException) -> web.Response:
    """The HTTP answer for `exc`."""
    if isinstance(exc, ClientGoneError):
        # Nothing to answer and nothing wrong here: not a warning, and not the 503 of a lost
        # database connection (both surface as ConnectionResetError). The status is for the
        # access log; the write that follows finds no connection.
        log.debug("client gone while serving a request: %s", exc)
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    if isinstance(exc, ControlError):
        for kind, status, code in _STATUS:
            if isinstance(exc, kind):
                extra: dict[str, Any] = {}
                if isinstance(exc, RequestError):
                    extra["errors"] = [{"field": e.path, "message": e.message} for e in exc.errors]
                if isinstance(exc, VersionConflictError):
                    extra["current_version"] = exc.current_version
                if isinstance(exc, PublishRefusedError):
                    extra["reason"] = exc.reason
                return json_error(status, code, str(exc), **extra)
    if isinstance(exc, CONNECTION_ERRORS):
        # The pool replaces a broken connection; the client's retry gets a fresh one.
        log.warning("PostgreSQL unavailable while serving a request: %s", problem(exc))
        return json_error(503, "store_unavailable", f"the database is unavailable: {problem(exc)}")
    if isinstance(exc, web.HTTPException):
        # aiohttp's own refusals (unknown route, wrong method, body too large) keep their status
        # and gain a JSON body like every other error.
        answer = json_error(exc.status, "http_" + str(exc.status), exc.reason)
        if "Allow" in exc.headers:
            answer.headers["Allow"] = exc.headers["Allow"]
        return answer
    log.error("unexpected error while serving a control-plane request", exc_info=exc)
    return json_error(500, "internal_error", "internal error; details are in the control-plane log")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn any exception escaping a handler into its JSON answer."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return response_for(exc)
    except Exception as exc:  # the one place that maps every exception
        return response_for(exc)
