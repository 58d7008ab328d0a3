"""Bundle tests (``tests/*.json``): parse them, run them against a compiled policy set.

A file holds one case or ``{"cases": [...]}``; a case is ``{"name", "query", "input", "expect"}``.
``expect`` is matched as a subset of the decision (objects key by key, everything else by
equality), except ``violations`` and ``warnings``, which list the exact set of policy ids
expected. A case's input goes through ``parse_input`` first, as a shell would, so a test cannot
pass on an input that a real request could never carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictStr, StringConstraints
from pydantic import ValidationError as _ValidationError

from pdp.core.document import field_errors
from pdp.core.errors import FieldError, InputValidationError, TestDefinitionError
from pdp.core.inputs import parse_input
from pdp.core.policyset import PolicySet

_ID_FIELDS = ("violations", "warnings")


class TestCase(BaseModel):
    """One bundle test: a query, its input, and what the decision must contain."""

    __test__ = False  # not a pytest test class, despite the name
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[StrictStr, StringConstraints(min_length=1, max_length=256)]
    query: Literal["validate_service", "check_access", "validate_consumption", "authorize_http"]
    input: dict[str, JsonValue]
    expect: dict[str, JsonValue] = Field(min_length=1)


class _TestFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cases: list[TestCase] = Field(min_length=1)


class TestFailure(NamedTuple):
    """A failed case: its name and what differed."""

    name: str
    message: str


class TestReport(NamedTuple):
    """The outcome of ``run_tests``: names of the passed cases and the failures."""

    passed: list[str]
    failed: list[TestFailure]


def parse_tests(raw: object, *, source: str) -> list[TestCase]:
    """Parse one test file's JSON; raises ``TestDefinitionError`` naming each bad field."""
    try:
        if isinstance(raw, dict) and "cases" in raw:
            return list(_TestFile.model_validate(raw).cases)
        return [TestCase.model_validate(raw)]
    except _ValidationError as exc:
        raise TestDefinitionError(source, field_errors(exc)) from None


def _mismatches(expected: Any, actual: Any, path: str) -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or 'decision'}: expected an object, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            where = f"{path}.{key}" if path else key
            if key not in actual:
                problems.append(f"{where}: missing from the decision")
            elif not path and key in _ID_FIELDS:
                problems.extend(_id_mismatch(where, value, actual[key]))
            else:
                problems.extend(_mismatches(value, actual[key], where))
        return problems
    # JSON's true is not 1, although Python says so.
    if (type(expected) is bool) != (type(actual) is bool) or expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def _id_mismatch(where: str, expected: Any, actual: Any) -> list[str]:
    if not isinstance(expected, list) or not all(isinstance(item, str) for item in expected):
        return [f"{where}: expect a list of policy ids"]
    got = {item.get("policy_id") for item in actual if isinstance(item, dict)}
    if set(expected) == got:
        return []
    missing, extra = sorted(set(expected) - got), sorted(str(i) for i in got - set(expected))
    return [f"{where}: expected policies {sorted(set(expected))}, got {sorted(map(str, got))}"
            + (f" (missing {missing})" if missing else "") + (f" (extra {extra})" if extra else "")]


def run_tests(policy_set: PolicySet, cases: Sequence[TestCase], *, now: float) -> TestReport:
    """Run every case; a case passes when the decision matches its ``expect``."""
    passed: list[str] = []
    failed: list[TestFailure] = []
    for index, case in enumerate(cases):
        try:
            request = parse_input(case.query, case.input)
        except InputValidationError as exc:
            failed.append(TestFailure(case.name, f"invalid input: {_describe(exc.errors)}"))
            continue
        decision = policy_set.evaluate(case.query, request, now=now,
                                       decision_id=f"test-{index}")
        problems = _mismatches(case.expect, decision, "")
        if problems:
            failed.append(TestFailure(case.name, "; ".join(problems)))
        else:
            passed.append(case.name)
    return TestReport(passed, failed)


def _describe(errors: list[FieldError]) -> str:
    return "; ".join(str(error) for error in errors)
