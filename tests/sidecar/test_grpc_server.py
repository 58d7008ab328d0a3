"""The sidecar's gRPC server: health, reflection, limits, metrics and status mapping."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from test_grpc_support import engine_without_bundle, serving

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp._proto.policyengine.v1 import policy_engine_pb2_grpc as pb_grpc
from pdp.sidecar.errors import StartupError
from pdp.sidecar.grpc_server import MAX_MESSAGE_BYTES, SidecarGrpcServer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health_of(channel: aio.Channel, service: str = "") -> Any:
    """The grpc.health.v1 status the server reports for ``service``."""
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return answer.status


async def test_health_is_serving_once_a_bundle_is_active(tmp_path: Path) -> None:
    """grpc.health.v1 says NOT_SERVING before the first bundle and SERVING after it."""
    under_test = engine_without_bundle(tmp_path)
    async with serving(under_test.engine) as (_, channel):
        assert await health_of(channel) == NOT_SERVING
        await under_test.activate_marketplace()
        for _ in range(100):
            if await health_of(channel) == SERVING:
                break
            await asyncio.sleep(0.02)
        assert await health_of(channel) == SERVING
        assert await health_of(channel, "policyengine.v1.PolicyEngineService") == SERVING
        assert await health_of(channel, "envoy.service.auth.v3.Authorization") == SERVING


async def test_health_watch_streams_the_change_to_serving(tmp_path: Path) -> None:
    """A Watch stream (Kubernetes and Envoy probes) sees the switch to SERVING."""
    under_test = engine_without_bundle(tmp_path)
    async with serving(under_test.engine) as (_, channel):
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == NOT_SERVING
        await under_test.activate_marketplace()
        assert (await asyncio.wait_for(watch.read(), 5)).status == SERVING
        watch.cancel()


async def test_reflection_lists_the_served_services(tmp_path: Path) -> None:
    """Server reflection names every service, so grpcurl works without .proto files."""
    async with serving(engine_without_bundle(tmp_path).engine) as (_, channel):
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        answer = await call.read()
        await call.done_writing()
    names = {service.name for service in answer.list_services_response.service}
    assert {
        "policyengine.v1.PolicyEngineService",
        "envoy.service.auth.v3.Authorization",
        "grpc.health.v1.Health",
    } <= names


async def test_reflection_describes_the_contract(tmp_path: Path) -> None:
    """Reflection serves the .proto of PolicyEngineService, so clients can build requests."""
    async with serving(engine_without_bundle(tmp_path).engine) as (_, channel):
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="policyengine.v1.PolicyEngineService"
        ))
        answer = await call.read()
        await call.done_writing()
    assert answer.file_descriptor_response.file_descriptor_proto


async def test_messages_over_four_mebibytes_are_refused(tmp_path: Path) -> None:
    """A request above the 4 MiB limit is RESOURCE_EXHAUSTED, before any evaluation."""
    under_test = engine_without_bundle(tmp_path)
    await under_test.activate_marketplace()
    async with serving(under_test.engine) as (server, _):
        channel = aio.insecure_channel(
            f"127.0.0.1:{server.port}",
            options=[("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES)],
        )
        stub = pb_grpc.PolicyEngineServiceStub(channel)
        request = pb.ValidateConsumptionRequest(
            consumer_id="user-456",
            service_id="svc-1",
            request_payload="x" * (MAX_MESSAGE_BYTES + 1),
        )
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.ValidateConsumption(request)
        await channel.close()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_request_counter_counts_by_method_and_code(tmp_path: Path) -> None:
    """Given the runtime's request counter, gRPC calls are counted by method and status code."""
    under_test = engine_without_bundle(tmp_path)
    await under_test.activate_marketplace()
    counter = under_test.engine.metrics.grpc_requests
    async with serving(under_test.engine, request_counter=counter) as (_, channel):
        stub = pb_grpc.PolicyEngineServiceStub(channel)
        await stub.HealthCheck(pb.HealthCheckRequest())
        await stub.HealthCheck(pb.HealthCheckRequest())
        with pytest.raises(aio.AioRpcError):
            await stub.DeletePolicy(pb.DeletePolicyRequest(policy_id="https-required"))

    def count(method: str, code: str) -> float | None:
        return under_test.registry.get_sample_value(
            "pdp_grpc_requests_total",
            {"method": f"/policyengine.v1.PolicyEngineService/{method}", "code": code},
        )

    assert count("HealthCheck", "OK") == 2
    assert count("DeletePolicy", "FAILED_PRECONDITION") == 1


async def test_busy_address_is_a_startup_error(tmp_path: Path) -> None:
    """Binding a port that is taken fails start-up with a message naming the address."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        server = SidecarGrpcServer(engine_without_bundle(tmp_path).engine, address)
        with pytest.raises(StartupError, match=address):
            await server.start()


async def test_a_second_server_cannot_take_a_busy_port(tmp_path: Path) -> None:
    """Without reuse_port, a second sidecar on the same port fails instead of sharing it."""
    engine = engine_without_bundle(tmp_path).engine
    async with serving(engine) as (first, _):
        second = SidecarGrpcServer(engine, f"127.0.0.1:{first.port}")
        with pytest.raises(StartupError):
            await second.start()


async def test_workers_share_a_port_with_reuse_port(tmp_path: Path) -> None:
    """With reuse_port, two workers bind one port and both serve (SO_REUSEPORT scaling)."""
    under_test = engine_without_bundle(tmp_path)
    await under_test.activate_marketplace()
    first = SidecarGrpcServer(under_test.engine, "127.0.0.1:0", reuse_port=True)
    port = await first.start()
    second = SidecarGrpcServer(under_test.engine, f"127.0.0.1:{port}", reuse_port=True)
    try:
        assert await second.start() == port
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await pb_grpc.PolicyEngineServiceStub(channel).HealthCheck(
                pb.HealthCheckRequest()
            )
        assert answer.status == pb.HealthCheckResponse.SERVING
    finally:
        await second.stop(0)
        await first.stop(0)


async def test_the_decision_log_names_the_grpc_caller(tmp_path: Path) -> None:
    """With a decision log, each gRPC decision records the peer address it came from."""
    stream = io.StringIO()
    under_test = engine_without_bundle(tmp_path, decision_stream=stream)
    await under_test.engine.start()
    await under_test.activate_marketplace()
    async with serving(under_test.engine) as (_, channel):
        await pb_grpc.PolicyEngineServiceStub(channel).CheckAccess(
            pb.CheckAccessRequest(user_id="user-456", service_id="svc-1", action="consume"))
    await under_test.engine.stop()  # flushes the log
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [event["query"] for event in events] == ["check_access"]
    assert events[0]["caller"].startswith("ipv4:127.0.0.1:")


class _BrokenEngine:
    """An engine whose every call fails unexpectedly (a bug), to see how the shell answers."""

    active = None

    def decide(self, query: str, raw_input: object, *, explain: bool = False,
               caller: str = "") -> dict[str, Any]:
        raise RuntimeError("boom")

    def ready(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        raise RuntimeError("boom")


async def test_unexpected_errors_are_internal_never_unknown() -> None:
    """A bug surfaces as INTERNAL with a neutral message, not UNKNOWN or a stack trace."""
    async with serving(_BrokenEngine()) as (_, channel):  # type: ignore[arg-type]
        stub = pb_grpc.PolicyEngineServiceStub(channel)
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.ValidateService(pb.ValidateServiceRequest(service_id="svc-1"))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "boom" not in (caught.value.details() or "")
