import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PolicyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_TYPE_UNSPECIFIED: _ClassVar[PolicyType]
    DATA_RESIDENCY: _ClassVar[PolicyType]
    COMPLIANCE: _ClassVar[PolicyType]
    SECURITY: _ClassVar[PolicyType]
    PRICING: _ClassVar[PolicyType]
    ACCESS_CONTROL: _ClassVar[PolicyType]
    RATE_LIMITING: _ClassVar[PolicyType]
    CONTENT_FILTERING: _ClassVar[PolicyType]
    DATA_CLASSIFICATION: _ClassVar[PolicyType]
    CUSTOM: _ClassVar[PolicyType]
POLICY_TYPE_UNSPECIFIED: PolicyType
DATA_RESIDENCY: PolicyType
COMPLIANCE: PolicyType
SECURITY: PolicyType
PRICING: PolicyType
ACCESS_CONTROL: PolicyType
RATE_LIMITING: PolicyType
CONTENT_FILTERING: PolicyType
DATA_CLASSIFICATION: PolicyType
CUSTOM: PolicyType

class ValidateServiceRequest(_message.Message):
    __slots__ = ("service_id", "name", "version", "description", "provider_id", "category", "endpoint", "compliance", "sla", "pricing", "capabilities", "environment", "security", "explain")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_FIELD_NUMBER: _ClassVar[int]
    SLA_FIELD_NUMBER: _ClassVar[int]
    PRICING_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    name: str
    version: str
    description: str
    provider_id: str
    category: str
    endpoint: ServiceEndpoint
    compliance: ServiceCompliance
    sla: ServiceSLA
    pricing: ServicePricing
    capabilities: _containers.RepeatedCompositeFieldContainer[ServiceCapability]
    environment: str
    security: SecurityInfo
    explain: bool
    def __init__(self, service_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., provider_id: _Optional[str] = ..., category: _Optional[str] = ..., endpoint: _Optional[_Union[ServiceEndpoint, _Mapping]] = ..., compliance: _Optional[_Union[ServiceCompliance, _Mapping]] = ..., sla: _Optional[_Union[ServiceSLA, _Mapping]] = ..., pricing: _Optional[_Union[ServicePricing, _Mapping]] = ..., capabilities: _Optional[_Iterable[_Union[ServiceCapability, _Mapping]]] = ..., environment: _Optional[str] = ..., security: _Optional[_Union[SecurityInfo, _Mapping]] = ..., explain: _Optional[bool] = ...) -> None: ...

class ServiceEndpoint(_message.Message):
    __slots__ = ("url", "protocol", "authentication")
    URL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATION_FIELD_NUMBER: _ClassVar[int]
    url: str
    protocol: str
    authentication: str
    def __init__(self, url: _Optional[str] = ..., protocol: _Optional[str] = ..., authentication: _Optional[str] = ...) -> None: ...

class ServiceCompliance(_message.Message):
    __slots__ = ("level", "certifications", "data_residency", "gdpr_compliant", "hipaa_compliant")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_RESIDENCY_FIELD_NUMBER: _ClassVar[int]
    GDPR_COMPLIANT_FIELD_NUMBER: _ClassVar[int]
    HIPAA_COMPLIANT_FIELD_NUMBER: _ClassVar[int]
    level: str
    certifications: _containers.RepeatedScalarFieldContainer[str]
    data_residency: _containers.RepeatedScalarFieldContainer[str]
    gdpr_compliant: bool
    hipaa_compliant: bool
    def __init__(self, level: _Optional[str] = ..., certifications: _Optional[_Iterable[str]] = ..., data_residency: _Optional[_Iterable[str]] = ..., gdpr_compliant: _Optional[bool] = ..., hipaa_compliant: _Optional[bool] = ...) -> None: ...

class ServiceSLA(_message.Message):
    __slots__ = ("availability", "max_latency", "support_level")
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    MAX_LATENCY_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_LEVEL_FIELD_NUMBER: _ClassVar[int]
    availability: float
    max_latency: int
    support_level: str
    def __init__(self, availability: _Optional[float] = ..., max_latency: _Optional[int] = ..., support_level: _Optional[str] = ...) -> None: ...

