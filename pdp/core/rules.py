"""The typed ``rule`` of each policy type (DESIGN §4.1), validated with pydantic.

Every model forbids unknown parameters and uses strict scalar types, so ``"true"`` is not a boolean
and ``"5"`` is not a number; list items are validated one by one, so an error names its index
(``rule.allowed_ip_ranges.1``). CIDRs and RE2 patterns are checked here, at parse time, so an
admin learns about a bad policy when saving it, not when a bundle fails to load.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from pdp.core.conditions import Condition, split_path
from pdp.core.patterns import compile_re2

Level = Literal["public", "internal", "confidential", "restricted"]
LEVELS: tuple[Level, ...] = ("public", "internal", "confidential", "restricted")
Detector = Literal["email", "phone", "credit_card", "ssn", "ip_address", "secret"]
DETECTORS: tuple[Detector, ...] = ("email", "phone", "credit_card", "ssn", "ip_address", "secret")

Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=64 * 1024)]
# ISO 3166 alpha-2 codes, plus region codes such as EU or APAC.
RegionCode = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z]{2,8}$")]
NonNegative = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]
PositiveCount = Annotated[StrictInt, Field(ge=1, le=10**12)]


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value)
    except ValueError as exc:
        hint = ""
        try:
            hint = f"; did you mean {ipaddress.ip_network(value, strict=False)}?"
        except ValueError:
            pass
        raise ValueError(f"invalid CIDR {value!r}: {exc}{hint}") from None
    return value


def _check_pattern(value: str) -> str:
    compile_re2(value)
    return value


def _check_path(value: str) -> str:
    split_path(value)  # raises ValueError naming the empty segment
    return value


Cidr = Annotated[StrictStr, AfterValidator(_check_cidr)]
Re2Pattern = Annotated[Text, AfterValidator(_check_pattern)]


class RuleModel(BaseModel):
    """Base of the rule models: unknown parameters rejected, immutable, at least one parameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _sets_a_parameter(self) -> RuleModel:
        if not self.model_fields_set:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"the rule sets no parameter; use at least one of: {names}")
        return self


class DataResidencyRule(RuleModel):
    """Where a service may keep data: ``compliance.data_residency``."""

    allowed_countries: tuple[RegionCode, ...] = ()
    blocked_countries: tuple[RegionCode, ...] = ()
    require_specification: StrictBool = False
    minimum_locations: Annotated[StrictInt, Field(ge=0, le=10_000)] = 0


class ComplianceRule(RuleModel):
    """Certifications and regulations a service must meet: ``compliance.*``."""

    required_certifications: tuple[Text, ...] = ()
    require_gdpr_compliance: StrictBool = False
    require_hipaa_compliance: StrictBool = False
    require_soc2_compliance: StrictBool = False
    minimum_compliance_level: Level | None = None

    @model_validator(mode="after")
    def _level_scopes_something(self) -> ComplianceRule:
        if self.minimum_compliance_level is not None and self.model_fields_set == {
            "minimum_compliance_level"
        }:
            raise ValueError("minimum_compliance_level only scopes the other parameters; set at "
                             "least one of required_certifications or a require_* flag")
        return self


class SecurityRule(RuleModel):
    """Transport, authentication and encryption: ``endpoint.*`` and ``security.*``."""

    require_https: StrictBool = False
    require_authentication: StrictBool = False
    allowed_authentication_types: tuple[Text, ...] = ()
    require_encryption_at_rest: StrictBool = False
    require_encryption_in_transit: StrictBool = False
    minimum_tls_version: Literal[10, 11, 12, 13] | None = None


class PricingRule(RuleModel):
    """Price ceilings, a free tier and the enterprise SLA: ``pricing.*`` and ``sla.*``."""

    max_rate_per_token: NonNegative | None = None
    max_rate_per_request: NonNegative | None = None
    require_free_tier: StrictBool = False
    minimum_sla_for_enterprise: Annotated[StrictFloat, Field(ge=0, le=100)] | None = None


class AccessControlRule(RuleModel):
    """Who may use a service: roles, blocked users, approvals, source networks (§4.3)."""

    allowed_user_roles: tuple[Text, ...] = ()
    blocked_user_ids: tuple[Text, ...] = ()
    require_approval: StrictBool = False
    allowed_ip_ranges: tuple[Cidr, ...] = ()


class RateLimitingRule(RuleModel):
    """Request rates per consumer and service, and tokens per request (validate_consumption)."""

    max_requests_per_minute: PositiveCount | None = None
    max_requests_per_hour: PositiveCount | None = None
    max_requests_per_day: PositiveCount | None = None
    max_tokens_per_request: PositiveCount | None = None


class ContentFilteringRule(RuleModel):
    """What a consumption payload must not contain (``request_payload``)."""

    blocked_terms: tuple[Text, ...] = ()
    blocked_patterns: tuple[Re2Pattern, ...] = ()
    max_payload_bytes: PositiveCount | None = None


class DataClassificationRule(RuleModel):
    """Sensitive data a payload may carry, by the level of what the detectors find."""

    detect: tuple[Detector, ...] = Field(default=DETECTORS, min_length=1)
    max_level: Level | None = None


class CustomRule(RuleModel):
    """A violation whenever ``violation_if`` holds; ``query`` says which decision it joins."""

    violation_if: Condition
    field: Annotated[StrictStr, StringConstraints(min_length=1, max_length=1024),
                     AfterValidator(_check_path)]
    expected_value: StrictStr | None = None
    query: Literal["validate_service", "check_access", "validate_consumption"] = (
        "validate_service"
    )
