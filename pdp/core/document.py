"""Policy documents (DESIGN §4): the pydantic model, one subclass per type, and ``parse_policy``.

``PolicyDocument`` holds the fields every policy shares; each type's subclass narrows ``type`` to
one literal and ``rule`` to that type's model, and ``parse_policy`` selects the subclass by
``type`` (a discriminated union), so a rule is validated against exactly its own parameters and
errors carry paths such as ``rule.allowed_countries.0``.

``parse_policy`` also type-checks conditions on input fields whose JSON type the origin's messages
fix: a policy's type fixes the query its conditions read (listing types → validate_service,
access_control → check_access, payload types → validate_consumption, custom → its ``query``), so
``sla.availability starts_with "9"`` can be refused with the path of the leaf. Fields outside the
tables (``data.*``, ``context.*``, attributes) have types known only at run time.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from pdp.core.conditions import MAX_CONDITION_DEPTH, Condition, condition_depth
from pdp.core.errors import FieldError, PolicyValidationError
from pdp.core.rules import (
    AccessControlRule,
    ComplianceRule,
    ContentFilteringRule,
    CustomRule,
    DataClassificationRule,
    DataResidencyRule,
    PricingRule,
    RateLimitingRule,
    RuleModel,
    SecurityRule,
)

PolicyType = Literal[
    "data_residency", "compliance", "security", "pricing", "access_control", "rate_limiting",
    "content_filtering", "data_classification", "custom",
]
POLICY_TYPES: tuple[str, ...] = get_args(PolicyType)
Severity = Literal["critical", "high", "medium", "low"]
Enforcement = Literal["deny", "warn", "dryrun"]
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def _check_slug(value: str) -> str:
    # A fixed pattern of ours on a bounded string: Python's re is safe here.
    if not _SLUG.fullmatch(value):
        raise ValueError(
            "must be a slug of 1-63 lowercase letters, digits and dashes, starting with a "
            f"letter or digit (got {value[:80]!r})"
        )
    return value


PolicyId = Annotated[StrictStr, AfterValidator(_check_slug)]


class PolicyDocument(BaseModel):
    """A policy as admins write it. Build one with ``parse_policy``, which picks the subclass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: PolicyId
    name: Annotated[StrictStr, StringConstraints(min_length=1, max_length=256)]
    description: Annotated[StrictStr, StringConstraints(max_length=4096)] = ""
    type: PolicyType
    enabled: StrictBool = True
    severity: Severity = "medium"
    enforcement: Enforcement = "deny"
    when: Condition | None = None
    rule: RuleModel
    message: Annotated[StrictStr, StringConstraints(min_length=1, max_length=4096)] | None = None
    remediation: Annotated[StrictStr, StringConstraints(min_length=1, max_length=4096)] | None = (
        None
    )
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    version: Annotated[StrictInt, Field(ge=1)] = 1


class DataResidencyPolicy(PolicyDocument):
    """A ``data_residency`` policy."""

    type: Literal["data_residency"]
    rule: DataResidencyRule


class CompliancePolicy(PolicyDocument):
    """A ``compliance`` policy."""

    type: Literal["compliance"]
    rule: ComplianceRule


class SecurityPolicy(PolicyDocument):
    """A ``security`` policy."""

    type: Literal["security"]
    rule: SecurityRule


class PricingPolicy(PolicyDocument):
    """A ``pricing`` policy."""

    type: Literal["pricing"]
    rule: PricingRule


class AccessControlPolicy(PolicyDocument):
    """An ``access_control`` policy."""

    type: Literal["access_control"]
    rule: AccessControlRule


class RateLimitingPolicy(PolicyDocument):
    """A ``rate_limiting`` policy."""

    type: Literal["rate_limiting"]
    rule: RateLimitingRule


class ContentFilteringPolicy(PolicyDocument):
    """A ``content_filtering`` policy."""

    type: Literal["content_filtering"]
    rule: ContentFilteringRule


class DataClassificationPolicy(PolicyDocument):
    """A ``data_classification`` policy."""

    type: Literal["data_classification"]
    rule: DataClassificationRule


class CustomPolicy(PolicyDocument):
    """A ``custom`` policy: a condition whose truth is the violation."""

    type: Literal["custom"]
    rule: CustomRule


AnyPolicy = Annotated[
    DataResidencyPolicy | CompliancePolicy | SecurityPolicy | PricingPolicy | AccessControlPolicy
    | RateLimitingPolicy | ContentFilteringPolicy | DataClassificationPolicy | CustomPolicy,
    Field(discriminator="type"),
]
_POLICY_ADAPTER: TypeAdapter[PolicyDocument] = TypeAdapter(AnyPolicy)


def parse_policy(raw: object, *, source: str = "<policy>") -> PolicyDocument:
    """Validate a policy document (a dict from JSON/YAML) or raise ``PolicyValidationError``."""
    try:
        document = _POLICY_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise PolicyValidationError(source, field_errors(exc, tags=POLICY_TYPES)) from None
    errors = condition_errors(document)
    if errors:
        raise PolicyValidationError(source, errors)
    return document


