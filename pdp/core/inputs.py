"""Input schemas of the four queries (the origin's request messages as JSON, DESIGN §5).

Shells call ``parse_input`` before deciding so that a malformed request gets 400 /
INVALID_ARGUMENT naming the field (``compliance.data_residency.0``); evaluation itself accepts
anything and never raises. Scalars are strict (``"true"`` is not a boolean), objects with a fixed
shape reject unknown fields, and free-form maps (``context``, ``headers``, ``metadata``) take
JSON scalars. Every field may be absent: absent fields are what the policies judge.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

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
    ValidationError,
)

from pdp.core.document import field_errors
from pdp.core.errors import InputValidationError, UnknownQueryError
from pdp.core.policyset import QUERIES

Text = Annotated[StrictStr, StringConstraints(max_length=64 * 1024)]
Id = Annotated[StrictStr, StringConstraints(min_length=1, max_length=1024)]


def _scalar(value: Any) -> Any:
    # One validator rather than a union of types, so an error names the field, not a branch.
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError("must be a string, number, boolean or null")


Scalar = Annotated[Any, AfterValidator(_scalar)]
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(_Message):
    """``endpoint``: ServiceEndpoint."""

    url: Text | None = None
    protocol: Text | None = None
    authentication: Text | None = None


class Compliance(_Message):
    """``compliance``: ServiceCompliance."""

    level: Literal["public", "internal", "confidential", "restricted", ""] | None = None
    certifications: list[Text] | None = None
    data_residency: list[Text] | None = None
    gdpr_compliant: StrictBool | None = None
    hipaa_compliant: StrictBool | None = None


class Sla(_Message):
    """``sla``: ServiceSLA."""

    availability: Annotated[Number, Field(ge=0, le=100)] | None = None
    max_latency: StrictInt | None = None
    support_level: Text | None = None


class PricingTier(_Message):
    """``pricing.rates[i]``: PricingTier."""

    tier: Text | None = None
    rate: Number | None = None
    unit: Text | None = None
    description: Text | None = None


class Pricing(_Message):
    """``pricing``: ServicePricing."""

    model: Text | None = None
    rates: list[PricingTier] | None = None
    currency: Text | None = None


class Capability(_Message):
    """``capabilities[i]``: ServiceCapability."""

    name: Text | None = None
    description: Text | None = None


class Security(_Message):
    """``security``: the transport facts security policies check (pdp's addition)."""

    encryption_at_rest: StrictBool | None = None
    encryption_in_transit: StrictBool | None = None
    tls_version: Literal["1.0", "1.1", "1.2", "1.3", 10, 11, 12, 13] | None = None


class ValidateServiceInput(_Message):
    """ValidateServiceRequest plus ``environment`` and ``security``."""

    service_id: Text | None = None
    name: Text | None = None
    version: Text | None = None
    description: Text | None = None
    provider_id: Text | None = None
    category: Text | None = None
    environment: Literal["production", "staging", "development", ""] | None = None
    endpoint: Endpoint | None = None
    compliance: Compliance | None = None
    sla: Sla | None = None
    pricing: Pricing | None = None
    capabilities: list[Capability] | None = None
    security: Security | None = None


class CheckAccessInput(_Message):
    """CheckAccessRequest."""

    user_id: Id
    service_id: Id
    action: Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    context: dict[str, Scalar] | None = None


class ConsumptionContext(_Message):
    """ConsumptionContext."""

    ip_address: Text | None = None
    user_agent: Text | None = None
    region: Text | None = None
    metadata: dict[str, Scalar] | None = None


class ValidateConsumptionInput(_Message):
    """ValidateConsumptionRequest."""

    consumer_id: Id
    service_id: Id
    request_payload: StrictStr | None = None
    headers: dict[str, Text] | None = None
    context: ConsumptionContext | None = None


class AuthorizeHttpInput(_Message):
    """An HTTP request for ext_authz: method, path, headers, and the user if already known."""

    method: Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z]{1,16}$")]
    path: Annotated[StrictStr, StringConstraints(pattern=r"^/", max_length=8192)]
    headers: dict[str, Text] | None = None
    user_id: Id | None = None
    context: dict[str, Scalar] | None = None


_MODELS: dict[str, type[_Message]] = {
    "validate_service": ValidateServiceInput,
    "check_access": CheckAccessInput,
    "validate_consumption": ValidateConsumptionInput,
    "authorize_http": AuthorizeHttpInput,
}


def parse_input(query: str, raw: object) -> dict[str, Any]:
    """Check ``raw`` against the query's schema and return it (unchanged) as the input dict.

    Raises ``UnknownQueryError`` for a query not in ``QUERIES`` and ``InputValidationError``
    naming every offending field otherwise.
    """
    model = _MODELS.get(query)
    if model is None:
        raise UnknownQueryError(query, QUERIES)
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        raise InputValidationError(field_errors(exc)) from None
    return raw if type(raw) is dict else dict(raw)  # type: ignore[call-overload]
