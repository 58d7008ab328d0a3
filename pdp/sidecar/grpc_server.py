"""The sidecar's gRPC server: built by a factory, never at import time.

One ``grpc.aio`` server carries ``policyengine.v1.PolicyEngineService``, Envoy's
``envoy.service.auth.v3.Authorization``, ``grpc.health.v1.Health`` and server reflection (so
``grpcurl`` works without .proto files). Messages are limited to 4 MiB each way (DESIGN §10).

Health: the overall status ("") and each served service are SERVING exactly when the engine is
ready. A background task re-reads readiness every ``health_interval`` seconds so ``Watch`` streams
(Kubernetes gRPC probes, Envoy health checks) follow bundle activation and staleness.

Given a request counter (a Prometheus ``Counter`` labelled ``method`` and ``code``; the sidecar
passes the runtime's ``pdp_grpc_requests``), every call of the two pdp services is counted by its
final status code (health checks and reflection are not).
``reuse_port`` sets ``grpc.so_reuseport`` so several worker processes can share one port.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from prometheus_client import Counter

from pdp._proto.envoy.service.auth.v3 import external_auth_pb2
from pdp._proto.policyengine.v1 import policy_engine_pb2
from pdp.sidecar import ext_authz, grpc_service
from pdp.sidecar.errors import StartupError
from pdp.sidecar.grpc_errors import tolerant_deserializer
from pdp.sidecar.grpc_service import DecisionEngine

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SERVED_SERVICES = (grpc_service.SERVICE_NAME, ext_authz.SERVICE_NAME)

_Behavior = Callable[[Any, aio.ServicerContext], Awaitable[Any]]


def method_handlers(
    descriptor: ServiceDescriptor, servicer: object, requests: Counter | None = None
) -> dict[str, grpc.RpcMethodHandler]:
    """Unary handlers for every method of ``descriptor``, bound to ``servicer``'s methods.

    Built from the descriptor (not the generated ``add_..._to_server``) so each request goes
    through :func:`tolerant_deserializer`: undecodable bytes become INVALID_ARGUMENT, not INTERNAL.
    With ``requests`` (labels ``method``, ``code``) every call is counted by its final status.
    """
    handlers = {}
    for method in descriptor.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        behavior: _Behavior = getattr(servicer, method.name)
        if requests is not None:
            behavior = _counting(requests, f"/{descriptor.full_name}/{method.name}", behavior)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=tolerant_deserializer(
                request_type.FromString, method.input_type.full_name
            ),
            response_serializer=response_type.SerializeToString,
        )
    return handlers


def _counting(requests: Counter, method: str, behavior: _Behavior) -> _Behavior:
    # Wrapped when the handlers are built, not by a grpc.aio ServerInterceptor: an interceptor
    # makes grpc run its interceptor chain on every call (~10k instructions, 1.6 % of a
    # ValidateService call, callgrind).
    ok = requests.labels(method, "OK")

    async def counted(request: Any, context: aio.ServicerContext) -> Any:
        try:
            response = await behavior(request, context)
        except BaseException:
            code = context.code()
            name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
            requests.labels(method, name).inc()
            raise
        ok.inc()
        return response

    return counted


def _register(
    server: aio.Server, descriptor: ServiceDescriptor, servicer: object, requests: Counter | None
) -> None:
    handlers = method_handlers(descriptor, servicer, requests)
    # Generic handlers only. grpc.aio keeps one pending "request call" per *registered* method
    # and waits on all of them (asyncio.wait) for every incoming call: with our ten methods that
    # cost ~50k instructions per call, far more than the generic lookup registration avoids
    # (callgrind, docs/benchmarks.md "gRPC").
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(descriptor.full_name, handlers),)
    )


class _GenericHandlersOnly:
    """A grpc.aio server as seen by generated ``add_*_to_server`` functions: generic handlers only.

    The generated code (grpc.health.v1, reflection) also registers each method with
    ``add_registered_method_handlers``; see :func:`_register` for what every registered method
    costs each call (health's three and reflection's one: ~22k of ~660k instructions per
    ValidateService call, callgrind). The generic handlers serve the same methods.
    """

    def __init__(self, server: aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: tuple[grpc.GenericRpcHandler, ...]
    ) -> None:
        """Add the handlers to the server."""
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Ignored: the generic handlers already serve these methods."""


class SidecarGrpcServer:
    """The sidecar's gRPC listener; ``start()`` binds and serves, ``stop()`` drains and closes."""

    def __init__(
        self,
        engine: DecisionEngine,
        address: str = "127.0.0.1:50051",
        *,
        request_counter: Counter | None = None,
        reuse_port: bool = False,
        health_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._address = address
        self._request_counter = request_counter
        self._reuse_port = reuse_port
        self._health_interval = health_interval
        self._clock = clock
        self._server: aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._health_task: asyncio.Task[None] | None = None
        self.port = 0

    def _build(self) -> aio.Server:
        counter = self._request_counter
        server = aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
            ],
        )
        engine_service = policy_engine_pb2.DESCRIPTOR.services_by_name["PolicyEngineService"]
        authz_service = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"]
        _register(server, engine_service,
                  grpc_service.PolicyEngineServicer(self._engine, clock=self._clock), counter)
        _register(server, authz_service, ext_authz.AuthorizationServicer(self._engine), counter)
        generic_only = _GenericHandlersOnly(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, generic_only)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(
                (*SERVED_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME)),
            generic_only,
        )
        return server

    async def start(self) -> int:
        """Bind the address, start serving, and return the bound port."""
        server = self._build()
        try:
            port: int = server.add_insecure_port(self._address)
        except RuntimeError as exc:
            raise StartupError(f"cannot listen for gRPC on {self._address}: {exc}") from exc
        if port == 0:
            raise StartupError(f"cannot listen for gRPC on {self._address}: address in use?")
        await self.sync_health()
        await server.start()
        self._server, self.port = server, port
        self._health_task = asyncio.create_task(self._follow_readiness(), name="grpc-health")
        return port

    async def sync_health(self) -> None:
        """Publish the engine's current readiness to the health service."""
        ready = self._engine.ready()
        status = (health_pb2.HealthCheckResponse.SERVING if ready
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for service in ("", *SERVED_SERVICES):
            await self._health.set(service, status)

    async def _follow_readiness(self) -> None:
        while True:
            await asyncio.sleep(self._health_interval)
            await self.sync_health()

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, let in-flight calls finish within ``grace`` seconds, then close."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
