"""The wire contract: the origin's and Envoy's field names and numbers, pinned.

Renumbering or renaming any of these breaks deployed clients silently (protobuf decodes the wrong
field), so each is pinned here; pdp's own additions may come and go, these may not.
"""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FileDescriptor

from pdp._proto.envoy.config.core.v3 import base_pb2
from pdp._proto.envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from pdp._proto.envoy.type.v3 import http_status_pb2
from pdp._proto.google.rpc import status_pb2
from pdp._proto.policyengine.v1 import policy_engine_pb2

# The origin's policyengine.v1 messages: "name=number" for every origin field.
ORIGIN: dict[str, str] = {
    "ValidateServiceRequest": "service_id=1 name=2 version=3 description=4 provider_id=5 "
                              "category=6 endpoint=7 compliance=8 sla=9 pricing=10 capabilities=11",
    "ServiceEndpoint": "url=1 protocol=2 authentication=3",
    "ServiceCompliance": "level=1 certifications=2 data_residency=3 gdpr_compliant=4 "
                         "hipaa_compliant=5",
    "ServiceSLA": "availability=1 max_latency=2 support_level=3",
    "ServicePricing": "model=1 rates=2 currency=3",
    "PricingTier": "tier=1 rate=2 unit=3 description=4",
    "ServiceCapability": "name=1 description=2",
    "ValidateServiceResponse": "compliant=1 violations=2 policy_version=3 validated_at=4 "
                               "metadata=5",
    "ValidationMetadata": "policies_evaluated=1 policies_passed=2 policies_failed=3 "
                          "validation_duration_ms=4",
    "PolicyViolation": "policy_id=1 policy_name=2 severity=3 message=4 remediation=5 field=6 "
                       "actual_value=7 expected_value=8",
    "CheckAccessRequest": "user_id=1 service_id=2 action=3 context=4",
    "CheckAccessResponse": "allowed=1 reason=2 required_permissions=3 missing_permissions=4",
    "ValidateConsumptionRequest": "consumer_id=1 service_id=2 request_payload=3 headers=4 "
                                  "context=5",
    "ConsumptionContext": "ip_address=1 user_agent=2 region=3 metadata=4",
    "ValidateConsumptionResponse": "allowed=1 reason=2 violations=3 limits=4",
    "ConsumptionLimits": "max_tokens=1 max_requests_per_minute=2 max_requests_per_day=3 "
                         "max_cost_per_request=4",
    "GetPolicyRequest": "policy_id=1",
    "GetPolicyResponse": "policy=1",
    "ListPoliciesRequest": "page_size=1 page_token=2 filter=3 order_by=4",
    "ListPoliciesResponse": "policies=1 next_page_token=2 total_count=3",
    "CreatePolicyRequest": "policy=1",
    "CreatePolicyResponse": "policy=1 created_at=2",
    "UpdatePolicyRequest": "policy_id=1 policy=2 update_mask=3",
    "UpdatePolicyResponse": "policy=1 updated_at=2",
    "DeletePolicyRequest": "policy_id=1",
    "DeletePolicyResponse": "success=1 deleted_at=2",
    "Policy": "id=1 name=2 description=3 type=4 enabled=5 severity=6 rule=7 metadata=8 "
              "created_at=9 updated_at=10 version=11",
    "PolicyRule": "data_residency=1 compliance=2 security=3 pricing=4 access_control=5 "
                  "rate_limiting=6",
    "DataResidencyRule": "allowed_countries=1 blocked_countries=2 require_specification=3 "
                         "minimum_locations=4",
    "ComplianceRule": "required_certifications=1 require_gdpr_compliance=2 "
                      "require_hipaa_compliance=3 require_soc2_compliance=4 "
                      "minimum_compliance_level=5",
    "SecurityRule": "require_https=1 require_authentication=2 allowed_authentication_types=3 "
                    "require_encryption_at_rest=4 require_encryption_in_transit=5 "
                    "minimum_tls_version=6",
    "PricingRule": "max_rate_per_token=1 max_rate_per_request=2 require_free_tier=3 "
                   "minimum_sla_for_enterprise=4",
    "AccessControlRule": "allowed_user_roles=1 blocked_user_ids=2 require_approval=3 "
                         "allowed_ip_ranges=4",
    "RateLimitingRule": "max_requests_per_minute=1 max_requests_per_hour=2 "
                        "max_requests_per_day=3 max_tokens_per_request=4",
    "HealthCheckRequest": "service=1",
    "HealthCheckResponse": "status=1 details=2 timestamp=3",
}

