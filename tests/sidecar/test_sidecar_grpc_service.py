"""PolicyEngineService on the sidecar: the origin's nine methods over a real server and channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from grpc import aio
from test_grpc_support import REVISION, engine_without_bundle, example, serving

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp._proto.policyengine.v1 import policy_engine_pb2_grpc as pb_grpc

DEFAULT_POLICY_IDS = {
    "data-residency-required",
    "restricted-countries",
    "confidential-certification-required",
    "https-required",
    "enterprise-sla-minimum",
}


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[pb_grpc.PolicyEngineServiceStub]:
    """A client of a sidecar serving the marketplace bundle."""
    under_test = engine_without_bundle(tmp_path)
    await under_test.activate_marketplace()
    async with serving(under_test.engine) as (_, channel):
        yield pb_grpc.PolicyEngineServiceStub(channel)


@pytest.fixture
async def idle_stub(tmp_path: Path) -> AsyncIterator[pb_grpc.PolicyEngineServiceStub]:
    """A client of a sidecar that has no bundle yet."""
    async with serving(engine_without_bundle(tmp_path).engine) as (_, channel):
        yield pb_grpc.PolicyEngineServiceStub(channel)


def listing(name: str) -> pb.ValidateServiceRequest:
    """A marketplace example listing as the origin's request message."""
    return json_format.ParseDict(example(name), pb.ValidateServiceRequest())