class ServicePricing(_message.Message):
    __slots__ = ("model", "rates", "currency")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RATES_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    model: str
    rates: _containers.RepeatedCompositeFieldContainer[PricingTier]
    currency: str
    def __init__(self, model: _Optional[str] = ..., rates: _Optional[_Iterable[_Union[PricingTier, _Mapping]]] = ..., currency: _Optional[str] = ...) -> None: ...

class PricingTier(_message.Message):
    __slots__ = ("tier", "rate", "unit", "description")
    TIER_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    tier: str
    rate: float
    unit: str
    description: str
    def __init__(self, tier: _Optional[str] = ..., rate: _Optional[float] = ..., unit: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ServiceCapability(_message.Message):
    __slots__ = ("name", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class SecurityInfo(_message.Message):
    __slots__ = ("encryption_at_rest", "encryption_in_transit", "tls_version")
    ENCRYPTION_AT_REST_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_IN_TRANSIT_FIELD_NUMBER: _ClassVar[int]
    TLS_VERSION_FIELD_NUMBER: _ClassVar[int]
    encryption_at_rest: bool
    encryption_in_transit: bool
    tls_version: str
    def __init__(self, encryption_at_rest: _Optional[bool] = ..., encryption_in_transit: _Optional[bool] = ..., tls_version: _Optional[str] = ...) -> None: ...

class ValidateServiceResponse(_message.Message):
    __slots__ = ("compliant", "violations", "policy_version", "validated_at", "metadata", "decision_id", "bundle_revision", "warnings", "explain")
    COMPLIANT_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_REVISION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    compliant: bool
    violations: _containers.RepeatedCompositeFieldContainer[PolicyViolation]
    policy_version: str
    validated_at: _timestamp_pb2.Timestamp
    metadata: ValidationMetadata
    decision_id: str
    bundle_revision: str
    warnings: _containers.RepeatedCompositeFieldContainer[PolicyViolation]
    explain: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, compliant: _Optional[bool] = ..., violations: _Optional[_Iterable[_Union[PolicyViolation, _Mapping]]] = ..., policy_version: _Optional[str] = ..., validated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Union[ValidationMetadata, _Mapping]] = ..., decision_id: _Optional[str] = ..., bundle_revision: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[PolicyViolation, _Mapping]]] = ..., explain: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class ValidationMetadata(_message.Message):
    __slots__ = ("policies_evaluated", "policies_passed", "policies_failed", "validation_duration_ms")
    POLICIES_EVALUATED_FIELD_NUMBER: _ClassVar[int]
    POLICIES_PASSED_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FAILED_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    policies_evaluated: int
    policies_passed: int
    policies_failed: int
    validation_duration_ms: int
    def __init__(self, policies_evaluated: _Optional[int] = ..., policies_passed: _Optional[int] = ..., policies_failed: _Optional[int] = ..., validation_duration_ms: _Optional[int] = ...) -> None: ...

class PolicyViolation(_message.Message):
    __slots__ = ("policy_id", "policy_name", "severity", "message", "remediation", "field", "actual_value", "expected_value", "enforcement")
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_NAME_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REMEDIATION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VALUE_FIELD_NUMBER: _ClassVar[int]
    ENFORCEMENT_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    policy_name: str
    severity: str
    message: str
    remediation: str
    field: str
    actual_value: str
    expected_value: str
    enforcement: str
    def __init__(self, policy_id: _Optional[str] = ..., policy_name: _Optional[str] = ..., severity: _Optional[str] = ..., message: _Optional[str] = ..., remediation: _Optional[str] = ..., field: _Optional[str] = ..., actual_value: _Optional[str] = ..., expected_value: _Optional[str] = ..., enforcement: _Optional[str] = ...) -> None: ...

class CheckAccessRequest(_message.Message):
    __slots__ = ("user_id", "service_id", "action", "context", "explain")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    service_id: str
    action: str
    context: _containers.ScalarMap[str, str]
    explain: bool
    def __init__(self, user_id: _Optional[str] = ..., service_id: _Optional[str] = ..., action: _Optional[str] = ..., context: _Optional[_Mapping[str, str]] = ..., explain: _Optional[bool] = ...) -> None: ...

