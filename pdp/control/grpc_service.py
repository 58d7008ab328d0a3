"""``policyengine.v1.PolicyEngineService`` on the control plane: the nine methods over the store.

Every call but ``HealthCheck`` needs ``authorization: Bearer <token>`` metadata and is authorised
like the HTTP API: reads need ``viewer`` (or better), writes ``editor`` or ``admin``, decisions any
role. Policy methods act on the draft; the three decisions answer from the latest *published*
bundle, exactly as a sidecar on that bundle would. Messages are converted with the sidecar's public
functions in :mod:`pdp.sidecar.grpc_convert`, so both servers speak the contract alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc import aio

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp.control.auth import Permission, Principal, bearer_token
from pdp.control.database import CONNECTION_ERRORS, positive_int
from pdp.control.draft import parse_decision_input
from pdp.control.errors import NotPublishedError, RequestError, VersionConflictError
from pdp.control.grpc_errors import grpc_errors
from pdp.control.listing import query_from_request
from pdp.control.plane import ControlPlane
from pdp.control.policy_store import PolicyRecord
from pdp.core import FieldError
from pdp.sidecar import grpc_convert as convert
from pdp.sidecar.grpc_server import method_handlers

SERVICE_NAME = "policyengine.v1.PolicyEngineService"


def _policy(record: PolicyRecord) -> pb.Policy:
    return convert.policy_to_proto(record.document(), created_at=record.created_at,
                                   updated_at=record.updated_at)


def _expected_version(policy: pb.Policy) -> int | None:
    if not policy.version:
        return None
    try:
        return positive_int(policy.version, "policy.version")
    except RequestError:
        message = f"version must be a number such as \"3\", got {policy.version!r}"
        raise RequestError(message, [FieldError("policy.version", message)]) from None


def _document(policy: pb.Policy) -> dict[str, Any]:
    try:
        return convert.policy_from_proto(policy)
    except ValueError as exc:
        # protobuf's JSON conversion refuses a Struct number JSON cannot carry (infinity, NaN).
        raise RequestError(f"invalid policy: {exc}") from None


# The names an update_mask may hold: the Policy message's fields. A nested path
# ("rule.require_https") or an unknown name is refused: it would change nothing and answer OK.
_MASKABLE = frozenset(pb.Policy.DESCRIPTOR.fields_by_name)
# Fields the server keeps: a mask naming them is not an error, and changes nothing (AIP-203).
_SERVER_KEPT = frozenset({"id", "version", "created_at", "updated_at"})
# How often a masked update is re-applied when another edit lands between its read and write.
_MASKED_UPDATE_ATTEMPTS = 5


def _mask(paths: Iterable[str]) -> list[str]:
    names = list(paths)
    unknown = [name for name in names if name not in _MASKABLE]
    if unknown:
        message = (f"cannot update {', '.join(map(repr, unknown))}; update_mask names top-level"
                   f" Policy fields: {', '.join(sorted(_MASKABLE - _SERVER_KEPT))}")
        raise RequestError(message, [FieldError("update_mask", message)])
    return [name for name in names if name not in _SERVER_KEPT]


def _required(value: str, field: str) -> str:
    if not value:
        raise RequestError(f"{field} is required", [FieldError(field, "required")])
    return value


class ControlPolicyEngineServicer:
    """The nine methods, backed by the control plane's store and latest published bundle."""

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    async def _caller(self, context: aio.ServicerContext) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        token = bearer_token(metadata.get("authorization"))
        return await self._plane.tokens.authenticate(token)

    async def _decide(self, query: str, request: Message,
                      context: aio.ServicerContext) -> dict[str, Any]:
        (await self._caller(context)).require(Permission.DECIDE)
        parsed = parse_decision_input(query, convert.request_input(request))
        latest = self._plane.feed.latest
        if latest is None:
            raise NotPublishedError("no bundle has been published yet; decisions need one")
        policy_set = await self._plane.publisher.policy_set(latest)
        explain = bool(getattr(request, "explain", False))
        return policy_set.evaluate(query, parsed, now=self._plane.clock(),
                                   decision_id=str(uuid.uuid4()), explain=explain)

    @grpc_errors
    async def ValidateService(self, request: pb.ValidateServiceRequest,
                              context: aio.ServicerContext) -> pb.ValidateServiceResponse:
        """Validate a listing against the latest published bundle."""
        decision = await self._decide("validate_service", request, context)
        return convert.validate_service_response(decision)

    @grpc_errors
    async def CheckAccess(self, request: pb.CheckAccessRequest,
                          context: aio.ServicerContext) -> pb.CheckAccessResponse:
        """An access check against the latest published bundle."""
        return convert.check_access_response(await self._decide("check_access", request, context))

    @grpc_errors
    async def ValidateConsumption(self, request: pb.ValidateConsumptionRequest,
                                  context: aio.ServicerContext) -> pb.ValidateConsumptionResponse:
        """A consumption check against the latest published bundle."""
        decision = await self._decide("validate_consumption", request, context)
        return convert.validate_consumption_response(decision)

    @grpc_errors
    async def GetPolicy(self, request: pb.GetPolicyRequest,
                        context: aio.ServicerContext) -> pb.GetPolicyResponse:
        """One policy of the draft."""
        actor = await self._caller(context)
        policy_id = _required(request.policy_id, "policy_id")
        record = await self._plane.draft.get_policy(actor, policy_id)
        return pb.GetPolicyResponse(policy=_policy(record))

    @grpc_errors
    async def ListPolicies(self, request: pb.ListPoliciesRequest,
                           context: aio.ServicerContext) -> pb.ListPoliciesResponse:
        """A page of the draft's policies (filter, order_by and page tokens as on a sidecar)."""
        actor = await self._caller(context)
        query = query_from_request(request)
        records, total = await self._plane.draft.list_policies(actor, query)
        return pb.ListPoliciesResponse(policies=[_policy(r) for r in records],
                                       next_page_token=query.next_page_token(total),
                                       total_count=total)

    @grpc_errors
    async def CreatePolicy(self, request: pb.CreatePolicyRequest,
                           context: aio.ServicerContext) -> pb.CreatePolicyResponse:
        """Create a policy in the draft."""
        actor = await self._caller(context)
        record = await self._plane.draft.create_policy(actor, _document(request.policy))
        return pb.CreatePolicyResponse(policy=_policy(record),
                                       created_at=convert.to_timestamp(record.created_at))

    @grpc_errors
    async def UpdatePolicy(self, request: pb.UpdatePolicyRequest,
                           context: aio.ServicerContext) -> pb.UpdatePolicyResponse:
        """Update a policy; ``update_mask`` limits which top-level fields change, and a
        ``policy.version`` that is not the current one answers ABORTED."""
        actor = await self._caller(context)
        actor.require(Permission.EDIT)  # the role first, as over HTTP: 403 before any 400
        policy_id = _required(request.policy_id, "policy_id")
        supplied = _document(request.policy)
        expected = _expected_version(request.policy)
        if not request.update_mask:
            record = await self._plane.draft.update_policy(
                actor, policy_id, {**supplied, "id": policy_id}, expected)
        else:
            record = await self._update_masked(actor, policy_id, supplied,
                                               _mask(request.update_mask), expected)
        return pb.UpdatePolicyResponse(policy=_policy(record),
                                       updated_at=convert.to_timestamp(record.updated_at))

    async def _update_masked(self, actor: Principal, policy_id: str, supplied: dict[str, Any],
                             mask: list[str], expected: int | None) -> PolicyRecord:
        # AIP-134: masked fields take the request's value, or are cleared when it has none; the
        # other fields keep the stored ones. The write is conditional on the version read, or
        # an edit landing between the read and the write would be reverted by the stale copy of
        # its fields; without a client version, a conflict means "read again and re-apply".
        for attempt in range(_MASKED_UPDATE_ATTEMPTS):
            current = await self._plane.draft.get_policy(actor, policy_id)
            document = dict(current.spec)
            for name in mask:
                if name in supplied:
                    document[name] = supplied[name]
                else:
                    document.pop(name, None)
            document["id"] = policy_id
            try:
                return await self._plane.draft.update_policy(
                    actor, policy_id, document, current.version if expected is None else expected)
            except VersionConflictError:
                if expected is not None or attempt == _MASKED_UPDATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    @grpc_errors
    async def DeletePolicy(self, request: pb.DeletePolicyRequest,
                           context: aio.ServicerContext) -> pb.DeletePolicyResponse:
        """Delete a policy from the draft (kept in its history)."""
        actor = await self._caller(context)
        policy_id = _required(request.policy_id, "policy_id")
        deleted_at = await self._plane.draft.delete_policy(actor, policy_id, None)
        return pb.DeletePolicyResponse(success=True, deleted_at=convert.to_timestamp(deleted_at))

    @grpc_errors
    async def HealthCheck(self, request: pb.HealthCheckRequest,
                          context: aio.ServicerContext) -> pb.HealthCheckResponse:
        """SERVING when PostgreSQL answers; no token needed (like ``/health/ready``)."""
        answer = pb.HealthCheckResponse
        latest = self._plane.feed.latest
        details = {"latest_sequence": str(latest.sequence) if latest else "",
                   "listening": str(self._plane.feed.listening).lower()}
        try:
            await self._plane.pool.fetchval("SELECT 1")
            status = answer.SERVING
        except CONNECTION_ERRORS as exc:
            status, details["database"] = answer.NOT_SERVING, str(exc)
        response = answer(status=status, details=details)
        response.timestamp.FromNanoseconds(int(self._plane.clock() * 1_000_000_000))
        return response


def make_grpc_server(plane: ControlPlane, address: str) -> tuple[aio.Server, int]:
    """A gRPC server with the servicer registered and bound to `address` (not yet started);
    RuntimeError when the address cannot be bound."""
    server = aio.server(options=[("grpc.max_receive_message_length", 4 * 1024 * 1024),
                                 ("grpc.max_send_message_length", 4 * 1024 * 1024)])
    descriptor = pb.DESCRIPTOR.services_by_name["PolicyEngineService"]
    handlers = method_handlers(descriptor, ControlPolicyEngineServicer(plane))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME,
                                                                          handlers),))
    port: int = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError("the address is in use or cannot be bound")
    return server, port
