"""Arbitrary gRPC decision requests never crash the sidecar: an answer or INVALID_ARGUMENT, always.

Requests are generated from the message descriptors, so every field of every decision request
(and of Envoy's CheckRequest) is exercised with arbitrary text, numbers (NaN and infinities
included), lists and maps; raw bytes exercise the decoder. One server serves the whole module
from a background thread, and the checks use a plain synchronous channel.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_grpc_support import engine_without_bundle

from pdp._proto.envoy.service.auth.v3 import external_auth_pb2 as authz
from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp.sidecar.grpc_server import SidecarGrpcServer

ANSWERED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: st.text(max_size=30),
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=30),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.floats(),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_ENUM: st.integers(0, 3),
}


def _fill(message: Message, data: st.DataObject, depth: int) -> None:
    """Set a random subset of ``message``'s fields to arbitrary values."""
    descriptor: Descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        if not data.draw(st.booleans()):
            continue
        sub = field.message_type
        if sub is not None and sub.GetOptions().map_entry:
            entries = data.draw(st.dictionaries(st.text(max_size=12), st.text(max_size=30),
                                                max_size=4))
            getattr(message, field.name).update(entries)
        elif sub is not None:
            if depth > 3 or sub.full_name.startswith("google.protobuf."):
                continue
            count = data.draw(st.integers(0, 3)) if field.is_repeated else 1
            for _ in range(count):
                child = (getattr(message, field.name).add() if field.is_repeated
                         else getattr(message, field.name))
                _fill(child, data, depth + 1)
                if not field.is_repeated:
                    child.SetInParent()
        elif field.is_repeated:
            getattr(message, field.name).extend(data.draw(st.lists(_SCALARS[field.type],
                                                                   max_size=4)))
        else:
            setattr(message, field.name, data.draw(_SCALARS[field.type]))


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    """A channel to a sidecar (marketplace bundle) running on its own event loop thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        under_test = engine_without_bundle(tmp_path_factory.mktemp("fuzz"))
        await under_test.activate_marketplace()
        server = SidecarGrpcServer(under_test.engine, "127.0.0.1:0")
        holder["port"] = await server.start()
        holder["server"] = server
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(30)
    started.wait(30)
    with grpc.insecure_channel(f"127.0.0.1:{holder['port']}") as opened:
        yield opened
    asyncio.run_coroutine_threadsafe(holder["server"].stop(0), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


def _status(channel: grpc.Channel, method: str, request: bytes) -> grpc.StatusCode:
    call = channel.unary_unary(method)
    try:
        call(request, timeout=10)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


DECISIONS = [
    ("/policyengine.v1.PolicyEngineService/ValidateService", pb.ValidateServiceRequest),
    ("/policyengine.v1.PolicyEngineService/CheckAccess", pb.CheckAccessRequest),
    ("/policyengine.v1.PolicyEngineService/ValidateConsumption", pb.ValidateConsumptionRequest),
]


@pytest.mark.parametrize(("method", "request_type"), DECISIONS)
@FUZZ
@given(data=st.data())
def test_arbitrary_decision_requests_are_answered(
    channel: grpc.Channel, method: str, request_type: type[Message], data: st.DataObject
) -> None:
    """Whatever a client puts in a decision request, it gets a decision or INVALID_ARGUMENT."""
    request = request_type()
    _fill(request, data, 0)
    code = _status(channel, method, request.SerializeToString())
    event(f"status {code.name}")  # --hypothesis-show-statistics shows both outcomes occur
    assert code in ANSWERED


@FUZZ
@given(data=st.data())
def test_arbitrary_envoy_checks_are_answered(channel: grpc.Channel, data: st.DataObject) -> None:
    """Any CheckRequest gets a CheckResponse (allow or a denial), never a failed call."""
    request = authz.CheckRequest()
    _fill(request, data, 0)
    method = "/envoy.service.auth.v3.Authorization/Check"
    assert _status(channel, method, request.SerializeToString()) == grpc.StatusCode.OK


@pytest.mark.parametrize(("method", "request_type"), DECISIONS)
@FUZZ
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_are_answered(
    channel: grpc.Channel, method: str, request_type: type[Message], raw: bytes
) -> None:
    """Bytes that may not even be protobuf get a decision or INVALID_ARGUMENT, never INTERNAL."""
    assert _status(channel, method, raw) in ANSWERED


def test_fuzz_server_really_answers(channel: grpc.Channel) -> None:
    """The fuzzed server is the real one: a known listing gets a compliant decision."""
    call = channel.unary_unary(DECISIONS[0][0],
                               response_deserializer=pb.ValidateServiceResponse.FromString)
    answer = call(pb.ValidateServiceRequest(
        service_id="svc-1", environment="development",
        compliance=pb.ServiceCompliance(level="public", data_residency=["DE"]),
    ).SerializeToString(), timeout=10)
    assert answer.compliant, answer