class CheckAccessResponse(_message.Message):
    __slots__ = ("allowed", "reason", "required_permissions", "missing_permissions", "decision_id", "bundle_revision", "violations", "warnings", "explain")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    MISSING_PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_REVISION_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    required_permissions: _containers.RepeatedScalarFieldContainer[str]
    missing_permissions: _containers.RepeatedScalarFieldContainer[str]
    decision_id: str
    bundle_revision: str
    violations: _containers.RepeatedCompositeFieldContainer[PolicyViolation]
    warnings: _containers.RepeatedCompositeFieldContainer[PolicyViolation]
    explain: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., required_permissions: _Optional[_Iterable[str]] = ..., missing_permissions: _Optional[_Iterable[str]] = ..., decision_id: _Optional[str] = ..., bundle_revision: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[PolicyViolation, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[PolicyViolation, _Mapping]]] = ..., explain: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class ValidateConsumptionRequest(_message.Message):
    __slots__ = ("consumer_id", "service_id", "request_payload", "headers", "context", "explain")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONSUMER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    consumer_id: str
    service_id: str
    request_payload: str
    headers: _containers.ScalarMap[str, str]
    context: ConsumptionContext
    explain: bool
    def __init__(self, consumer_id: _Optional[str] = ..., service_id: _Optional[str] = ..., request_payload: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., context: _Optional[_Union[ConsumptionContext, _Mapping]] = ..., explain: _Optional[bool] = ...) -> None: ...

