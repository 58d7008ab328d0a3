"""The control plane's PolicyEngineService (DESIGN §9): nine methods over the store, with auth."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from control_support import snapshot
from grpc import aio

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp._proto.policyengine.v1.policy_engine_pb2_grpc import PolicyEngineServiceStub
from pdp.control.auth import Principal, Role
from pdp.control.grpc_service import make_grpc_server
from pdp.control.plane import ControlPlane
from pdp.core import PolicySet, compile_policy_set, parse_policy
from pdp.sidecar.grpc_server import SidecarGrpcServer

PUBLISHER = Principal(token_id=0, name="tester", role=Role.PUBLISHER)


@pytest.fixture
async def stub(plane: ControlPlane) -> AsyncIterator[PolicyEngineServiceStub]:
    """A client of the control plane's gRPC server on an ephemeral port."""
    server, port = make_grpc_server(plane, "127.0.0.1:0")
    await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    yield PolicyEngineServiceStub(channel)
    await channel.close()
    await server.stop(None)


def auth(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a bearer token."""
    return (("authorization", f"Bearer {token}"),)


def new_policy(policy_id: str) -> pb.Policy:
    """A disabled security policy (it never changes a decision)."""
    return pb.Policy(id=policy_id, name=policy_id, type=pb.SECURITY, enabled=False,
                     severity="low", rule=pb.PolicyRule(security=pb.SecurityRule(
                         require_https=True)))


LISTING = pb.ValidateServiceRequest(
    service_id="svc-9", name="Nine", endpoint=pb.ServiceEndpoint(url="http://nine.example"),
    compliance=pb.ServiceCompliance(data_residency=["KP"]), environment="production",
)

_ids = itertools.count()
Call = Callable[[PolicyEngineServiceStub, Any], Awaitable[Any]]


def _calls() -> list[tuple[str, set[Role], Call]]:
    readers = {Role.ADMIN, Role.EDITOR, Role.PUBLISHER, Role.VIEWER}
    editors = {Role.ADMIN, Role.EDITOR}
    everyone = set(Role)

    async def create(s: PolicyEngineServiceStub, md: Any) -> Any:
        return await s.CreatePolicy(pb.CreatePolicyRequest(policy=new_policy(f"g{next(_ids)}")),
                                    metadata=md)

    async def update(s: PolicyEngineServiceStub, md: Any) -> Any:
        return await s.UpdatePolicy(pb.UpdatePolicyRequest(
            policy_id="https-required", policy=pb.Policy(description=f"d{next(_ids)}"),
            update_mask=["description"]), metadata=md)

    async def delete(s: PolicyEngineServiceStub, md: Any) -> Any:
        # Deleting an unknown id proves authorisation ran first: allowed roles get NOT_FOUND.
        return await s.DeletePolicy(pb.DeletePolicyRequest(policy_id="no-such-policy"),
                                    metadata=md)

    return [
        ("ValidateService", everyone, lambda s, md: s.ValidateService(LISTING, metadata=md)),
        ("CheckAccess", everyone, lambda s, md: s.CheckAccess(pb.CheckAccessRequest(
            user_id="user-456", service_id="svc-1", action="read"), metadata=md)),
        ("ValidateConsumption", everyone, lambda s, md: s.ValidateConsumption(
            pb.ValidateConsumptionRequest(consumer_id="user-456", service_id="svc-1"),
            metadata=md)),
        ("GetPolicy", readers, lambda s, md: s.GetPolicy(
            pb.GetPolicyRequest(policy_id="https-required"), metadata=md)),
        ("ListPolicies", readers, lambda s, md: s.ListPolicies(pb.ListPoliciesRequest(),
                                                               metadata=md)),
        ("CreatePolicy", editors, create),
        ("UpdatePolicy", editors, update),
        ("DeletePolicy", editors, delete),
    ]


async def _code(call: Call, stub: PolicyEngineServiceStub, metadata: Any) -> grpc.StatusCode:
    try:
        await call(stub, metadata)
    except aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_every_method_answers_each_role_as_documented(
        plane: ControlPlane, stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """Allowed roles pass; other roles get PERMISSION_DENIED and change nothing."""
    await plane.publisher.publish(PUBLISHER)
    await plane.feed.refresh()
    wrong: list[str] = []
    for (name, allowed, call), role in itertools.product(_calls(), Role):
        before = await snapshot(plane.pool)
        code = await _code(call, stub, auth(tokens[role]))
        expected = grpc.StatusCode.PERMISSION_DENIED
        if role in allowed:
            expected = grpc.StatusCode.NOT_FOUND if name == "DeletePolicy" else grpc.StatusCode.OK
        if code != expected:
            wrong.append(f"{name} as {role}: {code.name}, expected {expected.name}")
        elif code == grpc.StatusCode.PERMISSION_DENIED and await snapshot(plane.pool) != before:
            wrong.append(f"{name} as {role}: refused but changed the database")
    assert not wrong, "\n".join(wrong)


async def test_a_role_that_may_not_edit_is_refused_before_its_request_is_checked(
        stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """As over HTTP, 403 comes before 400: a viewer's malformed update learns only that it may
    not edit."""
    bad = pb.UpdatePolicyRequest(policy_id="https-required", update_mask=["bogus"])
    code = await _code(lambda s, md: s.UpdatePolicy(bad, metadata=md), stub,
                       auth(tokens[Role.VIEWER]))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_every_method_but_health_needs_a_token(
        plane: ControlPlane, stub: PolicyEngineServiceStub) -> None:
    """No token or an unknown one: UNAUTHENTICATED, and nothing changes."""
    before = await snapshot(plane.pool)
    for (name, _, call), metadata in itertools.product(_calls(), [(), auth("pdp_unknown")]):
        assert await _code(call, stub, metadata) == grpc.StatusCode.UNAUTHENTICATED, name
    assert await snapshot(plane.pool) == before
    health = await stub.HealthCheck(pb.HealthCheckRequest())
    assert health.status == pb.HealthCheckResponse.SERVING


async def test_decisions_use_the_latest_published_bundle(
        plane: ControlPlane, stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """ValidateService answers from what sidecars run, with every violation."""
    await plane.publisher.publish(PUBLISHER)
    await plane.feed.refresh()
    answer = await stub.ValidateService(LISTING, metadata=auth(tokens[Role.SIDECAR]))
    assert answer.compliant is False
    assert {v.policy_id for v in answer.violations} == {"https-required", "restricted-countries"}
    assert answer.policy_version == "1"


async def test_decisions_before_the_first_publish_are_a_failed_precondition(
        stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """Without a published bundle there is nothing to decide with."""
    code = await _code(lambda s, md: s.ValidateService(LISTING, metadata=md), stub,
                       auth(tokens[Role.VIEWER]))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


async def test_create_get_update_delete_round_trip(stub: PolicyEngineServiceStub,
                                                   tokens: dict[Role, str]) -> None:
    """The origin's CRUD works against the store, with versions as strings."""
    md = auth(tokens[Role.EDITOR])
    created = await stub.CreatePolicy(pb.CreatePolicyRequest(policy=new_policy("grpc-made")),
                                      metadata=md)
    assert created.policy.version == "1" and created.created_at.seconds > 0
    updated = await stub.UpdatePolicy(pb.UpdatePolicyRequest(
        policy_id="grpc-made", policy=pb.Policy(severity="high"), update_mask=["severity"]),
        metadata=md)
    assert updated.policy.version == "2" and updated.policy.severity == "high"
    assert updated.policy.name == "grpc-made"
    fetched = await stub.GetPolicy(pb.GetPolicyRequest(policy_id="grpc-made"), metadata=md)
    assert fetched.policy.severity == "high"
    deleted = await stub.DeletePolicy(pb.DeletePolicyRequest(policy_id="grpc-made"), metadata=md)
    assert deleted.success
    code = await _code(lambda s, m: s.GetPolicy(pb.GetPolicyRequest(policy_id="grpc-made"),
                                                metadata=m), stub, md)
    assert code == grpc.StatusCode.NOT_FOUND


async def test_masked_updates_at_once_keep_each_others_fields(
        stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """One client changes the name while another changes the description: both changes stay."""
    md = auth(tokens[Role.EDITOR])
    for attempt in range(5):
        name, description = f"name {attempt}", f"description {attempt}"
        await asyncio.gather(
            stub.UpdatePolicy(pb.UpdatePolicyRequest(
                policy_id="https-required", policy=pb.Policy(name=name), update_mask=["name"]),
                metadata=md),
            stub.UpdatePolicy(pb.UpdatePolicyRequest(
                policy_id="https-required", policy=pb.Policy(description=description),
                update_mask=["description"]), metadata=md))
        stored = (await stub.GetPolicy(pb.GetPolicyRequest(policy_id="https-required"),
                                       metadata=md)).policy
        assert (stored.name, stored.description) == (name, description)


async def test_a_mask_naming_no_top_level_field_is_invalid_argument(
        plane: ControlPlane, stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """A typo or a nested path in update_mask is refused, not an OK that changed nothing."""
    md = auth(tokens[Role.EDITOR])
    before = await snapshot(plane.pool)
    for mask in (["nme"], ["rule.security.require_https"], ["name", "colour"]):
        request = pb.UpdatePolicyRequest(policy_id="https-required",
                                         policy=pb.Policy(name="renamed"), update_mask=mask)
        code = await _code(lambda s, m, r=request: s.UpdatePolicy(r, metadata=m), stub, md)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, mask
    assert await snapshot(plane.pool) == before


async def test_a_stale_version_is_aborted(stub: PolicyEngineServiceStub,
                                          tokens: dict[Role, str]) -> None:
    """UpdatePolicy with an old policy.version: ABORTED."""
    md = auth(tokens[Role.EDITOR])
    stale = pb.Policy(description="x", version="7")
    code = await _code(lambda s, m: s.UpdatePolicy(pb.UpdatePolicyRequest(
        policy_id="https-required", policy=stale, update_mask=["description"]), metadata=m),
        stub, md)
    assert code == grpc.StatusCode.ABORTED


async def test_a_duplicate_create_is_already_exists(stub: PolicyEngineServiceStub,
                                                    tokens: dict[Role, str]) -> None:
    """Create never overwrites."""
    code = await _code(lambda s, m: s.CreatePolicy(pb.CreatePolicyRequest(
        policy=new_policy("https-required")), metadata=m), stub, auth(tokens[Role.EDITOR]))
    assert code == grpc.StatusCode.ALREADY_EXISTS


async def test_an_invalid_policy_is_invalid_argument_naming_the_field(
        stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """A bad severity is refused with its field in the message."""
    bad = new_policy("bad-one")
    bad.severity = "dire"
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.CreatePolicy(pb.CreatePolicyRequest(policy=bad),
                                metadata=auth(tokens[Role.EDITOR]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "severity" in (raised.value.details() or "")


async def test_list_filters_and_pages(stub: PolicyEngineServiceStub,
                                      tokens: dict[Role, str]) -> None:
    """The origin's filter language and page tokens work over gRPC."""
    md = auth(tokens[Role.VIEWER])
    first = await stub.ListPolicies(pb.ListPoliciesRequest(
        filter="type=DATA_RESIDENCY", page_size=1, order_by="id desc"), metadata=md)
    second = await stub.ListPolicies(pb.ListPoliciesRequest(
        filter="type=DATA_RESIDENCY", page_size=1, order_by="id desc",
        page_token=first.next_page_token), metadata=md)
    assert first.total_count == 2
    assert [p.id for p in (*first.policies, *second.policies)] == [
        "restricted-countries", "data-residency-required"]
    assert second.next_page_token == ""


async def test_a_version_or_page_token_beyond_any_stored_number_is_invalid_argument(
        stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """A non-ASCII digit or a number past PostgreSQL's bigint is a bad argument, not INTERNAL."""
    md = auth(tokens[Role.EDITOR])
    for version in ("²", "99999999999999999999"):
        request = pb.UpdatePolicyRequest(
            policy_id="https-required", policy=pb.Policy(description="x", version=version),
            update_mask=["description"])
        code = await _code(lambda s, m, r=request: s.UpdatePolicy(r, metadata=m), stub, md)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, version
    token = base64.urlsafe_b64encode(b"o:99999999999999999999").decode().rstrip("=")
    code = await _code(lambda s, m: s.ListPolicies(pb.ListPoliciesRequest(page_token=token),
                                                   metadata=m), stub, md)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_condition_value_that_is_not_finite_is_invalid_argument(
        stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """A Struct double can hold infinity, which JSON cannot: refused, not INTERNAL."""
    policy = new_policy("infinite")
    policy.when.update({"field": "sla.availability", "op": "gt", "value": float("inf")})
    code = await _code(lambda s, m: s.CreatePolicy(pb.CreatePolicyRequest(policy=policy),
                                                   metadata=m), stub, auth(tokens[Role.EDITOR]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_page_token_used_with_another_filter_or_order_is_invalid_argument(
        stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """A token pages the listing it came from; with another filter or order it would silently
    skip or repeat policies, so it is refused, as the sidecar refuses it."""
    md = auth(tokens[Role.VIEWER])
    first = await stub.ListPolicies(pb.ListPoliciesRequest(page_size=2), metadata=md)
    for other in (pb.ListPoliciesRequest(filter="type=DATA_RESIDENCY", page_size=2,
                                         page_token=first.next_page_token),
                  pb.ListPoliciesRequest(order_by="name desc", page_size=2,
                                         page_token=first.next_page_token)):
        code = await _code(lambda s, m, r=other: s.ListPolicies(r, metadata=m), stub, md)
        assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_list_filter_takes_enabled_true_or_false_only(
        stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """`enabled=1` is refused naming the filter, as a sidecar refuses it."""
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.ListPolicies(pb.ListPoliciesRequest(filter="enabled=1"),
                                metadata=auth(tokens[Role.VIEWER]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "filter" in (raised.value.details() or "")


class _FixedEngine:
    """A sidecar engine whose active bundle holds a given policy set (decisions are not used)."""

    def __init__(self, policy_set: PolicySet) -> None:
        self.active = SimpleNamespace(policy_set=policy_set, revision="same-policies")

    def decide(self, query: str, raw_input: object, **_: Any) -> dict[str, Any]:
        raise AssertionError("no decisions in this test")

    def ready(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {}


# Names that order differently under a locale's collation or Unicode case folding than by code
# point with ASCII letters folded; ids whose hyphens a locale would ignore.
_MORE_POLICIES = [
    ("a-c", "beta", "high", "warn", True), ("ab", "Beta", "high", "deny", False),
    ("e1", "émile", "low", "dryrun", True), ("e2", "Émile", "low", "warn", True),
    ("z9", "alpha", "critical", "deny", False), ("zz", "Zulu", "medium", "warn", True),
]
_SAME_PAGE_REQUESTS = [
    pb.ListPoliciesRequest(),
    pb.ListPoliciesRequest(filter="type=SECURITY AND enabled=true"),
    pb.ListPoliciesRequest(filter="severity=high", order_by="name desc"),
    pb.ListPoliciesRequest(filter="enforcement=warn", page_size=1),
    pb.ListPoliciesRequest(filter="enabled=false", order_by="name"),
    pb.ListPoliciesRequest(order_by="name", page_size=2),
    pb.ListPoliciesRequest(order_by="name desc, id desc", page_size=3),
    pb.ListPoliciesRequest(order_by="severity desc, enforcement", page_size=3),
    pb.ListPoliciesRequest(order_by="type, name desc", page_size=4),
    pb.ListPoliciesRequest(order_by="version desc", page_size=5),
    pb.ListPoliciesRequest(order_by="id desc", page_size=10_000),
    pb.ListPoliciesRequest(filter="enabled=1"),
    pb.ListPoliciesRequest(order_by="popularity"),
    pb.ListPoliciesRequest(page_size=-1),
]


async def _pages(stub: PolicyEngineServiceStub, request: pb.ListPoliciesRequest,
                 metadata: Any = ()) -> list[tuple[Any, ...]]:
    """Every page of a listing as (ids, total, next token), or the refusal's code and details."""
    pages: list[tuple[Any, ...]] = []
    current = pb.ListPoliciesRequest()
    current.CopyFrom(request)
    while True:
        try:
            page = await stub.ListPolicies(current, metadata=metadata)
        except aio.AioRpcError as exc:
            return [*pages, (exc.code(), exc.details())]
        pages.append(([p.id for p in page.policies], page.total_count, page.next_page_token))
        if not page.next_page_token:
            return pages
        current.page_token = page.next_page_token


async def test_the_sidecar_and_the_control_plane_answer_the_same_pages(
        plane: ControlPlane, stub: PolicyEngineServiceStub, tokens: dict[Role, str]) -> None:
    """Over the same policies, the same ListPolicies request gives the same pages, totals and
    tokens on a sidecar (in memory) and on the control plane (SQL), and the same refusals."""
    editor = Principal(token_id=0, name="tester", role=Role.EDITOR)
    for policy_id, name, severity, enforcement, enabled in _MORE_POLICIES:
        await plane.draft.create_policy(editor, {
            "id": policy_id, "name": name, "type": "security", "severity": severity,
            "enforcement": enforcement, "enabled": enabled, "rule": {"require_https": True}})
    await plane.draft.update_policy(editor, "zz", {
        "id": "zz", "name": "Zulu", "type": "security", "severity": "medium",
        "enforcement": "warn", "rule": {"require_https": False}}, None)
    async with plane.pool.acquire() as conn:
        specs = await plane.draft.policies.live_specs(conn)
    policy_set = compile_policy_set([parse_policy(spec) for spec in specs], {},
                                    revision="same-policies")
    md = auth(tokens[Role.VIEWER])
    async with contextlib.AsyncExitStack() as stack:
        sidecar = SidecarGrpcServer(_FixedEngine(policy_set), "127.0.0.1:0")
        port = await sidecar.start()
        stack.push_async_callback(sidecar.stop, 0)
        channel = aio.insecure_channel(f"127.0.0.1:{port}")
        stack.push_async_callback(channel.close)
        sidecar_stub = PolicyEngineServiceStub(channel)
        for request in _SAME_PAGE_REQUESTS:
            expected = await _pages(stub, request, md)
            assert await _pages(sidecar_stub, request) == expected, request
    assert len(await _pages(stub, pb.ListPoliciesRequest(page_size=2), md)) == 6
