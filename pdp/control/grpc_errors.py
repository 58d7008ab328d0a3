"""The one place where the control plane's exceptions become gRPC status codes (DESIGN §9).

Every servicer method runs under :func:`grpc_errors`, so nothing leaves as ``UNKNOWN``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc import aio

from pdp.control.database import CONNECTION_ERRORS, problem
from pdp.control.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ControlError,
    NotFoundError,
    NotPublishedError,
    PermissionDeniedError,
    PublishRefusedError,
    RequestError,
    StoreUnavailableError,
    VersionConflictError,
)
from pdp.sidecar.grpc_errors import UndecodableRequest

log = logging.getLogger(__name__)

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
Handler = Callable[[Any, _Request, aio.ServicerContext], Awaitable[_Response]]

_CODES: tuple[tuple[type[ControlError], grpc.StatusCode], ...] = (
    (AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (RequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (VersionConflictError, grpc.StatusCode.ABORTED),
    (NotPublishedError, grpc.StatusCode.FAILED_PRECONDITION),
    (PublishRefusedError, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and details that answer `exc`."""
    if isinstance(exc, ControlError):
        for kind, code in _CODES:
            if isinstance(exc, kind):
                return code, str(exc)
    if isinstance(exc, CONNECTION_ERRORS):
        return grpc.StatusCode.UNAVAILABLE, f"the database is unavailable: {problem(exc)}"
    return grpc.StatusCode.INTERNAL, "internal error; the control-plane log has the details"


def grpc_errors(method: Handler[_Request, _Response]) -> Handler[_Request, _Response]:
    """Wrap a servicer method so that every exception becomes a deliberate status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: _Request, context: aio.ServicerContext) -> _Response:
        try:
            if isinstance(request, UndecodableRequest):
                raise RequestError(
                    f"request is not a valid {request.message_type}: {request.reason}"
                )
            return await method(self, request, context)
        except aio.AbortError:
            raise
        except Exception as exc:
            code, details = status_for(exc)
            if code is grpc.StatusCode.INTERNAL:
                log.error("unexpected error in a control-plane gRPC call", exc_info=exc)
            await context.abort(code, details)
            raise AssertionError("context.abort returned") from exc  # it always raises

    return wrapper
