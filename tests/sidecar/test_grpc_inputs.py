"""Typed gRPC requests: the same input and the same refusals as the HTTP path, checked cheaper.

``pdp.sidecar.grpc_inputs`` converts a request in straight-line code and lets a *plainly valid*
one skip the core's schema check. These tests hold it to the two promises that make that safe:
the input is exactly what the generic converter produces, and a request the core would refuse is
never plainly valid — so over a real server it is refused with the HTTP path's very message.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc import aio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_grpc_support import EngineUnderTest, engine_without_bundle, example, serving

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp._proto.policyengine.v1 import policy_engine_pb2_grpc as pb_grpc
from pdp.core import (
    MAX_TEXT_CHARS,
    InputValidationError,
    compile_policy_set,
    parse_input,
    parse_policy,
)
from pdp.sidecar import grpc_inputs
from pdp.sidecar.grpc_convert import request_input

# Texts around the interesting edges: empty, enumeration members and near misses, long ones.
_TEXT = st.one_of(
    st.sampled_from(["", "public", "confidential", "Public", "production", "prod", "1.2", "1.4",
                     "10", "read", "read write", "a" * 64, "a" * 65, "x" * 1025]),
    st.text(max_size=12),
)
_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, 100.0, 100.0001, -0.0, -1.0]))
_FLAG = st.one_of(st.none(), st.booleans())


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _fields(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    # A JSON object with a random subset of the fields (None = left out).
    return st.fixed_dictionaries({name: _optional(s) for name, s in fields.items()}).map(
        lambda d: {k: v for k, v in d.items() if v is not None})


_LISTINGS = _fields(
    service_id=_TEXT, name=_TEXT, version=_TEXT, description=_TEXT, provider_id=_TEXT,
    category=_TEXT, environment=_TEXT,
    endpoint=_fields(url=_TEXT, protocol=_TEXT, authentication=_TEXT),
    compliance=_fields(level=_TEXT, certifications=st.lists(_TEXT, max_size=3),
                       data_residency=st.lists(_TEXT, max_size=3), gdpr_compliant=_FLAG,
                       hipaa_compliant=_FLAG),
    sla=_fields(availability=_NUMBER, max_latency=st.integers(-(2**31), 2**31 - 1),
                support_level=_TEXT),
    pricing=_fields(model=_TEXT, currency=_TEXT, rates=st.lists(
        _fields(tier=_TEXT, rate=_NUMBER, unit=_TEXT, description=_TEXT), max_size=3)),
    capabilities=st.lists(_fields(name=_TEXT, description=_TEXT), max_size=3),
    security=_fields(encryption_at_rest=_FLAG, encryption_in_transit=_FLAG, tls_version=_TEXT),
)
_ACCESS = _fields(user_id=_TEXT, service_id=_TEXT, action=_TEXT,
                  context=st.dictionaries(_TEXT, _TEXT, max_size=2))
_CONSUMPTION = _fields(
    consumer_id=_TEXT, service_id=_TEXT, request_payload=_TEXT,
    headers=st.dictionaries(_TEXT, _TEXT, max_size=2),
    context=_fields(ip_address=_TEXT, user_agent=_TEXT, region=_TEXT,
                    metadata=st.dictionaries(_TEXT, _TEXT, max_size=2)),
)

MessageT = TypeVar("MessageT", bound=Message)
Converter = Callable[[Any], tuple[dict[str, Any], bool]]
CASES: list[tuple[str, type[Message], Converter, st.SearchStrategy[dict[str, Any]]]] = [
    ("validate_service", pb.ValidateServiceRequest, grpc_inputs.listing_input, _LISTINGS),
    ("check_access", pb.CheckAccessRequest, grpc_inputs.access_input, _ACCESS),
    ("validate_consumption", pb.ValidateConsumptionRequest, grpc_inputs.consumption_input,
     _CONSUMPTION),
]


def _message(message_type: type[MessageT], fields: dict[str, Any]) -> MessageT:
    message = message_type()
    json_format.ParseDict(_proto_json(fields), message)
    return message


def _proto_json(value: Any) -> Any:
    # The proto JSON mapping spells non-finite doubles as strings.
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _proto_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_proto_json(item) for item in value]
    return value


def _core_accepts(query: str, document: dict[str, Any]) -> bool:
    try:
        parse_input(query, document)
    except InputValidationError:
        return False
    return True


@pytest.mark.parametrize(("query", "message_type", "convert", "strategy"), CASES,
                         ids=[case[0] for case in CASES])
def test_typed_conversion_equals_the_generic_one(
    query: str, message_type: type[Message], convert: Converter,
    strategy: st.SearchStrategy[dict[str, Any]],
) -> None:
    """Any request becomes exactly the input the generic descriptor-driven converter builds."""

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy)
    def check(fields: dict[str, Any]) -> None:
        request = _message(message_type, fields)
        document, _ = convert(request)
        assert _nan_equal(document, request_input(request)), document

    check()


@pytest.mark.parametrize(("query", "message_type", "convert", "strategy"), CASES,
                         ids=[case[0] for case in CASES])
def test_plainly_valid_requests_are_accepted_by_the_core(
    query: str, message_type: type[Message], convert: Converter,
    strategy: st.SearchStrategy[dict[str, Any]],
) -> None:
    """A request allowed to skip the schema check is one the schema check would accept."""

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy)
    def check(fields: dict[str, Any]) -> None:
        document, plainly_valid = convert(_message(message_type, fields))
        if plainly_valid:
            assert _core_accepts(query, document), document

    check()


def _nan_equal(left: object, right: object) -> bool:
    # NaN != NaN, yet two NaNs in the same place are the same input.
    if isinstance(left, float) and isinstance(right, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_nan_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_nan_equal, left, right))
    return left == right


def test_example_listings_take_the_fast_path() -> None:
    """The marketplace's example listings are plainly valid: they skip the schema check."""
    for name in ("compliant-listing", "listing-breaking-3-policies"):
        _, plainly_valid = grpc_inputs.listing_input(_message(pb.ValidateServiceRequest,
                                                              example(name)))
        assert plainly_valid, name


