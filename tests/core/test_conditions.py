"""The condition language (DESIGN §4.2): every operator, the combinators, paths and absence."""

from __future__ import annotations

from typing import Any

import pytest
from core_kit import compile_set, decide, policy

from pdp.core import PolicyValidationError, parse_policy
from pdp.core.conditions import MAX_CONDITION_STRING

ABSENT = object()


def holds(condition: dict[str, Any], input: dict[str, Any],
          data: dict[str, Any] | None = None) -> bool:
    """Whether ``condition`` holds for a listing, observed through a custom policy's verdict."""
    policy_set = compile_set(policy("custom", {"violation_if": condition, "field": "x"}),
                             data=data or {})
    return not decide(policy_set, "validate_service", input)["compliant"]


def leaf(op: str, value: Any, actual: Any) -> bool:
    """Evaluate ``{field: x, op, value}`` against ``{"x": actual}`` (or no x at all)."""
    condition: dict[str, Any] = {"field": "x", "op": op}
    if value is not ABSENT:
        condition["value"] = value
    return holds(condition, {} if actual is ABSENT else {"x": actual})


OPERATOR_TABLE = [
    # op, operand, field value, expected
    ("eq", "production", "production", True),
    ("eq", "production", "Production", False),
    ("eq", 1, 1.0, True),
    ("eq", 1, True, False),
    ("eq", True, True, True),
    ("eq", None, None, True),
    ("eq", [1, 2], [1, 2], True),
    ("eq", "1", 1, False),
    ("eq", "x", ABSENT, False),
    ("ne", "a", "b", True),
    ("ne", "a", "a", False),
    ("ne", "a", ABSENT, False),
    ("in", ["US", "DE"], "DE", True),
    ("in", ["US", "DE"], "FR", False),
    ("in", [1, 2], 2, True),
    ("in", [1, 2], True, False),
    ("in", ["US"], ABSENT, False),
    ("not_in", ["KP", "IR"], "US", True),
    ("not_in", ["KP", "IR"], "KP", False),
    ("not_in", ["KP"], ABSENT, False),
    ("contains", "SOC2", ["SOC2", "ISO27001"], True),
    ("contains", "SOC2", ["ISO27001"], False),
    ("contains", "prod", "production", True),
    ("contains", "dev", "production", False),
    ("contains", 3, [1, 2, 3], True),
    ("contains", "x", 42, False),
    ("contains", "x", ABSENT, False),
    ("contains_any", ["KP", "IR"], ["US", "IR"], True),
    ("contains_any", ["KP", "IR"], ["US"], False),
    ("contains_any", ["foo", "bar"], "a bar", True),
    ("contains_any", ["KP"], ABSENT, False),
    ("contains_all", ["SOC2", "ISO27001"], ["ISO27001", "SOC2", "X"], True),
    ("contains_all", ["SOC2", "ISO27001"], ["SOC2"], False),
    ("contains_all", ["SOC2"], ABSENT, False),
    ("gt", 99.9, 99.95, True),
    ("gt", 99.9, 99.9, False),
    ("gt", 1, "2", False),
    ("gt", 0, True, False),
    ("gt", "b", "c", True),
    ("gte", 99.9, 99.9, True),
    ("gte", 99.9, 99.8, False),
    ("lt", 100, 99, True),
    ("lt", 100, 100, False),
    ("lt", 100, ABSENT, False),
    ("lte", 100, 100, True),
    ("lte", 100, 101, False),
    ("exists", True, "anything", True),
    ("exists", True, None, False),
    ("exists", True, ABSENT, False),
    ("exists", ABSENT, 0, True),
    ("exists", False, ABSENT, True),
    ("exists", False, "here", False),
    ("starts_with", "https://", "https://api", True),
    ("starts_with", "https://", "http://api", False),
    ("starts_with", "https://", 5, False),
    ("ends_with", ".example", "api.example", True),
    ("ends_with", ".example", "api.example.org", False),
    ("matches", r"^v\d+\.\d+", "v1.4.0", True),
    ("matches", r"^v\d+\.\d+", "1.4", False),
    ("matches", "ab", 123, False),
    ("cidr_contains", "10.0.0.0/8", "10.20.30.40", True),
    ("cidr_contains", "10.0.0.0/8", "11.0.0.1", False),
    ("cidr_contains", ["10.0.0.0/8", "2001:db8::/32"], "2001:db8::1", True),
    ("cidr_contains", "2001:db8::/32", "2001:db9::1", False),
    ("cidr_contains", "10.0.0.0/8", "not an ip", False),
    ("cidr_contains", "10.0.0.0/8", ABSENT, False),
]


@pytest.mark.parametrize(("op", "value", "actual", "expected"), OPERATOR_TABLE)
def test_operator(op: str, value: Any, actual: Any, expected: bool) -> None:
    """Each operator compares with JSON types; on an absent field it is false."""
    assert leaf(op, value, actual) is expected


