"""The one place where the gRPC shell turns exceptions into gRPC status codes.

Every servicer method runs under :func:`grpc_errors` (a decorator), so an exception of any layer
leaves the server as a deliberate status, never as grpc's ``UNKNOWN``:

=====================================  =====================
exception                              status
=====================================  =====================
pdp.core.InputValidationError          INVALID_ARGUMENT (the message names each field path;
                                       also PolicyQueryError: filter, order_by, page token...)
a request that does not decode         INVALID_ARGUMENT (see :func:`tolerant_deserializer`)
pdp.sidecar.errors.RequestError        INVALID_ARGUMENT (a missing policy_id...)
PolicyNotFoundError                    NOT_FOUND
pdp.core.UnknownQueryError             NOT_FOUND
PolicyWriteRefusedError                FAILED_PRECONDITION
pdp.runtime.errors.NotReadyError       UNAVAILABLE
anything else                          INTERNAL (logged with its traceback)
=====================================  =====================

The two errors declared here are raised only by the gRPC policy methods; they extend the sidecar's
tree (``pdp.sidecar.errors.SidecarError``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from pdp.core import InputValidationError, UnknownQueryError
from pdp.runtime.errors import NotReadyError
from pdp.sidecar.errors import MalformedBodyError, RequestError, SidecarError

_log = logging.getLogger(__name__)

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
Handler = Callable[[Any, _Request, aio.ServicerContext], Awaitable[_Response]]


class PolicyNotFoundError(SidecarError):
    """No policy with the requested id in the active policy set."""

    def __init__(self, policy_id: str) -> None:
        super().__init__(f"policy {policy_id!r} not found in the active policy set")
        self.policy_id = policy_id


class PolicyWriteRefusedError(SidecarError):
    """A create, update or delete reached a sidecar, whose policies come only from bundles."""


@dataclass(frozen=True, slots=True)
class UndecodableRequest:
    """Stands in for a request message whose bytes did not parse (``reason`` says why)."""

    message_type: str
    reason: str


def tolerant_deserializer(
    parse: Callable[[bytes], Any], message_type: str
) -> Callable[[bytes], Any]:
    """A request deserializer that hands undecodable bytes on as :class:`UndecodableRequest`.

    grpc answers a deserializer exception with INTERNAL; bad bytes from a client are the client's
    error, so :func:`grpc_errors` turns the stand-in into INVALID_ARGUMENT instead.
    """

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return UndecodableRequest(message_type, str(exc) or "truncated or invalid encoding")

    return deserialize


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and details message that answer ``exc``."""
    if isinstance(exc, InputValidationError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, RequestError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, PolicyNotFoundError | UnknownQueryError):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, PolicyWriteRefusedError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, NotReadyError):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    return grpc.StatusCode.INTERNAL, "internal error; the sidecar log has the details"


async def abort_with(context: aio.ServicerContext, exc: BaseException) -> NoReturn:
    """End the call with the status that answers ``exc`` (unexpected ones are logged first)."""
    code, details = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        _log.error("unexpected error in a gRPC call", exc_info=exc)
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # grpc.aio's abort always raises


def grpc_errors(method: Handler[_Request, _Response]) -> Handler[_Request, _Response]:
    """Wrap a servicer method so that every exception it raises becomes a deliberate status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: _Request, context: aio.ServicerContext) -> _Response:
        try:
            if isinstance(request, UndecodableRequest):
                raise MalformedBodyError(
                    f"request is not a valid {request.message_type}: {request.reason}"
                )
            return await method(self, request, context)
        except aio.AbortError:
            raise  # the method already chose its status
        except Exception as exc:
            await abort_with(context, exc)

    return wrapper