def test_a_large_listing_is_checked_in_full() -> None:
    """A listing over the text limit in bytes is never trusted, even if every text is short."""
    fields = {"capabilities": [{"name": "c" * 100}] * (MAX_TEXT_CHARS // 100 + 1)}
    document, plainly_valid = grpc_inputs.listing_input(_message(pb.ValidateServiceRequest, fields))
    assert not plainly_valid
    assert _core_accepts("validate_service", document)


# --- over a real server: the refusal is the HTTP path's -----------------------------------------


def _listing(**changes: Any) -> dict[str, Any]:
    listing = example("compliant-listing")
    for dotted, value in changes.items():
        target = listing
        *parents, leaf = dotted.split("__")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return listing


BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("compliance level", "validate_service", _listing(compliance__level="top-secret")),
    ("environment", "validate_service", _listing(environment="prod")),
    ("tls version", "validate_service", _listing(security__tls_version="1.4")),
    ("availability over 100", "validate_service", _listing(sla__availability=100.5)),
    ("negative availability", "validate_service", _listing(sla__availability=-1.0)),
    ("infinite rate", "validate_service",
     _listing(pricing__rates=[{"tier": "free", "rate": float("inf")}])),
    ("text over 64 KiB", "validate_service", _listing(description="d" * (MAX_TEXT_CHARS + 1))),
    ("missing user", "check_access", {"service_id": "svc-weather", "action": "read"}),
    ("bad action", "check_access", {"user_id": "u", "service_id": "s", "action": "read write"}),
    ("id over 1024", "check_access", {"user_id": "u" * 1025, "service_id": "s", "action": "read"}),
    ("missing consumer", "validate_consumption", {"service_id": "svc-weather"}),
    ("header over 64 KiB", "validate_consumption",
     {"consumer_id": "c", "service_id": "s", "headers": {"x": "h" * (MAX_TEXT_CHARS + 1)}}),
]
_METHODS: dict[str, tuple[str, type[Message]]] = {
    "validate_service": ("ValidateService", pb.ValidateServiceRequest),
    "check_access": ("CheckAccess", pb.CheckAccessRequest),
    "validate_consumption": ("ValidateConsumption", pb.ValidateConsumptionRequest),
}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[EngineUnderTest,
                                                        pb_grpc.PolicyEngineServiceStub]]:
    """A sidecar serving the marketplace bundle, and a client of it."""
    under_test = engine_without_bundle(tmp_path)
    await under_test.activate_marketplace()
    async with serving(under_test.engine) as (_, channel):
        yield under_test, pb_grpc.PolicyEngineServiceStub(channel)


@pytest.mark.parametrize(("query", "fields"), [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
async def test_grpc_refuses_bad_values_exactly_as_http(
    served: tuple[EngineUnderTest, pb_grpc.PolicyEngineServiceStub], query: str,
    fields: dict[str, Any],
) -> None:
    """A bad value is INVALID_ARGUMENT with the message the HTTP path gives for the same JSON."""
    under_test, stub = served
    method, message_type = _METHODS[query]
    request: Message = _message(message_type, fields)
    with pytest.raises(InputValidationError) as over_http:
        under_test.engine.decide(query, request_input(request))  # what the HTTP shell calls
    with pytest.raises(aio.AioRpcError) as over_grpc:
        await getattr(stub, method)(request)
    assert over_grpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert over_grpc.value.details() == str(over_http.value)


async def test_fast_path_answers_as_the_checked_path(
    served: tuple[EngineUnderTest, pb_grpc.PolicyEngineServiceStub],
) -> None:
    """A listing decided over gRPC gets the violations the fully checked path gives it."""
    under_test, stub = served
    listing = example("listing-breaking-3-policies")
    answer = await stub.ValidateService(_message(pb.ValidateServiceRequest, listing))
    checked = under_test.engine.decide("validate_service", listing)
    assert {v.policy_id for v in answer.violations} == {
        v["policy_id"] for v in checked["violations"]}
    assert answer.compliant is checked["compliant"] is False


def test_a_tier_without_a_rate_is_a_free_tier_as_origin_clients_mean_it() -> None:
    """The origin's `rate` is a plain proto3 double, so its clients never put a 0 on the wire:
    a tier that arrives without a rate is rate 0, and meets `require_free_tier`."""
    origin_free_tier = pb.ValidateServiceRequest.FromString(pb.ValidateServiceRequest(
        service_id="svc-1", name="One", endpoint=pb.ServiceEndpoint(url="https://one.example"),
        pricing=pb.ServicePricing(model="usage", rates=[pb.PricingTier(tier="basic")]),
    ).SerializeToString())
    document, plainly_valid = grpc_inputs.listing_input(origin_free_tier)
    assert document["pricing"]["rates"] == [{"tier": "basic", "rate": 0.0}]
    assert request_input(origin_free_tier) == document and plainly_valid
    policy_set = compile_policy_set([parse_policy({
        "id": "free", "name": "Free tier", "type": "pricing",
        "rule": {"require_free_tier": True}})], {})
    decision = policy_set.evaluate("validate_service", document, now=0.0, decision_id="d")
    assert decision["compliant"] is True