def test_every_operator_is_covered_by_the_table() -> None:
    """The operator table above exercises every operator of §4.2."""
    from typing import get_args

    from pdp.core.conditions import Operator

    assert {row[0] for row in OPERATOR_TABLE} == set(get_args(Operator))


def test_all_needs_every_part() -> None:
    """``all`` holds only when every part holds."""
    both = {"all": [{"field": "a", "op": "eq", "value": 1},
                    {"field": "b", "op": "eq", "value": 2}]}
    assert holds(both, {"a": 1, "b": 2})
    assert not holds(both, {"a": 1, "b": 3})


def test_any_needs_one_part() -> None:
    """``any`` holds when at least one part holds."""
    either = {"any": [{"field": "a", "op": "eq", "value": 1},
                      {"field": "b", "op": "eq", "value": 2}]}
    assert holds(either, {"a": 0, "b": 2})
    assert not holds(either, {"a": 0, "b": 0})


def test_not_inverts_and_so_sees_absent_fields() -> None:
    """``not`` inverts its part: "absent or different" is ``not eq``."""
    different = {"not": {"field": "environment", "op": "eq", "value": "production"}}
    assert holds(different, {})
    assert holds(different, {"environment": "staging"})
    assert not holds(different, {"environment": "production"})


def test_dotted_paths_walk_objects_and_list_indexes() -> None:
    """``a.b.0.c`` reads into nested objects and lists by index."""
    condition = {"field": "pricing.rates.1.tier", "op": "eq", "value": "pro"}
    assert holds(condition, {"pricing": {"rates": [{"tier": "free"}, {"tier": "pro"}]}})
    assert not holds(condition, {"pricing": {"rates": [{"tier": "free"}]}})
    assert not holds(condition, {"pricing": "flat"})


def test_data_prefix_reads_bundle_data() -> None:
    """``data.`` paths read the bundle's data, not the input."""
    condition = {"field": "data.flags.strict", "op": "eq", "value": True}
    assert holds(condition, {}, data={"flags": {"strict": True}})
    assert not holds(condition, {"data": {"flags": {"strict": True}}}, data={"flags": {}})


def test_a_when_scope_limits_a_policy() -> None:
    """A policy whose ``when`` does not match is not applied."""
    policy_set = compile_set(policy("security", {"require_https": True},
                                    when={"field": "environment", "op": "eq",
                                          "value": "production"}))
    staging = {"environment": "staging", "endpoint": {"url": "http://x"}}
    production = {"environment": "production", "endpoint": {"url": "http://x"}}
    assert decide(policy_set, "validate_service", staging)["compliant"]
    assert not decide(policy_set, "validate_service", production)["compliant"]


@pytest.mark.parametrize(("condition", "path", "fragment"), [
    ({"field": "x", "op": "in", "value": "US"}, "when.value", "list"),
    ({"field": "x", "op": "contains_any", "value": "US"}, "when.value", "list"),
    ({"field": "x", "op": "contains", "value": ["a"]}, "when.value", "contains_any"),
    ({"field": "x", "op": "gt", "value": [1]}, "when.value", "number or a string"),
    ({"field": "x", "op": "gte", "value": True}, "when.value", "number or a string"),
    ({"field": "x", "op": "exists", "value": "yes"}, "when.value", "true or false"),
    ({"field": "x", "op": "starts_with", "value": 1}, "when.value", "string"),
    ({"field": "x", "op": "matches", "value": "(?<=a)b"}, "when.value", "RE2"),
    ({"field": "x", "op": "cidr_contains", "value": "10.0.0.0/33"}, "when.value", "CIDR"),
    ({"field": "x", "op": "between", "value": 1}, "when.op", "eq"),
    ({"field": "x", "op": "eq"}, "when", "needs a 'value'"),
    ({"field": "x"}, "when", "both 'field' and 'op'"),
    ({"field": "a..b", "op": "exists"}, "when.field", "empty segment"),
    ({}, "when", "exactly one"),
    ({"all": [], "any": []}, "when", "exactly one"),
    ({"all": []}, "when", "at least one"),
    ({"all": [{"field": "x", "op": "eq", "value": 1}], "value": 1}, "when", "leaf"),
    ({"any": [{"field": "x", "op": "nope", "value": 1}]}, "when.any.0.op", "eq"),
    ({"not": {"all": [{"op": "eq", "value": 1}]}}, "when.not.all.0", "field"),
    ({"field": "x", "op": "eq", "value": 1, "extra": 2}, "when.extra", "unknown field"),
    ({"field": "x", "op": "eq", "value": "a" * (MAX_CONDITION_STRING + 1)}, "when.value",
     "limited"),
    ({"field": "x", "op": "in", "value": ["a" * (MAX_CONDITION_STRING + 1)]}, "when.value",
     "limited"),
])
def test_conditions_that_cannot_work_are_rejected(condition: dict[str, Any], path: str,
                                                  fragment: str) -> None:
    """Malformed conditions and operand type errors are compile-time errors with a path."""
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(policy("security", {"require_https": True}, when=condition))
    errors = {error.path: error.message for error in caught.value.errors}
    assert path in errors, errors
    assert fragment in errors[path], errors[path]


