"""Policy documents (DESIGN §4): the pydantic model, one subclass per type, and ``parse_policy``.

``PolicyDocument`` holds the fields every policy shares; each type's subclass narrows ``type`` to
one literal and ``rule`` to that type's model, and ``parse_policy`` selects the subclass by
``type`` (a discriminated union), so a rule is validated against exactly its own parameters and
errors carry paths such as ``rule.allowed_countries.0``.
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

from pdp.core.conditions import Condition
from pdp.core.errors import FieldError, PolicyValidationError
from pdp.core.field_types import QUERY_OF_TYPE, condition_type_errors
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
