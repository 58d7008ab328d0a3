"""Bundle tests: parse_tests reads tests/*.json, run_tests checks decisions against expect."""

from __future__ import annotations

from typing import Any

import pytest
from core_kit import NOW, compile_set, policy

from pdp.core import PolicyValidationError, TestDefinitionError, parse_tests, run_tests

POLICY_SET = compile_set(policy("security", {"require_https": True}, id="https-required"),
                         policy("pricing", {"require_free_tier": True}, id="free-tier",
                                enforcement="warn"))


def case(name: str, query: str, input: dict[str, Any], expect: dict[str, Any]) -> dict[str, Any]:
    """A raw bundle test case."""
    return {"name": name, "query": query, "input": input, "expect": expect}


def test_a_file_holds_one_case_or_a_list_of_cases() -> None:
    """Both file shapes parse into test cases."""
    one = case("a", "check_access", {}, {"allowed": False})
    assert [c.name for c in parse_tests(one, source="t.json")] == ["a"]
    many = {"cases": [one, {**one, "name": "b"}]}
    assert [c.name for c in parse_tests(many, source="t.json")] == ["a", "b"]


@pytest.mark.parametrize(("raw", "path"), [
    ({"name": "a", "query": "nope", "input": {}, "expect": {"x": 1}}, "query"),
    ({"name": "a", "query": "check_access", "input": {}}, "expect"),
    ({"name": "a", "query": "check_access", "input": {}, "expect": {}}, "expect"),
    ({"cases": [{"name": "", "query": "check_access", "input": {}, "expect": {"a": 1}}]},
     "cases.0.name"),
    ({"cases": []}, "cases"),
    ({"name": "a", "query": "check_access", "input": [], "expect": {"a": 1}}, "input"),
])
def test_a_bad_test_file_names_the_field(raw: dict[str, Any], path: str) -> None:
    """A malformed case is a TestDefinitionError (a PolicyValidationError) with its path."""
    with pytest.raises(TestDefinitionError) as caught:
        parse_tests(raw, source="tests/bad.json")
    assert isinstance(caught.value, PolicyValidationError)
    assert caught.value.source == "tests/bad.json"
    assert path in {error.path for error in caught.value.errors}, caught.value.errors


def run(*cases: dict[str, Any]) -> Any:
    """Parse raw cases as one test file and run them against POLICY_SET."""
    return run_tests(POLICY_SET, parse_tests({"cases": list(cases)}, source="t.json"), now=NOW)


def test_expect_is_a_subset_of_the_decision() -> None:
    """Only the keys named in expect are compared; nested objects too."""
    report = run(case("https ok", "validate_service", {"endpoint": {"url": "https://x"}},
                      {"compliant": True, "metadata": {"policies_failed": 0}}))
    assert report.passed == ["https ok"] and report.failed == []


def test_violations_and_warnings_list_exact_policy_ids() -> None:
    """violations/warnings in expect are the exact set of policy ids."""
    listing = {"endpoint": {"url": "http://x"}}
    report = run(
        case("exact", "validate_service", listing,
             {"violations": ["https-required"], "warnings": ["free-tier"]}),
        case("too few", "validate_service", listing, {"violations": []}),
        case("too many", "validate_service", listing,
             {"violations": ["https-required", "free-tier"]}),
    )
    assert report.passed == ["exact"]
    assert [f.name for f in report.failed] == ["too few", "too many"]
    assert "extra ['https-required']" in report.failed[0].message
    assert "missing ['free-tier']" in report.failed[1].message


def test_a_failure_says_what_differed() -> None:
    """A failed case names the path, the expected and the actual value."""
    report = run(case("wrong", "check_access",
                      {"user_id": "vera", "service_id": "svc-public", "action": "read"},
                      {"allowed": False, "nonexistent": 1}))
    (failure,) = report.failed
    assert "allowed: expected False, got True" in failure.message
    assert "nonexistent: missing from the decision" in failure.message


def test_true_is_not_one() -> None:
    """Expectations compare JSON types: true does not match 1."""
    report = run(case("bool", "validate_service", {}, {"metadata": {"policies_failed": True}}))
    assert report.failed and "expected True, got 1" in report.failed[0].message


def test_an_invalid_input_fails_the_case_with_the_field_path() -> None:
    """A case's input is schema-checked as a request would be."""
    report = run(case("bad input", "check_access", {"user_id": 5}, {"allowed": False}))
    (failure,) = report.failed
    assert "invalid input" in failure.message and "user_id" in failure.message


def test_expecting_an_object_where_the_decision_has_a_value_fails() -> None:
    """A nested expectation against a non-object names the path."""
    report = run(case("shape", "check_access",
                      {"user_id": "vera", "service_id": "svc-public", "action": "read"},
                      {"reason": {"text": "x"}, "violations": "https-required"}))
    (failure,) = report.failed
    assert "reason: expected an object" in failure.message
    assert "violations: expect a list of policy ids" in failure.message
