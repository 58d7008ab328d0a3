"""The one place where exceptions become HTTP answers.

:func:`response_for` is called by the app's one middleware (``pdp.sidecar.http_app``) for any
exception a handler raises, aiohttp's own ``HTTPException`` answers included. Every error answer
is a JSON object ``{"code": str, "message": str}`` (OPA's error shape), plus
``"errors": [{"field", "message"}]`` when the input failed the schema. An unexpected exception is
logged with its traceback and answered with a bare 500 that carries no internals.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from pdp.core import InputValidationError, UnknownQueryError
from pdp.runtime.errors import NotReadyError
from pdp.sidecar.errors import BodyTooLargeError, RequestError

logger = logging.getLogger(__name__)

def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"code": code, "message": message, **extra}


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """An error answer with the given status."""
    return web.Response(
        status=status,
        text=json.dumps(error_body(code, message, **extra)),
        content_type="application/json",
    )


def response_for(exc: BaseException) -> web.Response:
    """Map one exception to its HTTP answer; unknown exceptions become a 500 without details."""
    if isinstance(exc, BodyTooLargeError):
        return json_error(413, exc.code, str(exc))
    if isinstance(exc, RequestError):
        return json_error(400, exc.code, str(exc))
    if isinstance(exc, InputValidationError):
        errors = [{"field": err.path, "message": err.message} for err in exc.errors]
        summary = "; ".join(f"{err['field'] or 'input'}: {err['message']}" for err in errors)
        return json_error(400, "invalid_parameter", summary or str(exc), errors=errors)
    if isinstance(exc, UnknownQueryError):
        return json_error(404, "resource_not_found", str(exc))
    if isinstance(exc, NotReadyError):
        return json_error(503, "not_ready", str(exc) or "no active bundle")
    if isinstance(exc, web.HTTPException):
        # aiohttp's own answers (404 unknown route, 405 wrong method, 413) arrive as exceptions;
        # they keep their status and headers but get our JSON body.
        answer = json_error(exc.status, _code_for_status(exc.status), exc.reason)
        for name in ("Allow",):
            if name in exc.headers:
                answer.headers[name] = exc.headers[name]
        return answer
    logger.error("unexpected error while serving a request", exc_info=exc)
    return json_error(500, "internal_error", "internal error; details are in the sidecar log")


def _code_for_status(status: int) -> str:
    if status == 404:
        return "resource_not_found"
    if status == 405:
        return "method_not_allowed"
    if status == 413:
        return BodyTooLargeError.code
    return "invalid_request" if status < 500 else "internal_error"
