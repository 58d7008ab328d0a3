"""Compile-time type checks of conditions on the input fields whose type is known.

A policy's type fixes the query its conditions read (listing types → validate_service input,
access_control → check_access, the payload types → validate_consumption, custom → its ``query``),
and the origin's messages fix the JSON type of most fields. A condition that can never be true
because of a type mismatch (``sla.availability starts_with "9"``, ``environment gt 3``,
``compliance.data_residency eq "US"``) is almost certainly a mistake, so it is rejected with the
path of the offending leaf. Fields outside these tables (``data.*``, ``context.*``, ``user.*``
attributes) are not checked: their type is only known at run time.
"""

from __future__ import annotations

from typing import Any

from pdp.core.conditions import Condition
from pdp.core.errors import FieldError

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
    if op in ("gt", "gte", "lt", "lte") and kind not in (STRING, NUMBER):
        return f"op {op!r} needs a number or string field"
    return None


def condition_type_errors(condition: Condition, query: str, path: str) -> list[FieldError]:
    """Type errors of ``condition`` against the known fields of ``query``'s input."""
    if condition.all_of is not None or condition.any_of is not None:
        name, parts = ("all", condition.all_of) if condition.all_of is not None else (
            "any", condition.any_of or ())
        return [error for index, part in enumerate(parts)
                for error in condition_type_errors(part, query, f"{path}.{name}.{index}")]
    if condition.not_of is not None:
        return condition_type_errors(condition.not_of, query, f"{path}.not")
    kind = FIELD_TYPES.get(query, {}).get(condition.field or "")
    if kind is None or condition.op is None:
        return []
    problem = _leaf_error(kind, condition.op, condition.value)
    if problem is None:
        return []
    return [FieldError(f"{path}.op", f"{condition.field} is a {kind} in {query} input: {problem}")]