def condition_errors(document: PolicyDocument) -> list[FieldError]:
    """Type errors of the document's conditions on input fields of a known type."""
    query: str
    if isinstance(document, CustomPolicy):
        query = document.rule.query
        errors = condition_type_errors(document.rule.violation_if, query, "rule.violation_if")
    else:
        query, errors = QUERY_OF_TYPE[document.type], []
    if document.when is not None:
        errors = condition_type_errors(document.when, query, "when") + errors
    return errors


_FRIENDLY = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "union_tag_not_found": "required field is missing",
    "model_attributes_type": "must be an object",
    "model_type": "must be an object",
    "dict_type": "must be an object",
}


def field_errors(
    exc: ValidationError, *, tags: tuple[str, ...] = (), prefix: str = ""
) -> list[FieldError]:
    """Convert pydantic's errors into ``FieldError``s with dotted paths a person can follow."""
    result = []
    for error in exc.errors(include_url=False):
        loc: tuple[Any, ...] = error["loc"]
        if loc and loc[0] in tags:
            loc = loc[1:]  # the discriminator's tag is not a field of the document
        kind = error["type"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "type")
        message = _FRIENDLY.get(kind)
        if kind == "union_tag_invalid":
            message = f"unknown policy type {error['ctx']['tag']!r}; one of: {', '.join(tags)}"
        if message is None:
            message = str(error["msg"]).removeprefix("Value error, ")
        path = ".".join(str(part) for part in loc)
        result.append(FieldError(f"{prefix}.{path}" if prefix and path else prefix or path,
                                 message))
    return result


STRING, NUMBER, BOOLEAN, LIST = "string", "number", "boolean", "list"

_LISTING: dict[str, str] = {
    **{name: STRING for name in ("service_id", "name", "version", "description", "provider_id",
                                 "category", "environment", "endpoint.url", "endpoint.protocol",
                                 "endpoint.authentication", "compliance.level",
                                 "sla.support_level", "pricing.model", "pricing.currency")},
    "compliance.certifications": LIST,
    "compliance.data_residency": LIST,
    "compliance.gdpr_compliant": BOOLEAN,
    "compliance.hipaa_compliant": BOOLEAN,
    "sla.availability": NUMBER,
    "sla.max_latency": NUMBER,
    "pricing.rates": LIST,
    "capabilities": LIST,
    "security.encryption_at_rest": BOOLEAN,
    "security.encryption_in_transit": BOOLEAN,
}
_ACCESS: dict[str, str] = {
    "user_id": STRING, "service_id": STRING, "action": STRING, "user.roles": LIST,
    "service.level": STRING, "service.owner": STRING, "service.visibility": STRING,
}
_CONSUMPTION: dict[str, str] = {
    "consumer_id": STRING, "service_id": STRING, "request_payload": STRING,
    "context.ip_address": STRING, "context.user_agent": STRING, "context.region": STRING,
    "service.level": STRING,
}
FIELD_TYPES: dict[str, dict[str, str]] = {
    "validate_service": _LISTING,
    "check_access": _ACCESS,
    "validate_consumption": _CONSUMPTION,
}
QUERY_OF_TYPE: dict[str, str] = {
    "data_residency": "validate_service", "compliance": "validate_service",
    "security": "validate_service", "pricing": "validate_service",
    "access_control": "check_access", "rate_limiting": "validate_consumption",
    "content_filtering": "validate_consumption", "data_classification": "validate_consumption",
}

_STRING_ONLY = frozenset({"starts_with", "ends_with", "matches", "cidr_contains"})
_CONTAINERS = frozenset({"contains", "contains_any", "contains_all"})
_COMPARED = frozenset({"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"})


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        return LIST
    return None  # null or an object: compared structurally, nothing to say


def _leaf_error(kind: str, op: str, value: Any) -> str | None:
    if op in _STRING_ONLY and kind != STRING:
        return f"op {op!r} needs a string field"
    if op in _CONTAINERS and kind not in (STRING, LIST):
        return f"op {op!r} needs a string or list field"
    if op in _COMPARED:
        operands = value if op in ("in", "not_in") and isinstance(value, list) else [value]
        for operand in operands:
            got = _kind(operand)
            if got is not None and got != kind:
                return f"compares a {kind} field with a {got} value"
    return None


def condition_type_errors(condition: Condition, query: str, path: str) -> list[FieldError]:
    """Nesting and type errors of ``condition`` against the known fields of ``query``'s input."""
    if condition_depth(condition) > MAX_CONDITION_DEPTH:
        return [FieldError(path, f"conditions nest at most {MAX_CONDITION_DEPTH} levels deep")]
    return _type_errors(condition, query, path)


def _type_errors(condition: Condition, query: str, path: str) -> list[FieldError]:
    if condition.all_of is not None or condition.any_of is not None:
        name, parts = ("all", condition.all_of) if condition.all_of is not None else (
            "any", condition.any_of or ())
        return [error for index, part in enumerate(parts)
                for error in _type_errors(part, query, f"{path}.{name}.{index}")]
    if condition.not_of is not None:
        return _type_errors(condition.not_of, query, f"{path}.not")
    kind = FIELD_TYPES.get(query, {}).get(condition.field or "")
    if kind is None or condition.op is None:
        return []
    problem = _leaf_error(kind, condition.op, condition.value)
    if problem is None:
        return []
    return [FieldError(f"{path}.op", f"{condition.field} is a {kind} in {query} input: {problem}")]