async def status_of(call: object) -> aio.AioRpcError:
    """The error a call ends with (the test fails if it succeeds)."""
    with pytest.raises(aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


# --- ValidateService ---------------------------------------------------------------------------


async def test_compliant_listing_is_compliant(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """A listing meeting the five defaults is compliant, with the origin's metadata filled in."""
    answer = await stub.ValidateService(listing("compliant-listing"))
    assert answer.compliant
    assert list(answer.violations) == []
    assert answer.policy_version == REVISION
    assert answer.bundle_revision == REVISION
    assert answer.decision_id
    assert answer.validated_at.seconds > 0
    assert answer.metadata.policies_evaluated == len(DEFAULT_POLICY_IDS)


async def test_breaking_listing_names_each_violation(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """Every violated policy is reported with severity, field, values and remediation."""
    answer = await stub.ValidateService(listing("listing-breaking-3-policies"))
    assert not answer.compliant
    assert {v.policy_id for v in answer.violations} == {
        "https-required", "restricted-countries", "enterprise-sla-minimum",
    }
    https = next(v for v in answer.violations if v.policy_id == "https-required")
    assert https.severity == "critical"
    assert https.field == "endpoint.url"
    assert https.actual_value == "http://api.weather.example/v1"
    assert https.remediation
    assert https.enforcement == "deny"
    assert answer.metadata.policies_failed == 3


async def test_explain_is_returned_only_when_asked(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """`explain: true` adds one trace entry per evaluated policy; without it there are none."""
    request = listing("compliant-listing")
    assert list((await stub.ValidateService(request)).explain) == []
    request.explain = True
    explained = await stub.ValidateService(request)
    assert {entry["policy_id"] for entry in explained.explain} == DEFAULT_POLICY_IDS


async def test_invalid_value_is_invalid_argument_naming_the_field(
    stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """A value outside its allowed set is INVALID_ARGUMENT, and the message names the field."""
    request = listing("compliant-listing")
    request.compliance.level = "top-secret"
    error = await status_of(stub.ValidateService(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "compliance.level" in (error.details() or "")


async def test_undecodable_request_is_invalid_argument(tmp_path: Path) -> None:
    """Bytes that are not a protobuf message are the client's error, not INTERNAL."""
    under_test = engine_without_bundle(tmp_path)
    await under_test.activate_marketplace()
    async with serving(under_test.engine) as (_, channel):
        raw = channel.unary_unary(
            "/policyengine.v1.PolicyEngineService/ValidateService",
            request_serializer=None,
            response_deserializer=None,
        )
        error = await status_of(raw(b"\x0a\x05ab"))  # field 1 claims 5 bytes, has 2
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ValidateServiceRequest" in (error.details() or "")


async def test_decisions_are_unavailable_before_a_bundle(
    idle_stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """With no policy loaded the sidecar fails closed with UNAVAILABLE."""
    error = await status_of(idle_stub.ValidateService(listing("compliant-listing")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


# --- CheckAccess and ValidateConsumption -------------------------------------------------------


async def test_check_access_allows_a_granted_permission(
    stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """A consumer may consume a service it is approved for."""
    answer = await stub.CheckAccess(pb.CheckAccessRequest(
        user_id="user-456", service_id="svc-1", action="consume",
        context={"ip_address": "10.0.0.7"},
    ))
    assert answer.allowed
    assert list(answer.required_permissions) == ["service.consume"]
    assert list(answer.missing_permissions) == []
    assert answer.decision_id


async def test_check_access_names_the_missing_permission(
    stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """A denial says which permission is missing and why."""
    answer = await stub.CheckAccess(json_format.ParseDict(
        example("access-check"), pb.CheckAccessRequest()
    ))
    assert not answer.allowed
    assert list(answer.missing_permissions) == ["service.consume"]
    assert answer.reason


async def test_consumption_by_a_consumer_is_allowed(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """A consumer's call with an ordinary payload goes through."""
    request = json_format.ParseDict(example("consumption"), pb.ValidateConsumptionRequest())
    answer = await stub.ValidateConsumption(request)
    assert answer.allowed, answer.reason
    assert list(answer.violations) == []


async def test_consumption_by_a_viewer_is_denied(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """A viewer lacks service.consume, so the call is refused with a reason."""
    request = json_format.ParseDict(example("consumption"), pb.ValidateConsumptionRequest())
    request.consumer_id = "user-789"
    answer = await stub.ValidateConsumption(request)
    assert not answer.allowed
    assert answer.reason


# --- GetPolicy and ListPolicies ----------------------------------------------------------------


async def test_get_policy_returns_the_bundled_document(
    stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """GetPolicy answers with the origin's Policy shape, rule and scope included."""
    policy = (await stub.GetPolicy(pb.GetPolicyRequest(policy_id="https-required"))).policy
    assert policy.name == "HTTPS required"
    assert policy.type == pb.SECURITY
    assert policy.enabled
    assert policy.severity == "critical"
    assert policy.enforcement == "deny"
    assert policy.rule.WhichOneof("rule") == "security"
    assert policy.rule.security.require_https
    assert json_format.MessageToDict(policy.when) == {
        "field": "environment", "op": "eq", "value": "production",
    }
    assert policy.metadata["owner"] == "security-team"


async def test_get_unknown_policy_is_not_found(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """An id the active bundle does not hold is NOT_FOUND, naming the id."""
    error = await status_of(stub.GetPolicy(pb.GetPolicyRequest(policy_id="no-such-policy")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-policy" in (error.details() or "")


async def test_get_policy_without_an_id_is_invalid(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """An empty policy_id is INVALID_ARGUMENT naming policy_id."""
    error = await status_of(stub.GetPolicy(pb.GetPolicyRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "policy_id" in (error.details() or "")


async def test_list_policies_lists_the_active_bundle(
    stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """Without parameters every policy is listed in id order, with the total."""
    answer = await stub.ListPolicies(pb.ListPoliciesRequest())
    assert [p.id for p in answer.policies] == sorted(DEFAULT_POLICY_IDS)
    assert answer.total_count == len(DEFAULT_POLICY_IDS)
    assert answer.next_page_token == ""


async def test_list_policies_applies_the_origin_filter(
    stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """`type=SECURITY AND enabled=true` keeps the enabled security policies only."""
    request = pb.ListPoliciesRequest(filter="type=SECURITY AND enabled=true")
    answer = await stub.ListPolicies(request)
    assert [p.id for p in answer.policies] == ["https-required"]
    assert answer.total_count == 1


async def test_list_policies_filters_by_severity(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """A severity term keeps the policies of that severity."""
    answer = await stub.ListPolicies(pb.ListPoliciesRequest(filter="severity=critical"))
    assert {p.id for p in answer.policies} == {"https-required", "restricted-countries"}


async def test_list_policies_orders_as_asked(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """`order_by` sorts by the named keys; `desc` reverses one."""
    by_name = await stub.ListPolicies(pb.ListPoliciesRequest(order_by="name desc"))
    names = [p.name for p in by_name.policies]
    assert names == sorted(names, key=str.lower, reverse=True)
    by_severity = await stub.ListPolicies(pb.ListPoliciesRequest(order_by="severity, id"))
    assert [p.severity for p in by_severity.policies] == [
        "critical", "critical", "high", "high", "medium",
    ]


async def test_page_tokens_walk_the_whole_list_once(stub: pb_grpc.PolicyEngineServiceStub) -> None:
    """Following next_page_token visits every policy exactly once, in order."""
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListPolicies(pb.ListPoliciesRequest(page_size=2, page_token=token))
        assert len(page.policies) <= 2
        assert page.total_count == len(DEFAULT_POLICY_IDS)
        seen.extend(p.id for p in page.policies)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(DEFAULT_POLICY_IDS)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_size": -1}, "page_size"),
        ({"filter": "colour=red"}, "filter"),
        ({"filter": "enabled=maybe"}, "filter"),
        ({"filter": "enabled=1"}, "filter"),
        ({"filter": "type=SECURITY AND type=PRICING"}, "filter"),
        ({"filter": "type=SECRET"}, "filter"),
        ({"filter": "severity=urgent"}, "filter"),
        ({"order_by": "name sideways"}, "order_by"),
        ({"order_by": "popularity"}, "order_by"),
    ],
)
async def test_bad_list_parameters_are_invalid_argument(
    stub: pb_grpc.PolicyEngineServiceStub, request_fields: dict[str, object], field: str
) -> None:
    """A malformed filter, order, size or token is INVALID_ARGUMENT naming the parameter."""
    error = await status_of(stub.ListPolicies(pb.ListPoliciesRequest(**request_fields)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (error.details() or "")


async def test_page_token_of_another_query_is_refused(
    stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """A token is bound to its filter and order: reusing it elsewhere is INVALID_ARGUMENT."""
    first = await stub.ListPolicies(pb.ListPoliciesRequest(page_size=1))
    error = await status_of(stub.ListPolicies(pb.ListPoliciesRequest(
        page_size=1, page_token=first.next_page_token, filter="severity=high",
    )))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (error.details() or "")


async def test_policies_are_unavailable_before_a_bundle(
    idle_stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """Without an active bundle there is nothing to list: UNAVAILABLE."""
    error = await status_of(idle_stub.ListPolicies(pb.ListPoliciesRequest()))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


# --- Writes and HealthCheck --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("CreatePolicy", pb.CreatePolicyRequest(policy=pb.Policy(id="new-policy"))),
        ("UpdatePolicy", pb.UpdatePolicyRequest(policy_id="https-required")),
        ("DeletePolicy", pb.DeletePolicyRequest(policy_id="https-required")),
    ],
)
async def test_writes_are_refused_naming_the_control_plane(
    stub: pb_grpc.PolicyEngineServiceStub, method: str, request_message: object
) -> None:
    """A sidecar never changes policies: FAILED_PRECONDITION pointing at the control plane."""
    error = await status_of(getattr(stub, method)(request_message))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "control plane" in (error.details() or "")
    still_there = await stub.GetPolicy(pb.GetPolicyRequest(policy_id="https-required"))
    assert still_there.policy.id == "https-required"


async def test_health_check_is_serving_with_a_bundle(
    stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """HealthCheck mirrors readiness and reports the serving revision."""
    answer = await stub.HealthCheck(pb.HealthCheckRequest())
    assert answer.status == pb.HealthCheckResponse.SERVING
    assert REVISION in str(dict(answer.details))
    assert answer.timestamp.seconds > 0


async def test_health_check_is_not_serving_before_a_bundle(
    idle_stub: pb_grpc.PolicyEngineServiceStub,
) -> None:
    """Before any bundle the origin's HealthCheck says NOT_SERVING (and still answers)."""
    answer = await idle_stub.HealthCheck(pb.HealthCheckRequest())
    assert answer.status == pb.HealthCheckResponse.NOT_SERVING