# Envoy's published ext_authz v3 numbers for the fields pdp declares.
ENVOY: list[tuple[FileDescriptor, str, str]] = [
    (external_auth_pb2.DESCRIPTOR, "CheckRequest", "attributes=1"),
    (external_auth_pb2.DESCRIPTOR, "DeniedHttpResponse", "status=1 headers=2 body=3"),
    (external_auth_pb2.DESCRIPTOR, "OkHttpResponse",
     "headers=2 headers_to_remove=5 response_headers_to_add=6"),
    (external_auth_pb2.DESCRIPTOR, "CheckResponse",
     "status=1 denied_response=2 ok_response=3 dynamic_metadata=4"),
    (attribute_context_pb2.DESCRIPTOR, "AttributeContext",
     "source=1 destination=2 request=4 context_extensions=10"),
    (attribute_context_pb2.DESCRIPTOR, "AttributeContext.Request", "time=1 http=2"),
    (attribute_context_pb2.DESCRIPTOR, "AttributeContext.HttpRequest",
     "id=1 method=2 headers=3 path=4 host=5 scheme=6 query=7 fragment=8 size=9 protocol=10 "
     "body=11 raw_body=12 header_map=13"),
    (attribute_context_pb2.DESCRIPTOR, "AttributeContext.Peer",
     "address=1 service=2 labels=3 principal=4 certificate=5"),
    (base_pb2.DESCRIPTOR, "HeaderValue", "key=1 value=2 raw_value=3"),
    (base_pb2.DESCRIPTOR, "HeaderValueOption",
     "header=1 append=2 append_action=3 keep_empty_value=4"),
    (base_pb2.DESCRIPTOR, "HeaderMap", "headers=1"),
    (http_status_pb2.DESCRIPTOR, "HttpStatus", "code=1"),
    (status_pb2.DESCRIPTOR, "Status", "code=1 message=2 details=3"),
]


def _fields(file: FileDescriptor, dotted: str) -> dict[str, int]:
    outer, _, inner = dotted.partition(".")
    message = file.message_types_by_name[outer]
    if inner:
        message = message.nested_types_by_name[inner]
    return {field.name: field.number for field in message.fields}


def _pairs(spec: str) -> dict[str, int]:
    return {name: int(number) for name, number in (item.split("=") for item in spec.split())}


@pytest.mark.parametrize("message", sorted(ORIGIN))
def test_origin_fields_keep_their_names_and_numbers(message: str) -> None:
    """Every field of the origin's messages is present under its origin name and number."""
    declared = _fields(policy_engine_pb2.DESCRIPTOR, message)
    expected = _pairs(ORIGIN[message])
    assert {name: declared.get(name) for name in expected} == expected


def test_origin_service_has_its_nine_methods() -> None:
    """PolicyEngineService offers the origin's nine methods with their message types."""
    service = policy_engine_pb2.DESCRIPTOR.services_by_name["PolicyEngineService"]
    assert policy_engine_pb2.DESCRIPTOR.package == "policyengine.v1"
    assert [(m.name, m.input_type.name, m.output_type.name) for m in service.methods] == [
        (name, f"{name}Request", f"{name}Response")
        for name in ("ValidateService", "CheckAccess", "ValidateConsumption", "GetPolicy",
                     "ListPolicies", "CreatePolicy", "UpdatePolicy", "DeletePolicy",
                     "HealthCheck")
    ]


def test_origin_enums_keep_their_values() -> None:
    """PolicyType and ServingStatus values are the origin's."""
    names = ("POLICY_TYPE_UNSPECIFIED", "DATA_RESIDENCY", "COMPLIANCE", "SECURITY", "PRICING",
             "ACCESS_CONTROL", "RATE_LIMITING", "CONTENT_FILTERING", "DATA_CLASSIFICATION")
    declared = {name: policy_engine_pb2.PolicyType.Value(name) for name in names}
    assert declared == {name: number for number, name in enumerate(names)}
    status = policy_engine_pb2.HealthCheckResponse
    assert (status.UNKNOWN, status.SERVING, status.NOT_SERVING) == (0, 1, 2)


@pytest.mark.parametrize(("file", "message", "spec"), ENVOY, ids=[m for _, m, _ in ENVOY])
def test_envoy_fields_use_the_published_numbers(
    file: FileDescriptor, message: str, spec: str
) -> None:
    """ext_authz messages use Envoy's published field numbers, so Envoy's bytes decode right."""
    assert _fields(file, message) == _pairs(spec)


def test_envoy_service_is_authorization_check() -> None:
    """The service Envoy calls is envoy.service.auth.v3.Authorization/Check."""
    service = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"]
    assert service.full_name == "envoy.service.auth.v3.Authorization"
    assert [method.name for method in service.methods] == ["Check"]