def test_a_type_mismatch_with_input_data_is_false_not_an_error() -> None:
    """Where the type is only known at run time, a mismatch is a false comparison."""
    assert not leaf("gt", 5, "not a number")
    assert not leaf("starts_with", "x", {"an": "object"})


@pytest.mark.parametrize(("type", "rule", "condition", "path"), [
    ("security", {"require_https": True},
     {"field": "sla.availability", "op": "starts_with", "value": "9"}, "when.op"),
    ("security", {"require_https": True},
     {"field": "environment", "op": "gt", "value": 3}, "when.op"),
    ("security", {"require_https": True},
     {"all": [{"field": "environment", "op": "exists"},
              {"field": "compliance.data_residency", "op": "eq", "value": "US"}]},
     "when.all.1.op"),
    ("security", {"require_https": True},
     {"not": {"field": "compliance.gdpr_compliant", "op": "in", "value": ["yes"]}},
     "when.not.op"),
    ("access_control", {"require_approval": True},
     {"field": "user.roles", "op": "matches", "value": "admin"}, "when.op"),
    ("content_filtering", {"max_payload_bytes": 10},
     {"field": "request_payload", "op": "gte", "value": 5}, "when.op"),
])
def test_a_type_mismatch_on_a_known_field_is_a_compile_time_error(
        type: str, rule: dict[str, Any], condition: dict[str, Any], path: str) -> None:
    """Where the input field's type is known, an impossible comparison is rejected."""
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(policy(type, rule, when=condition))
    (error,) = caught.value.errors
    assert error.path == path
    assert "input" in error.message


def test_a_custom_condition_is_checked_against_its_query() -> None:
    """A custom rule's violation_if is typed against the input of its own query."""
    rule = {"violation_if": {"field": "user_id", "op": "gt", "value": 1}, "field": "user_id"}
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(policy("custom", {**rule, "query": "check_access"}))
    assert caught.value.errors[0].path == "rule.violation_if.op"
    parse_policy(policy("custom", rule))  # user_id is not a listing field: type unknown


def test_fields_of_unknown_type_are_not_checked() -> None:
    """context, data and attribute fields are only known at run time, so they pass."""
    parse_policy(policy("access_control", {"require_approval": True}, when={"all": [
        {"field": "context.ip_address", "op": "gt", "value": 3},
        {"field": "user.attributes.tenant", "op": "matches", "value": "^a"},
        {"field": "data.flags.x", "op": "starts_with", "value": "y"}]}))


@pytest.mark.parametrize(("condition", "fragment"), [
    ({"field": "compliance.gdpr_compliant", "op": "contains", "value": "x"}, "string or list"),
    ({"field": "compliance.data_residency", "op": "gte", "value": "US"}, "a list field"),
    ({"field": "sla.availability", "op": "eq", "value": True}, "boolean value"),
])
def test_operators_that_cannot_apply_to_a_known_field_type(condition: dict[str, Any],
                                                           fragment: str) -> None:
    """Operators need fields of a type they can work on, and operands of the field's type."""
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(policy("security", {"require_https": True}, when=condition))
    assert fragment in caught.value.errors[0].message


def test_documents_built_without_parse_policy_are_type_checked_when_compiled() -> None:
    """compile_policy_set repeats the field type checks for documents built directly."""
    from pdp.core import compile_policy_set
    from pdp.core.document import SecurityPolicy

    document = SecurityPolicy.model_validate(policy(
        "security", {"require_https": True},
        when={"field": "environment", "op": "gt", "value": 1}))
    with pytest.raises(PolicyValidationError) as caught:
        compile_policy_set([document], {})
    assert caught.value.errors[0].path == "when.op"


@pytest.mark.parametrize("depth", [40, 5000])
def test_deeply_nested_conditions_are_refused(depth: int) -> None:
    """Nesting beyond 32 levels is a validation error, never a recursion crash."""
    condition: dict[str, Any] = {"field": "environment", "op": "exists"}
    for _ in range(depth):
        condition = {"not": condition}
    with pytest.raises(PolicyValidationError):
        parse_policy(policy("security", {"require_https": True}, when=condition))


def test_nesting_up_to_the_limit_compiles_and_evaluates() -> None:
    """32 levels are accepted and evaluate correctly."""
    condition: dict[str, Any] = {"field": "environment", "op": "exists"}
    for _ in range(30):
        condition = {"all": [condition]}
    assert holds({"not": condition}, {})
