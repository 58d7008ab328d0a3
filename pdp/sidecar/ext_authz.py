"""Envoy's external authorization (``envoy.service.auth.v3.Authorization/Check``) over the engine.

Envoy sends the HTTP request's attributes; the core's ``authorize_http`` query maps method and
path to a route, the route to an action, and runs the access check. The answer:

- allowed: status OK, ``ok_response`` adding ``x-pdp-decision-id`` to the upstream request;
- denied: status PERMISSION_DENIED, ``denied_response`` 403 with a JSON body (``reason``,
  ``missing_permissions``, ``decision_id``) a client can act on; 401 / UNAUTHENTICATED when the
  request carries no user identity (``x-user-id``, set by the proxy after authentication);
- bad input (no method, a path not starting with ``/``, an attribute of the wrong type): status
  INVALID_ARGUMENT, ``denied_response`` 400 whose body names the problem;
- no usable policy: the *call* fails with UNAVAILABLE. Envoy applies ``failure_mode_allow`` only
  to a failed call (a CheckResponse with a non-OK status is always a denial), so this is how the
  operator's choice between failing open and failing closed is honoured.

Every answered check carries ``decision_id``, ``bundle_revision`` and ``allowed`` in
``dynamic_metadata`` so access logs and later filters can name the decision. Decisions are
synchronous in-process calls taking microseconds, far inside Envoy's 200 ms default timeout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf.struct_pb2 import Struct
from grpc import aio

from pdp._proto.envoy.config.core.v3 import base_pb2
from pdp._proto.envoy.service.auth.v3 import external_auth_pb2 as authz
from pdp._proto.envoy.type.v3 import http_status_pb2
from pdp._proto.google.rpc import status_pb2
from pdp.core import InputValidationError
from pdp.sidecar.grpc_errors import grpc_errors
from pdp.sidecar.grpc_service import DecisionEngine

SERVICE_NAME = "envoy.service.auth.v3.Authorization"
QUERY = "authorize_http"
DECISION_HEADER = "x-pdp-decision-id"


def check_input(request: authz.CheckRequest) -> dict[str, Any]:
    """The core's ``authorize_http`` input for an ext_authz CheckRequest.

    ``headers`` is Envoy's merged map; when Envoy sends raw headers (``encode_raw_headers``) they
    are merged the same way, comma-joined, so policies see one shape either way.
    """
    attributes = request.attributes
    http = attributes.request.http
    headers: dict[str, str] = dict(http.headers)
    for header in http.header_map.headers:
        value = header.value or header.raw_value.decode("utf-8", "replace")
        key = header.key.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    document: dict[str, Any] = {"method": http.method, "path": http.path, "headers": headers}
    source = attributes.source.address.socket_address.address
    if source:
        document["context"] = {"ip_address": source}
    return document


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    # Overwrite rather than append: a client must not smuggle its own decision id upstream.
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def _metadata(values: Mapping[str, Any]) -> Struct:
    struct = Struct()
    struct.update({key: value for key, value in values.items() if value is not None})
    return struct


def _denied(
    code: int, http_status: int, body: Mapping[str, Any], decision_id: str
) -> authz.CheckResponse:
    headers = [_header("content-type", "application/json")]
    if decision_id:
        headers.append(_header(DECISION_HEADER, decision_id))
    return authz.CheckResponse(
        status=status_pb2.Status(code=code, message=str(body.get("reason", ""))),
        denied_response=authz.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status),  # type: ignore[arg-type]
            headers=headers,
            body=json.dumps(body, separators=(",", ":")),
        ),
    )


# The google.rpc code that goes with each HTTP status the core may deny with.
_DENIAL_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT.value[0],
    401: grpc.StatusCode.UNAUTHENTICATED.value[0],
}
_PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]


def check_response(decision: Mapping[str, Any]) -> authz.CheckResponse:
    """An ``authorize_http`` decision as Envoy's CheckResponse.

    A denial keeps the HTTP status the core chose (400 malformed request, 401 no identity, 403
    otherwise) and the google.rpc code that goes with it.
    """
    decision_id = str(decision.get("decision_id") or "")
    allowed = bool(decision.get("allowed"))
    metadata = _metadata({
        "decision_id": decision_id,
        "bundle_revision": decision.get("bundle_revision"),
        "allowed": allowed,
        "route": decision.get("route"),
    })
    if allowed:
        response = authz.CheckResponse(
            status=status_pb2.Status(code=grpc.StatusCode.OK.value[0]),
            ok_response=authz.OkHttpResponse(headers=[_header(DECISION_HEADER, decision_id)]),
        )
    else:
        http_status = decision.get("http_status")
        if not isinstance(http_status, int) or not 400 <= http_status < 500:
            http_status = 403
        body = {
            "allowed": False,
            "reason": decision.get("reason") or "access denied",
            "missing_permissions": list(decision.get("missing_permissions") or ()),
            "decision_id": decision_id,
        }
        code = _DENIAL_CODES.get(http_status, _PERMISSION_DENIED)
        response = _denied(code, http_status, body, decision_id)
    response.dynamic_metadata.CopyFrom(metadata)
    return response


def bad_request_response(error: InputValidationError) -> authz.CheckResponse:
    """A request the policy cannot judge (no route, a malformed attribute) as a 400 denial."""
    body = {
        "allowed": False,
        "reason": str(error),
        "errors": [{"field": e.path, "message": e.message} for e in error.errors],
    }
    response = _denied(grpc.StatusCode.INVALID_ARGUMENT.value[0], 400, body, "")
    response.dynamic_metadata.CopyFrom(_metadata({"allowed": False, "error": "invalid_input"}))
    return response


class AuthorizationServicer:
    """``envoy.service.auth.v3.Authorization`` answering from the sidecar engine."""

    def __init__(self, engine: DecisionEngine) -> None:
        self._engine = engine

    @grpc_errors
    async def Check(
        self, request: authz.CheckRequest, context: aio.ServicerContext
    ) -> authz.CheckResponse:
        """Allow or deny one HTTP request; UNAVAILABLE when no policy can answer."""
        try:
            decision = self._engine.decide(QUERY, check_input(request), caller=context.peer)
        except InputValidationError as error:
            return bad_request_response(error)
        return check_response(decision)
