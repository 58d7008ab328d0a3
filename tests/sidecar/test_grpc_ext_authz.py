"""Envoy ext_authz v3 (``Authorization/Check``) on the sidecar, over a real server and channel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from test_grpc_support import REVISION, engine_without_bundle, serving

from pdp._proto.envoy.config.core.v3 import address_pb2
from pdp._proto.envoy.service.auth.v3 import attribute_context_pb2 as attrs
from pdp._proto.envoy.service.auth.v3 import external_auth_pb2 as authz
from pdp._proto.envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc

OK = grpc.StatusCode.OK.value[0]


@pytest.fixture
async def envoy(tmp_path: Path) -> AsyncIterator[authz_grpc.AuthorizationStub]:
    """An ext_authz client (standing in for Envoy) of a sidecar serving the marketplace bundle."""
    under_test = engine_without_bundle(tmp_path)
    await under_test.activate_marketplace()
    async with serving(under_test.engine) as (_, channel):
        yield authz_grpc.AuthorizationStub(channel)


def check(method: str, path: str, user: str | None = "user-456") -> authz.CheckRequest:
    """A CheckRequest as Envoy sends it for one HTTP request from 10.0.0.7."""
    headers = {"content-type": "application/json"}
    if user is not None:
        headers["x-user-id"] = user
    return authz.CheckRequest(attributes=attrs.AttributeContext(
        source=attrs.AttributeContext.Peer(address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address="10.0.0.7", port_value=43210)
        )),
        request=attrs.AttributeContext.Request(http=attrs.AttributeContext.HttpRequest(
            method=method, path=path, headers=headers, host="api.example", scheme="https",
        )),
    ))


def header_values(options: object) -> dict[str, str]:
    """HeaderValueOption list as a plain dict."""
    return {option.header.key: option.header.value for option in options}  # type: ignore[attr-defined]


async def test_allowed_request_is_ok_with_the_decision_id(
    envoy: authz_grpc.AuthorizationStub,
) -> None:
    """An allowed request gets status OK and the decision id upstream and in dynamic metadata."""
    answer = await envoy.Check(check("GET", "/v1/services/svc-1"))
    assert answer.status.code == OK
    assert answer.WhichOneof("http_response") == "ok_response"
    decision_id = header_values(answer.ok_response.headers)["x-pdp-decision-id"]
    assert decision_id
    assert answer.dynamic_metadata["decision_id"] == decision_id
    assert answer.dynamic_metadata["bundle_revision"] == REVISION
    assert answer.dynamic_metadata["allowed"] is True


async def test_raw_headers_are_read_like_the_header_map(
    envoy: authz_grpc.AuthorizationStub,
) -> None:
    """With Envoy's encode_raw_headers the identity arrives in header_map and is still honoured."""
    request = check("GET", "/v1/services/svc-1", user=None)
    request.attributes.request.http.header_map.headers.add(key="x-user-id", raw_value=b"user-456")
    answer = await envoy.Check(request)
    assert answer.status.code == OK


async def test_denied_request_gets_a_403_with_a_reason(envoy: authz_grpc.AuthorizationStub) -> None:
    """A denial is PERMISSION_DENIED with an HTTP 403 whose JSON body says what is missing."""
    answer = await envoy.Check(check("POST", "/v1/services/svc-1/consume", user="user-789"))
    assert answer.status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    denied = answer.denied_response
    assert denied.status.code == 403
    body = json.loads(denied.body)
    assert body["allowed"] is False
    assert body["missing_permissions"] == ["service.consume"]
    assert body["reason"]
    assert header_values(denied.headers)["content-type"] == "application/json"
    assert header_values(denied.headers)["x-pdp-decision-id"] == body["decision_id"]
    assert answer.dynamic_metadata["decision_id"] == body["decision_id"]


async def test_request_without_identity_is_a_401(envoy: authz_grpc.AuthorizationStub) -> None:
    """Without the proxy's x-user-id header nobody is authenticated: 401 / UNAUTHENTICATED."""
    answer = await envoy.Check(check("GET", "/v1/services/svc-1", user=None))
    assert answer.status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert answer.denied_response.status.code == 401


async def test_malformed_request_is_a_clear_400(envoy: authz_grpc.AuthorizationStub) -> None:
    """A request the policy cannot judge is denied with 400 and a body saying why."""
    answer = await envoy.Check(check("GET", "services-without-a-slash"))
    assert answer.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert answer.denied_response.status.code == 400
    assert "path" in json.loads(answer.denied_response.body)["reason"]


async def test_no_policy_fails_the_call_with_unavailable(tmp_path: Path) -> None:
    """With no bundle the call itself fails UNAVAILABLE, so Envoy's failure_mode_allow decides."""
    async with serving(engine_without_bundle(tmp_path).engine) as (_, channel):
        with pytest.raises(aio.AioRpcError) as caught:
            await authz_grpc.AuthorizationStub(channel).Check(check("GET", "/v1/services/svc-1"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
