"""The condition language of ``when`` and ``custom`` rules (DESIGN §4.2): model and compiler.

A condition is ``{all: [...]}``, ``{any: [...]}``, ``{not: ...}`` or a leaf ``{field, op, value}``.
Validation (pydantic) rejects every operator/value combination that cannot work, with the dotted
path of the offending field; ``compile_condition`` turns a valid condition into a closure over
precomputed constants. Evaluation semantics:

* a ``field`` is a dotted path into the input (digits index lists); ``data.`` reads bundle data,
  which is constant for a policy set and therefore resolved once at compile time;
* a missing field is *absent*: every operator is false on it except ``exists: false`` (use ``not``
  to say "absent or different"); nothing ever raises on input data;
* comparisons follow JSON types: ``true`` is not ``1``, a number never equals a string.

Getters for the common one- and two-segment paths are specialised: they run on every decision.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_serializer,
)
from pydantic import model_validator as _model_validator

from pdp.core.patterns import compile_re2, matcher

Operator = Literal[
    "eq", "ne", "in", "not_in", "contains", "contains_any", "contains_all", "gt", "gte", "lt",
    "lte", "exists", "starts_with", "ends_with", "matches", "cidr_contains",
]
Predicate = Callable[[Mapping[str, Any]], bool]

MAX_CONDITION_STRING = 64 * 1024  # DESIGN §10: strings in conditions <= 64 KiB
# Compiled conditions are nested closures: a bound on nesting keeps evaluation far from Python's
# recursion limit (DESIGN §10 allows 64 levels of JSON, and a leaf is two of them).
MAX_CONDITION_DEPTH = 32
_NUMBER = (int, float)
_LIST_OPS = frozenset({"in", "not_in", "contains_any", "contains_all"})
_ORDER_OPS = frozenset({"gt", "gte", "lt", "lte"})
_STRING_OPS = frozenset({"starts_with", "ends_with", "matches"})


# Reading dotted paths: a getter walks dicts by key and lists by index and yields MISSING as
# soon as a step does not exist or has the wrong type, so reading input data never raises.


class _Missing:
    """The type of ``MISSING``: a field that is absent from the input."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
Getter = Callable[[Any], Any]


def split_path(field: str) -> tuple[str, ...]:
    """Split ``a.b.0`` into its segments; an empty segment is a ``ValueError``."""
    segments = tuple(field.split("."))
    if any(not segment for segment in segments):
        raise ValueError(f"field path {field!r} has an empty segment")
    return segments


def make_getter(path: tuple[str, ...]) -> Getter:
    """Return a function reading ``path`` from a document, or ``MISSING``."""
    if len(path) == 0:
        return lambda doc: doc
    if len(path) == 1:
        (key,) = path
        return lambda doc: doc.get(key, MISSING) if type(doc) is dict else MISSING
    if len(path) == 2 and not any(segment.isdigit() for segment in path):
        first, second = path

        def get_two(doc: Any) -> Any:
            if type(doc) is not dict:
                return MISSING
            inner = doc.get(first)
            return inner.get(second, MISSING) if type(inner) is dict else MISSING

        return get_two

    steps = tuple((segment, int(segment) if segment.isdigit() else None) for segment in path)

    def get(doc: Any) -> Any:
        current = doc
        for key, index in steps:
            if type(current) is dict:
                current = current.get(key, MISSING)
                if current is MISSING:
                    return MISSING
            elif type(current) is list and index is not None and index < len(current):
                current = current[index]
            else:
                return MISSING
        return current

    return get


