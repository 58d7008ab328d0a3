"""The built-in marketplace bundle's source: valid policies, consistent data, passing tests.

The files are read directly (not through the bundle layer's reader) so that a broken policy, data
document or test is reported against the source file, independent of the bundle format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pdp.core import compile_policy_set, parse_input, parse_policy, parse_tests, run_tests

SOURCE = Path(__file__).resolve().parents[2] / "bundles" / "marketplace"
POLICY_FILES = sorted((SOURCE / "policies").glob("*.yaml")) + sorted(
    (SOURCE / "policies").glob("*.json"))
TEST_FILES = sorted((SOURCE / "tests").glob("*.json"))
NOW = 1_795_000_000.0  # any fixed instant: none of the default policies depends on time

# DESIGN §4.4: the five default policies, their type and severity.
DEFAULTS = {
    "data-residency-required": ("data_residency", "high"),
    "restricted-countries": ("data_residency", "critical"),
    "confidential-certification-required": ("compliance", "high"),
    "https-required": ("security", "critical"),
    "enterprise-sla-minimum": ("pricing", "medium"),
}
ACTIONS = {"read", "consume", "publish", "delete"}


def _load(path: Path) -> Any:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def _data() -> dict[str, Any]:
    data: dict[str, Any] = _load(SOURCE / "data.json")
    return data


def _policy_set() -> Any:
    policies = [parse_policy(_load(p), source=str(p)) for p in POLICY_FILES]
    return compile_policy_set(policies, _data(), revision="source")


def _cases(query: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in TEST_FILES:
        raw = _load(path)
        cases.extend(c for c in raw.get("cases", [raw]) if c["query"] == query)
    return cases


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_policy_file_parses(path: Path) -> None:
    """Each policy file is a valid policy document whose id matches its file name."""
    policy = parse_policy(_load(path), source=str(path))
    assert policy.id == path.stem


def test_source_holds_exactly_the_five_defaults() -> None:
    """The built-in bundle ships the five default policies of DESIGN §4.4, enabled and denying."""
    policies = [parse_policy(_load(p), source=str(p)) for p in POLICY_FILES]
    assert {p.id: (p.type, p.severity) for p in policies} == DEFAULTS
    assert all(p.enabled and p.enforcement == "deny" for p in policies)


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_policy_tells_people_what_to_do(path: Path) -> None:
    """Every default policy carries a message, a remediation and an owner."""
    policy = parse_policy(_load(path), source=str(path))
    assert policy.message and policy.remediation
    assert policy.metadata.get("owner")


def test_policy_set_compiles_with_the_bundle_data() -> None:
    """The policies and data.json compile into one policy set."""
    assert {p.id for p in _policy_set().policies} == set(DEFAULTS)


def test_every_role_a_user_holds_is_defined() -> None:
    """No user refers to a role that data.json does not define."""
    data = _data()
    for user_id, user in data["users"].items():
        assert set(user["roles"]) <= set(data["roles"]), user_id


def test_roles_are_the_documented_four() -> None:
    """Roles are viewer, consumer, publisher and admin; admin holds the service wildcard."""
    roles = _data()["roles"]
    assert set(roles) == {"viewer", "consumer", "publisher", "admin"}
    assert roles["publisher"] == ["service.read", "service.publish"]
    assert roles["admin"] == ["service.*"]


def test_approvals_and_owners_refer_to_known_entities() -> None:
    """Approvals name known services (or "*"), and every service owner is a known user."""
    data = _data()
    for user_id, approved in data["approvals"].items():
        assert user_id in data["users"]
        assert set(approved) <= set(data["services"]) | {"*"}, user_id
    for service_id, service in data["services"].items():
        assert service["owner"] in data["users"], service_id


def test_routes_map_to_known_actions() -> None:
    """Every ext_authz route names a method, a path and one of the four actions."""
    routes = _data()["routes"]
    assert routes
    for route in routes:
        assert set(route) == {"method", "path", "action"}
        assert route["action"] in ACTIONS
        assert route["path"].startswith("/")


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_bundle_tests_pass(path: Path) -> None:
    """Every bundle test in the file passes against the source's own policies and data."""
    cases = parse_tests(_load(path), source=str(path))
    report = run_tests(_policy_set(), cases, now=NOW)
    assert report.failed == []
    assert report.passed == [case.name for case in cases]


@pytest.mark.parametrize("policy_id", sorted(DEFAULTS))
def test_bundle_tests_cover_each_default_passing_and_failing(policy_id: str) -> None:
    """Each default policy has a test where it is violated and one where it is not."""
    expected = [set(c["expect"]["violations"]) for c in _cases("validate_service")]
    assert any(policy_id in v for v in expected)
    assert any(policy_id not in v for v in expected)


@pytest.mark.parametrize("query", ["check_access", "validate_consumption", "authorize_http"])
def test_bundle_tests_cover_access_both_ways(query: str) -> None:
    """The access queries are tested both allowing and denying."""
    outcomes = {c["expect"]["allowed"] for c in _cases(query)}
    assert outcomes == {True, False}


def test_compliant_example_is_compliant() -> None:
    """The compliant sample listing passes all five defaults."""
    listing = parse_input("validate_service", _load(SOURCE / "examples/compliant-listing.json"))
    decision = _policy_set().validate_service(listing, now=NOW, decision_id="example")
    assert decision["compliant"] is True
    assert decision["violations"] == []


def test_breaking_example_breaks_three_policies() -> None:
    """The non-compliant sample listing breaks exactly three of the defaults."""
    raw = _load(SOURCE / "examples/listing-breaking-3-policies.json")
    listing = parse_input("validate_service", raw)
    decision = _policy_set().validate_service(listing, now=NOW, decision_id="example")
    assert decision["compliant"] is False
    assert {v["policy_id"] for v in decision["violations"]} == {
        "restricted-countries", "https-required", "enterprise-sla-minimum"}


@pytest.mark.parametrize(
    ("name", "query"),
    [("access-check.json", "check_access"), ("consumption.json", "validate_consumption")],
)
def test_access_examples_are_valid_inputs(name: str, query: str) -> None:
    """The access sample inputs pass the schema check their query applies."""
    parse_input(query, _load(SOURCE / "examples" / name))
