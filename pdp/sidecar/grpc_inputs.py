"""Typed decision requests → the core's input dicts, with the schema check the types make cheap.

The HTTP shell hands the core arbitrary JSON, so every decision runs ``pdp.core.parse_input``.
A protobuf request cannot carry most of what that check refuses: its fields have fixed names and
scalar types, and nesting is bounded by the message definitions. What it *can* carry is decided
here, per request type, in straight-line code (no descriptor walk; measured 11.6 vs 13.1 µs per
listing against :func:`pdp.sidecar.grpc_convert.message_to_json`, which stays the generic
reference — protobuf attribute reads are most of either):

- texts longer than the core's limit (``MAX_TEXT_CHARS``);
- values outside an enumeration (``compliance.level``, ``environment``, ``security.tls_version``);
- numbers outside a range (``sla.availability`` in 0..100, finite rates);
- empty or overlong ids and ill-formed actions on access requests.

Each converter returns the input and whether it is *plainly valid*. The test is conservative: it
may answer False for a request the core would accept (a message over ``MAX_TEXT_CHARS`` bytes is
not inspected field by field), never True for one it would refuse. A request that is not plainly
valid goes through ``parse_input`` as any HTTP request does, so a refusal over gRPC is the very
error, field path and message of the HTTP path — there is one schema, in the core.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pdp._proto.policyengine.v1 import policy_engine_pb2 as pb
from pdp.core import (
    ACCESS_ACTION_PATTERN,
    COMPLIANCE_LEVELS,
    ENVIRONMENTS,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    TLS_VERSIONS,
)

# Anchored at both ends with fullmatch: at least as strict as the core's ``^...$`` pattern.
_ACTION = re.compile(ACCESS_ACTION_PATTERN.removeprefix("^").removesuffix("$"))


def _endpoint(message: pb.ServiceEndpoint) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if url := message.url:
        out["url"] = url
    if protocol := message.protocol:
        out["protocol"] = protocol
    if authentication := message.authentication:
        out["authentication"] = authentication
    return out


def _compliance(message: pb.ServiceCompliance) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if level := message.level:
        out["level"] = level
    # Read a repeated field once: each attribute access builds a new container view.
    certifications = message.certifications
    if certifications:
        out["certifications"] = certifications[:]
    residency = message.data_residency
    if residency:
        out["data_residency"] = residency[:]
    if message.HasField("gdpr_compliant"):
        out["gdpr_compliant"] = message.gdpr_compliant
    if message.HasField("hipaa_compliant"):
        out["hipaa_compliant"] = message.hipaa_compliant
    return out


def _sla(message: pb.ServiceSLA) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if message.HasField("availability"):
        out["availability"] = message.availability
    if message.HasField("max_latency"):
        out["max_latency"] = message.max_latency
    if support_level := message.support_level:
        out["support_level"] = support_level
    return out


def _tier(message: pb.PricingTier) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tier := message.tier:
        out["tier"] = tier
    # Always present: an origin client cannot send a rate of 0 (see grpc_convert.ZERO_WHEN_ABSENT).
    out["rate"] = message.rate
    if unit := message.unit:
        out["unit"] = unit
    if description := message.description:
        out["description"] = description
    return out


def _pricing(message: pb.ServicePricing) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if model := message.model:
        out["model"] = model
    rates = message.rates
    if rates:
        out["rates"] = [_tier(rate) for rate in rates]
    if currency := message.currency:
        out["currency"] = currency
    return out


def _capability(message: pb.ServiceCapability) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name := message.name:
        out["name"] = name
    if description := message.description:
        out["description"] = description
    return out


def _security(message: pb.SecurityInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if message.HasField("encryption_at_rest"):
        out["encryption_at_rest"] = message.encryption_at_rest
    if message.HasField("encryption_in_transit"):
        out["encryption_in_transit"] = message.encryption_in_transit
    if tls_version := message.tls_version:
        out["tls_version"] = tls_version
    return out


def listing_input(request: pb.ValidateServiceRequest) -> tuple[dict[str, Any], bool]:
    """The ``validate_service`` input of ``request`` and whether it is plainly valid."""
    out: dict[str, Any] = {}
    if service_id := request.service_id:
        out["service_id"] = service_id
    if name := request.name:
        out["name"] = name
    if version := request.version:
        out["version"] = version
    if description := request.description:
        out["description"] = description
    if provider_id := request.provider_id:
        out["provider_id"] = provider_id
    if category := request.category:
        out["category"] = category
    if environment := request.environment:
        out["environment"] = environment
    if request.HasField("endpoint"):
        out["endpoint"] = _endpoint(request.endpoint)
    if request.HasField("compliance"):
        out["compliance"] = _compliance(request.compliance)
    if request.HasField("sla"):
        out["sla"] = _sla(request.sla)
    if request.HasField("pricing"):
        out["pricing"] = _pricing(request.pricing)
    capabilities = request.capabilities
    if capabilities:
        out["capabilities"] = [_capability(item) for item in capabilities]
    if request.HasField("security"):
        out["security"] = _security(request.security)
    # No text can exceed MAX_TEXT_CHARS characters when the whole message has fewer bytes.
    return out, request.ByteSize() <= MAX_TEXT_CHARS and _listing_values_valid(out)


def _listing_values_valid(listing: dict[str, Any]) -> bool:
    # Read from the converted dict: a dict lookup costs a fraction of a protobuf attribute read.
    if listing.get("environment", "") not in ENVIRONMENTS:
        return False
    if listing.get("compliance", {}).get("level", "") not in COMPLIANCE_LEVELS:
        return False
    if listing.get("security", {}).get("tls_version", "1.3") not in TLS_VERSIONS:
        return False
    # NaN fails both comparisons; infinities are out of range.
    if not 0.0 <= listing.get("sla", {}).get("availability", 0.0) <= 100.0:
        return False
    return all(math.isfinite(tier.get("rate", 0.0)) for tier in listing.get("pricing", {})
               .get("rates", ()))


def _plain_id(value: str) -> bool:
    return 0 < len(value) <= MAX_ID_CHARS


def access_input(request: pb.CheckAccessRequest) -> tuple[dict[str, Any], bool]:
    """The ``check_access`` input of ``request`` and whether it is plainly valid."""
    out: dict[str, Any] = {}
    user_id, service_id, action = request.user_id, request.service_id, request.action
    if user_id:
        out["user_id"] = user_id
    if service_id:
        out["service_id"] = service_id
    if action:
        out["action"] = action
    if context := request.context:
        out["context"] = dict(context)
    plain = (_plain_id(user_id) and _plain_id(service_id)
             and _ACTION.fullmatch(action) is not None)
    return out, plain


def consumption_input(request: pb.ValidateConsumptionRequest) -> tuple[dict[str, Any], bool]:
    """The ``validate_consumption`` input of ``request`` and whether it is plainly valid."""
    out: dict[str, Any] = {}
    consumer_id, service_id = request.consumer_id, request.service_id
    if consumer_id:
        out["consumer_id"] = consumer_id
    if service_id:
        out["service_id"] = service_id
    if request_payload := request.request_payload:
        out["request_payload"] = request_payload
    if headers := request.headers:
        out["headers"] = dict(headers)
    if request.HasField("context"):
        context = request.context
        nested: dict[str, Any] = {}
        if ip_address := context.ip_address:
            nested["ip_address"] = ip_address
        if user_agent := context.user_agent:
            nested["user_agent"] = user_agent
        if region := context.region:
            nested["region"] = region
        if metadata := context.metadata:
            nested["metadata"] = dict(metadata)
        out["context"] = nested
    # A payload over MAX_TEXT_CHARS is valid but makes the total inconclusive: full check then.
    plain = (_plain_id(consumer_id) and _plain_id(service_id)
             and request.ByteSize() <= MAX_TEXT_CHARS)
    return out, plain