class Condition(BaseModel):
    """One node of a condition tree: exactly one of ``all``, ``any``, ``not`` or a leaf."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    all_of: tuple[Condition, ...] | None = Field(default=None, alias="all")
    any_of: tuple[Condition, ...] | None = Field(default=None, alias="any")
    not_of: Condition | None = Field(default=None, alias="not")
    field: str | None = Field(default=None, min_length=1, max_length=1024, strict=True)
    op: Operator | None = None
    value: JsonValue = None

    @field_validator("field")
    @classmethod
    def _field_is_a_path(cls, field: str | None) -> str | None:
        if field is not None:
            split_path(field)  # raises ValueError naming the empty segment
        return field

    @field_validator("value")
    @classmethod
    def _value_fits_operator(cls, value: JsonValue, info: ValidationInfo) -> JsonValue:
        _check_strings(value)
        op = info.data.get("op")
        if op is not None:
            _check_operand(op, value)
        return value

    @_model_validator(mode="after")
    def _exactly_one_form(self) -> Condition:
        forms = [
            name for name, present in (
                ("all", self.all_of is not None), ("any", self.any_of is not None),
                ("not", self.not_of is not None),
                ("field/op", self.field is not None or self.op is not None),
            ) if present
        ]
        if len(forms) != 1:
            raise ValueError(
                "a condition needs exactly one of all, any, not or a leaf {field, op, value}"
                + (f"; found {', '.join(forms)}" if forms else "")
            )
        if self.all_of == () or self.any_of == ():
            raise ValueError(f"'{forms[0]}' needs at least one condition")
        if forms[0] == "field/op":
            if self.field is None or self.op is None:
                raise ValueError("a leaf condition needs both 'field' and 'op'")
            if self.op != "exists" and "value" not in self.model_fields_set:
                raise ValueError(f"op {self.op!r} needs a 'value'")
        elif "value" in self.model_fields_set:
            raise ValueError("'value' belongs to a leaf condition {field, op, value}")
        return self

    @model_serializer(mode="plain")
    def _compact(self) -> dict[str, Any]:
        """Serialise as written: ``{"all": [...]}`` or ``{field, op, value}``, nothing else."""
        if self.all_of is not None:
            return {"all": [c._compact() for c in self.all_of]}
        if self.any_of is not None:
            return {"any": [c._compact() for c in self.any_of]}
        if self.not_of is not None:
            return {"not": self.not_of._compact()}
        leaf: dict[str, Any] = {"field": self.field, "op": self.op}
        if "value" in self.model_fields_set:
            leaf["value"] = self.value
        return leaf


def _check_strings(value: JsonValue) -> None:
    if isinstance(value, str) and len(value) > MAX_CONDITION_STRING:
        raise ValueError(f"strings in conditions are limited to {MAX_CONDITION_STRING} characters")
    if isinstance(value, list):
        for item in value:
            _check_strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_strings(item)


def _is_number(value: object) -> bool:
    return type(value) in _NUMBER


def _check_operand(op: str, value: JsonValue) -> None:
    """Reject a value that the operator can never use (the compile-time type check)."""
    if op in _LIST_OPS and not isinstance(value, list):
        raise ValueError(f"op {op!r} needs a list value")
    if op == "contains" and isinstance(value, list | dict):
        raise ValueError("op 'contains' needs a single value; use contains_any or contains_all")
    if op in _ORDER_OPS and not (_is_number(value) or isinstance(value, str)):
        raise ValueError(f"op {op!r} needs a number or a string value")
    if op == "exists" and not isinstance(value, bool):
        raise ValueError("op 'exists' takes true or false")
    if op in _STRING_OPS and not isinstance(value, str):
        raise ValueError(f"op {op!r} needs a string value")
    if op == "matches":
        compile_re2(str(value))
    if op == "cidr_contains":
        _networks(value)


def _networks(value: JsonValue) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = value if isinstance(value, list) else [value]
    networks = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("op 'cidr_contains' needs a CIDR string or a list of them")
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            raise ValueError(f"invalid CIDR {item!r}: {exc}") from None
    return tuple(networks)


def json_equal(left: object, right: object) -> bool:
    """Equality with JSON's types: booleans equal only booleans, numbers only numbers."""
    if type(left) is bool or type(right) is bool:
        return left is right
    if _is_number(left) and _is_number(right):
        return left == right
    return type(left) is type(right) and left == right