class ConsumptionContext(_message.Message):
    __slots__ = ("ip_address", "user_agent", "region", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ip_address: str
    user_agent: str
    region: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, ip_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., region: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ValidateConsumptionResponse(_message.Message):
    __slots__ = ("allowed", "reason", "violations", "limits", "decision_id", "bundle_revision", "warnings", "explain")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_REVISION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    violations: _containers.RepeatedCompositeFieldContainer[PolicyViolation]
    limits: ConsumptionLimits
    decision_id: str
    bundle_revision: str
    warnings: _containers.RepeatedCompositeFieldContainer[PolicyViolation]
    explain: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[PolicyViolation, _Mapping]]] = ..., limits: _Optional[_Union[ConsumptionLimits, _Mapping]] = ..., decision_id: _Optional[str] = ..., bundle_revision: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[PolicyViolation, _Mapping]]] = ..., explain: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class ConsumptionLimits(_message.Message):
    __slots__ = ("max_tokens", "max_requests_per_minute", "max_requests_per_day", "max_cost_per_request", "max_requests_per_hour")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUESTS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUESTS_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    max_requests_per_minute: int
    max_requests_per_day: int
    max_cost_per_request: float
    max_requests_per_hour: int
    def __init__(self, max_tokens: _Optional[int] = ..., max_requests_per_minute: _Optional[int] = ..., max_requests_per_day: _Optional[int] = ..., max_cost_per_request: _Optional[float] = ..., max_requests_per_hour: _Optional[int] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("policy_id",)
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    def __init__(self, policy_id: _Optional[str] = ...) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter", "order_by")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    order_by: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies", "next_page_token", "total_count")
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[Policy]
    next_page_token: str
    total_count: int
    def __init__(self, policies: _Optional[_Iterable[_Union[Policy, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class CreatePolicyRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class CreatePolicyResponse(_message.Message):
    __slots__ = ("policy", "created_at")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdatePolicyRequest(_message.Message):
    __slots__ = ("policy_id", "policy", "update_mask")
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    policy: Policy
    update_mask: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, policy_id: _Optional[str] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., update_mask: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdatePolicyResponse(_message.Message):
    __slots__ = ("policy", "updated_at")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeletePolicyRequest(_message.Message):
    __slots__ = ("policy_id",)
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    def __init__(self, policy_id: _Optional[str] = ...) -> None: ...

class DeletePolicyResponse(_message.Message):
    __slots__ = ("success", "deleted_at")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    success: bool
    deleted_at: _timestamp_pb2.Timestamp
    def __init__(self, success: _Optional[bool] = ..., deleted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("id", "name", "description", "type", "enabled", "severity", "rule", "metadata", "created_at", "updated_at", "version", "enforcement", "when", "message", "remediation")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENFORCEMENT_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REMEDIATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    type: PolicyType
    enabled: bool
    severity: str
    rule: PolicyRule
    metadata: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    version: str
    enforcement: str
    when: _struct_pb2.Struct
    message: str
    remediation: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., type: _Optional[_Union[PolicyType, str]] = ..., enabled: _Optional[bool] = ..., severity: _Optional[str] = ..., rule: _Optional[_Union[PolicyRule, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ..., enforcement: _Optional[str] = ..., when: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., message: _Optional[str] = ..., remediation: _Optional[str] = ...) -> None: ...

class PolicyRule(_message.Message):
    __slots__ = ("data_residency", "compliance", "security", "pricing", "access_control", "rate_limiting", "content_filtering", "data_classification", "custom")
    DATA_RESIDENCY_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    PRICING_FIELD_NUMBER: _ClassVar[int]
    ACCESS_CONTROL_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITING_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FILTERING_FIELD_NUMBER: _ClassVar[int]
    DATA_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    data_residency: DataResidencyRule
    compliance: ComplianceRule
    security: SecurityRule
    pricing: PricingRule
    access_control: AccessControlRule
    rate_limiting: RateLimitingRule
    content_filtering: ContentFilteringRule
    data_classification: DataClassificationRule
    custom: CustomRule
    def __init__(self, data_residency: _Optional[_Union[DataResidencyRule, _Mapping]] = ..., compliance: _Optional[_Union[ComplianceRule, _Mapping]] = ..., security: _Optional[_Union[SecurityRule, _Mapping]] = ..., pricing: _Optional[_Union[PricingRule, _Mapping]] = ..., access_control: _Optional[_Union[AccessControlRule, _Mapping]] = ..., rate_limiting: _Optional[_Union[RateLimitingRule, _Mapping]] = ..., content_filtering: _Optional[_Union[ContentFilteringRule, _Mapping]] = ..., data_classification: _Optional[_Union[DataClassificationRule, _Mapping]] = ..., custom: _Optional[_Union[CustomRule, _Mapping]] = ...) -> None: ...

class DataResidencyRule(_message.Message):
    __slots__ = ("allowed_countries", "blocked_countries", "require_specification", "minimum_locations")
    ALLOWED_COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_SPECIFICATION_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    allowed_countries: _containers.RepeatedScalarFieldContainer[str]
    blocked_countries: _containers.RepeatedScalarFieldContainer[str]
    require_specification: bool
    minimum_locations: int
    def __init__(self, allowed_countries: _Optional[_Iterable[str]] = ..., blocked_countries: _Optional[_Iterable[str]] = ..., require_specification: _Optional[bool] = ..., minimum_locations: _Optional[int] = ...) -> None: ...

class ComplianceRule(_message.Message):
    __slots__ = ("required_certifications", "require_gdpr_compliance", "require_hipaa_compliance", "require_soc2_compliance", "minimum_compliance_level")
    REQUIRED_CERTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_GDPR_COMPLIANCE_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_HIPAA_COMPLIANCE_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_SOC2_COMPLIANCE_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_COMPLIANCE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    required_certifications: _containers.RepeatedScalarFieldContainer[str]
    require_gdpr_compliance: bool
    require_hipaa_compliance: bool
    require_soc2_compliance: bool
    minimum_compliance_level: str
    def __init__(self, required_certifications: _Optional[_Iterable[str]] = ..., require_gdpr_compliance: _Optional[bool] = ..., require_hipaa_compliance: _Optional[bool] = ..., require_soc2_compliance: _Optional[bool] = ..., minimum_compliance_level: _Optional[str] = ...) -> None: ...

class SecurityRule(_message.Message):
    __slots__ = ("require_https", "require_authentication", "allowed_authentication_types", "require_encryption_at_rest", "require_encryption_in_transit", "minimum_tls_version")
    REQUIRE_HTTPS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_AUTHENTICATION_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_AUTHENTICATION_TYPES_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_ENCRYPTION_AT_REST_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_ENCRYPTION_IN_TRANSIT_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_TLS_VERSION_FIELD_NUMBER: _ClassVar[int]
    require_https: bool
    require_authentication: bool
    allowed_authentication_types: _containers.RepeatedScalarFieldContainer[str]
    require_encryption_at_rest: bool
    require_encryption_in_transit: bool
    minimum_tls_version: int
    def __init__(self, require_https: _Optional[bool] = ..., require_authentication: _Optional[bool] = ..., allowed_authentication_types: _Optional[_Iterable[str]] = ..., require_encryption_at_rest: _Optional[bool] = ..., require_encryption_in_transit: _Optional[bool] = ..., minimum_tls_version: _Optional[int] = ...) -> None: ...

class PricingRule(_message.Message):
    __slots__ = ("max_rate_per_token", "max_rate_per_request", "require_free_tier", "minimum_sla_for_enterprise")
    MAX_RATE_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MAX_RATE_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_FREE_TIER_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_SLA_FOR_ENTERPRISE_FIELD_NUMBER: _ClassVar[int]
    max_rate_per_token: float
    max_rate_per_request: float
    require_free_tier: bool
    minimum_sla_for_enterprise: float
    def __init__(self, max_rate_per_token: _Optional[float] = ..., max_rate_per_request: _Optional[float] = ..., require_free_tier: _Optional[bool] = ..., minimum_sla_for_enterprise: _Optional[float] = ...) -> None: ...

class AccessControlRule(_message.Message):
    __slots__ = ("allowed_user_roles", "blocked_user_ids", "require_approval", "allowed_ip_ranges")
    ALLOWED_USER_ROLES_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_IP_RANGES_FIELD_NUMBER: _ClassVar[int]
    allowed_user_roles: _containers.RepeatedScalarFieldContainer[str]
    blocked_user_ids: _containers.RepeatedScalarFieldContainer[str]
    require_approval: bool
    allowed_ip_ranges: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, allowed_user_roles: _Optional[_Iterable[str]] = ..., blocked_user_ids: _Optional[_Iterable[str]] = ..., require_approval: _Optional[bool] = ..., allowed_ip_ranges: _Optional[_Iterable[str]] = ...) -> None: ...

class RateLimitingRule(_message.Message):
    __slots__ = ("max_requests_per_minute", "max_requests_per_hour", "max_requests_per_day", "max_tokens_per_request")
    MAX_REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUESTS_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUESTS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    max_requests_per_minute: int
    max_requests_per_hour: int
    max_requests_per_day: int
    max_tokens_per_request: int
    def __init__(self, max_requests_per_minute: _Optional[int] = ..., max_requests_per_hour: _Optional[int] = ..., max_requests_per_day: _Optional[int] = ..., max_tokens_per_request: _Optional[int] = ...) -> None: ...

class ContentFilteringRule(_message.Message):
    __slots__ = ("blocked_terms", "blocked_patterns", "max_payload_bytes")
    BLOCKED_TERMS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_PATTERNS_FIELD_NUMBER: _ClassVar[int]
    MAX_PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    blocked_terms: _containers.RepeatedScalarFieldContainer[str]
    blocked_patterns: _containers.RepeatedScalarFieldContainer[str]
    max_payload_bytes: int
    def __init__(self, blocked_terms: _Optional[_Iterable[str]] = ..., blocked_patterns: _Optional[_Iterable[str]] = ..., max_payload_bytes: _Optional[int] = ...) -> None: ...

class DataClassificationRule(_message.Message):
    __slots__ = ("detect", "max_level")
    DETECT_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVEL_FIELD_NUMBER: _ClassVar[int]
    detect: _containers.RepeatedScalarFieldContainer[str]
    max_level: str
    def __init__(self, detect: _Optional[_Iterable[str]] = ..., max_level: _Optional[str] = ...) -> None: ...

class CustomRule(_message.Message):
    __slots__ = ("violation_if", "field", "expected_value")
    VIOLATION_IF_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VALUE_FIELD_NUMBER: _ClassVar[int]
    violation_if: _struct_pb2.Struct
    field: str
    expected_value: _struct_pb2.Value
    def __init__(self, violation_if: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., field: _Optional[str] = ..., expected_value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class HealthCheckRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class HealthCheckResponse(_message.Message):
    __slots__ = ("status", "details", "timestamp")
    class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[HealthCheckResponse.ServingStatus]
        SERVING: _ClassVar[HealthCheckResponse.ServingStatus]
        NOT_SERVING: _ClassVar[HealthCheckResponse.ServingStatus]
    UNKNOWN: HealthCheckResponse.ServingStatus
    SERVING: HealthCheckResponse.ServingStatus
    NOT_SERVING: HealthCheckResponse.ServingStatus
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    status: HealthCheckResponse.ServingStatus
    details: _containers.ScalarMap[str, str]
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[_Union[HealthCheckResponse.ServingStatus, str]] = ..., details: _Optional[_Mapping[str, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
