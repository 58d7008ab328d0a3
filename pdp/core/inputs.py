"""Input schemas of the four queries (the origin's request messages as JSON, DESIGN §5).

Shells call ``parse_input`` before deciding so that a malformed request gets 400 /
INVALID_ARGUMENT naming the field (``compliance.data_residency.0``); evaluation itself accepts
anything and never raises. Scalars are strict (``"true"`` is not a boolean), objects with a fixed
shape reject unknown fields, and free-form maps (``context``, ``headers``, ``metadata``) take
JSON scalars. Every field may be absent: absent fields are what the policies judge.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Required, get_args

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from pdp.core.document import field_errors
from pdp.core.errors import InputValidationError, UnknownQueryError
from pdp.core.policyset import QUERIES

MAX_TEXT_CHARS = 64 * 1024
"""The longest text field (DESIGN §10: strings in conditions <= 64 KiB)."""
MAX_ID_CHARS = 1024
"""The longest id (``user_id``, ``service_id``, ``consumer_id``)."""
ACCESS_ACTION_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""What an access request's ``action`` must match."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have (DESIGN §10)."""


def json_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in ``value`` nest deeper than ``limit`` levels.

    Iterative, so a hostile document cannot exhaust the interpreter's stack; both shells call it
    on parsed request bodies before anything else reads them.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values()
                         if isinstance(child, dict | list))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return False


ComplianceLevel = Literal["public", "internal", "confidential", "restricted", ""]
Environment = Literal["production", "staging", "development", ""]
TlsVersion = Literal["1.0", "1.1", "1.2", "1.3", 10, 11, 12, 13]

# The enumerations as sets, for shells whose input is typed (gRPC) and needs only these checks.
COMPLIANCE_LEVELS: frozenset[str] = frozenset(get_args(ComplianceLevel))
"""Accepted ``compliance.level`` values."""
ENVIRONMENTS: frozenset[str] = frozenset(get_args(Environment))
"""Accepted ``environment`` values."""
TLS_VERSIONS: frozenset[str] = frozenset(v for v in get_args(TlsVersion) if isinstance(v, str))
"""Accepted ``security.tls_version`` texts (numbers 10-13 are accepted too)."""

Text = Annotated[StrictStr, StringConstraints(max_length=MAX_TEXT_CHARS)]
Id = Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


def _scalar(value: Any) -> Any:
    # One validator rather than a union of types, so an error names the field, not a branch.
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError("must be a string, number, boolean or null")


Scalar = Annotated[Any, AfterValidator(_scalar)]
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]


# TypedDicts, not models: the input is checked and returned as it is, so building model
# instances would be wasted work (it costs about 40% more on a full listing).
_message = with_config(ConfigDict(extra="forbid"))


@_message
class Endpoint(TypedDict, total=False):
    """``endpoint``: ServiceEndpoint."""

    url: Text | None
    protocol: Text | None
    authentication: Text | None


@_message
class Compliance(TypedDict, total=False):
    """``compliance``: ServiceCompliance."""

    level: ComplianceLevel | None
    certifications: list[Text] | None
    data_residency: list[Text] | None
    gdpr_compliant: StrictBool | None
    hipaa_compliant: StrictBool | None


@_message
class Sla(TypedDict, total=False):
    """``sla``: ServiceSLA."""

    availability: Annotated[Number, Field(ge=0, le=100)] | None
    max_latency: StrictInt | None
    support_level: Text | None


@_message
class PricingTier(TypedDict, total=False):
    """``pricing.rates[i]``: PricingTier."""

    tier: Text | None
    rate: Number | None
    unit: Text | None
    description: Text | None


@_message
class Pricing(TypedDict, total=False):
    """``pricing``: ServicePricing."""

    model: Text | None
    rates: list[PricingTier] | None
    currency: Text | None


@_message
class Capability(TypedDict, total=False):
    """``capabilities[i]``: ServiceCapability."""

    name: Text | None
    description: Text | None


@_message
class Security(TypedDict, total=False):
    """``security``: the transport facts security policies check (pdp's addition)."""

    encryption_at_rest: StrictBool | None
    encryption_in_transit: StrictBool | None
    tls_version: TlsVersion | None


@_message
class ValidateServiceInput(TypedDict, total=False):
    """ValidateServiceRequest plus ``environment`` and ``security``."""

    service_id: Text | None
    name: Text | None
    version: Text | None
    description: Text | None
    provider_id: Text | None
    category: Text | None
    environment: Environment | None
    endpoint: Endpoint | None
    compliance: Compliance | None
    sla: Sla | None
    pricing: Pricing | None
    capabilities: list[Capability] | None
    security: Security | None


@_message
class CheckAccessInput(TypedDict, total=False):
    """CheckAccessRequest."""

    user_id: Required[Id]
    service_id: Required[Id]
    action: Required[Annotated[StrictStr, StringConstraints(pattern=ACCESS_ACTION_PATTERN)]]
    context: dict[str, Scalar] | None


@_message
class ConsumptionContext(TypedDict, total=False):
    """ConsumptionContext."""

    ip_address: Text | None
    user_agent: Text | None
    region: Text | None
    metadata: dict[str, Scalar] | None


@_message
class ValidateConsumptionInput(TypedDict, total=False):
    """ValidateConsumptionRequest."""

    consumer_id: Required[Id]
    service_id: Required[Id]
    request_payload: StrictStr | None
    headers: dict[str, Text] | None
    context: ConsumptionContext | None


@_message
class AuthorizeHttpInput(TypedDict, total=False):
    """An HTTP request for ext_authz: method, path, headers, and the user if already known."""

    method: Required[Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z]{1,16}$")]]
    path: Required[Annotated[StrictStr, StringConstraints(pattern=r"^/", max_length=8192)]]
    headers: dict[str, Text] | None
    user_id: Id | None
    context: dict[str, Scalar] | None


_SCHEMAS: dict[str, TypeAdapter[Any]] = {
    "validate_service": TypeAdapter(ValidateServiceInput),
    "check_access": TypeAdapter(CheckAccessInput),
    "validate_consumption": TypeAdapter(ValidateConsumptionInput),
    "authorize_http": TypeAdapter(AuthorizeHttpInput),
}


def parse_input(query: str, raw: object) -> dict[str, Any]:
    """Check ``raw`` against the query's schema and return it (unchanged) as the input dict.

    Raises ``UnknownQueryError`` for a query not in ``QUERIES`` and ``InputValidationError``
    naming every offending field otherwise.
    """
    schema = _SCHEMAS.get(query)
    if schema is None:
        raise UnknownQueryError(query, QUERIES)
    try:
        # The adapter's own validate_python only forwards its keyword defaults to the validator,
        # a quarter of the check's time for a check_access input.
        schema.validator.validate_python(raw)
    except ValidationError as exc:
        raise InputValidationError(field_errors(exc)) from None
    return raw if type(raw) is dict else dict(raw)  # type: ignore[call-overload]