def _test_for(op: str, value: Any) -> Callable[[Any], bool]:
    """Build the closure that checks one field value against the operand (never raising)."""
    if op == "eq":
        if isinstance(value, str):
            return lambda x: type(x) is str and x == value
        return lambda x: x is not MISSING and json_equal(x, value)
    if op == "ne":
        return lambda x: x is not MISSING and not json_equal(x, value)
    if op in ("in", "not_in"):
        strings = frozenset(v for v in value if isinstance(v, str))
        others = tuple(v for v in value if not isinstance(v, str))

        def member(x: Any) -> bool:
            if type(x) is str:
                return x in strings
            return any(json_equal(x, v) for v in others)

        if op == "in":
            return lambda x: x is not MISSING and member(x)
        return lambda x: x is not MISSING and not member(x)
    if op == "contains":
        return lambda x: _contains(x, value)
    if op == "contains_any":
        return lambda x: any(_contains(x, v) for v in value)
    if op == "contains_all":
        return lambda x: x is not MISSING and all(_contains(x, v) for v in value)
    if op in _ORDER_OPS:
        return _order_test(op, value)
    if op == "exists":
        if value:
            return lambda x: x is not MISSING and x is not None
        return lambda x: x is MISSING or x is None
    if op == "starts_with":
        return lambda x: type(x) is str and x.startswith(value)
    if op == "ends_with":
        return lambda x: type(x) is str and x.endswith(value)
    if op == "matches":
        matches = matcher(value)
        return lambda x: type(x) is str and matches(x)
    if op == "cidr_contains":
        return _cidr_test(_networks(value))
    raise AssertionError(f"operator {op!r} passed validation but has no implementation")


def _contains(container: Any, item: Any) -> bool:
    if type(container) is str:
        return type(item) is str and item in container
    if type(container) is list:
        return any(json_equal(element, item) for element in container)
    return False


def _order_test(op: str, value: Any) -> Callable[[Any], bool]:
    kinds: tuple[type, ...] = _NUMBER if _is_number(value) else (str,)
    if op == "gt":
        return lambda x: type(x) in kinds and x > value
    if op == "gte":
        return lambda x: type(x) in kinds and x >= value
    if op == "lt":
        return lambda x: type(x) in kinds and x < value
    return lambda x: type(x) in kinds and x <= value


def _cidr_test(
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> Callable[[Any], bool]:
    def test(x: Any) -> bool:
        if type(x) is not str or len(x) > 64:
            return False
        try:
            address = ipaddress.ip_address(x)
        except ValueError:
            return False
        return any(address in network for network in networks)

    return test


def condition_depth(condition: Condition) -> int:
    """How deeply ``all``/``any``/``not`` nest (a leaf alone is 1), without recursing."""
    deepest, stack = 0, [(condition, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.all_of or node.any_of or ((node.not_of,) if node.not_of else ())
        stack.extend((child, depth + 1) for child in children)
    return deepest


def compile_condition(condition: Condition, data: Mapping[str, Any]) -> Predicate:
    """Compile a validated condition into a predicate over an input document."""
    if condition.all_of is not None:
        parts = tuple(compile_condition(c, data) for c in condition.all_of)
        return lambda doc: all(part(doc) for part in parts)
    if condition.any_of is not None:
        parts = tuple(compile_condition(c, data) for c in condition.any_of)
        return lambda doc: any(part(doc) for part in parts)
    if condition.not_of is not None:
        inner = compile_condition(condition.not_of, data)
        return lambda doc: not inner(doc)
    assert condition.field is not None and condition.op is not None  # by _exactly_one_form
    path = split_path(condition.field)
    # `{field, op: exists}` without a value means "exists: true".
    value = condition.value if "value" in condition.model_fields_set else True
    if condition.op == "eq" and isinstance(value, str) and len(path) == 1 and path[0] != "data":
        # The commonest scope (`environment == production`), in one step: only a str equals a str.
        key = path[0]
        return lambda doc: type(doc) is dict and doc.get(key) == value
    test = _test_for(condition.op, value)
    getter = field_getter(condition.field, data)
    return lambda doc: test(getter(doc))


def field_getter(field: str, data: Mapping[str, Any]) -> Getter:
    """A getter for a condition field; ``data.`` paths are read from bundle data once, here."""
    path = split_path(field)
    if path[0] == "data":
        constant = make_getter(path[1:])(data) if len(path) > 1 else data
        return lambda _doc: constant
    return make_getter(path)

