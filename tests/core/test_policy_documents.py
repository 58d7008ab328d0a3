"""Policy documents (DESIGN §4): what parse_policy accepts, and how it names what it rejects."""

from __future__ import annotations

from typing import Any

import pytest
from core_kit import DATA, policy

from pdp.core import (
    PolicyDocument,
    PolicyValidationError,
    compile_policy_set,
    parse_policy,
)


def _errors(raw: object) -> dict[str, str]:
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(raw, source="policies/x.yaml")
    assert caught.value.source == "policies/x.yaml"
    return {error.path: error.message for error in caught.value.errors}


def test_a_full_document_parses_with_every_field() -> None:
    """Every field of §4 is accepted and kept."""
    doc = parse_policy({
        "id": "https-required", "name": "HTTPS required", "description": "Use HTTPS",
        "type": "security", "enabled": False, "severity": "critical", "enforcement": "warn",
        "when": {"field": "environment", "op": "eq", "value": "production"},
        "rule": {"require_https": True}, "message": "Use HTTPS", "remediation": "Fix it",
        "metadata": {"owner": "security-team"}, "version": 3,
    })
    assert isinstance(doc, PolicyDocument)
    assert (doc.id, doc.type, doc.enabled, doc.severity, doc.enforcement, doc.version) == (
        "https-required", "security", False, "critical", "warn", 3)
    assert doc.metadata == {"owner": "security-team"}
    assert doc.message == "Use HTTPS" and doc.remediation == "Fix it"


def test_defaults_are_enabled_deny_medium() -> None:
    """Omitted fields default to enabled, deny, medium severity, version 1."""
    doc = parse_policy({"id": "a", "name": "A", "type": "pricing",
                        "rule": {"require_free_tier": True}})
    assert (doc.enabled, doc.enforcement, doc.severity, doc.version, doc.when) == (
        True, "deny", "medium", 1, None)


def test_a_document_round_trips_through_its_json_form() -> None:
    """model_dump(by_alias) gives back a document parse_policy accepts unchanged."""
    raw = policy("custom", {"violation_if": {"not": {"any": [
        {"field": "a", "op": "exists"}, {"all": [{"field": "b", "op": "gt", "value": 1}]}]}},
        "field": "a"})
    doc = parse_policy(raw)
    dumped = doc.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["rule"]["violation_if"] == raw["rule"]["violation_if"]
    assert parse_policy(dumped) == doc


@pytest.mark.parametrize(("raw", "path", "fragment"), [
    ({"id": "Bad Id", "name": "x", "type": "pricing", "rule": {"require_free_tier": True}},
     "id", "slug"),
    ({"id": "-x", "name": "x", "type": "pricing", "rule": {"require_free_tier": True}},
     "id", "slug"),
    ({"id": "x" * 64, "name": "x", "type": "pricing", "rule": {"require_free_tier": True}},
     "id", "slug"),
    ({"name": "x", "type": "pricing", "rule": {"require_free_tier": True}}, "id", "missing"),
    ({"id": "x", "name": "x", "rule": {}}, "type", "missing"),
    ({"id": "x", "name": "x", "type": "firewall", "rule": {}}, "type", "unknown policy type"),
    ({"id": "x", "name": "x", "type": "pricing"}, "rule", "missing"),
    ({"id": "x", "name": "x", "type": "pricing", "rule": {}}, "rule", "no parameter"),
    ({"id": "x", "name": "x", "type": "pricing", "rule": {"require_free_tier": True},
      "colour": "red"}, "colour", "unknown field"),
    ({"id": "x", "name": "x", "type": "pricing", "rule": {"require_free_tier": True},
      "severity": "urgent"}, "severity", "critical"),
    ({"id": "x", "name": "x", "type": "pricing", "rule": {"require_free_tier": True},
      "enforcement": "audit"}, "enforcement", "dryrun"),
    ({"id": "x", "name": "x", "type": "pricing", "rule": {"require_free_tier": True},
      "enabled": "yes"}, "enabled", "boolean"),
    ({"id": "x", "name": "x", "type": "pricing", "rule": {"require_free_tier": True},
      "version": 0}, "version", "greater than"),
    ({"id": "x", "name": "", "type": "pricing", "rule": {"require_free_tier": True}},
     "name", "at least 1"),
])
def test_document_fields_are_checked(raw: dict[str, Any], path: str, fragment: str) -> None:
    """A bad document field is rejected with its path and a message saying what is wrong."""
    errors = _errors(raw)
    assert path in errors, errors
    assert fragment in errors[path]


@pytest.mark.parametrize(("type", "rule", "path", "fragment"), [
    ("data_residency", {"allowed_countries": ["US", 5]}, "rule.allowed_countries.1", "string"),
    ("data_residency", {"allowed_countries": ["U$"]}, "rule.allowed_countries.0", "pattern"),
    ("data_residency", {"minimum_locations": -1}, "rule.minimum_locations", "greater"),
    ("data_residency", {"minimum_locations": "2"}, "rule.minimum_locations", "integer"),
    ("data_residency", {"require_specification": 1}, "rule.require_specification", "boolean"),
    ("data_residency", {"max_locations": 3}, "rule.max_locations", "unknown field"),
    ("compliance", {"minimum_compliance_level": "secret", "require_gdpr_compliance": True},
     "rule.minimum_compliance_level", "confidential"),
    ("compliance", {"minimum_compliance_level": "internal"}, "rule", "only scopes"),
    ("compliance", {"required_certifications": [""]}, "rule.required_certifications.0",
     "at least 1"),
    ("security", {"minimum_tls_version": 14}, "rule.minimum_tls_version", "13"),
    ("security", {"require_https": "true"}, "rule.require_https", "boolean"),
    ("pricing", {"max_rate_per_token": -0.1}, "rule.max_rate_per_token", "greater"),
    ("pricing", {"minimum_sla_for_enterprise": 101}, "rule.minimum_sla_for_enterprise", "less"),
    ("access_control", {"allowed_ip_ranges": ["10.0.0.0/8", "10.0.0.1/8"]},
     "rule.allowed_ip_ranges.1", "did you mean 10.0.0.0/8"),
    ("access_control", {"allowed_ip_ranges": ["2001:db8::/129"]}, "rule.allowed_ip_ranges.0",
     "invalid CIDR"),
    ("access_control", {"blocked_user_ids": "mallory"}, "rule.blocked_user_ids", "tuple"),
    ("rate_limiting", {"max_requests_per_minute": 0}, "rule.max_requests_per_minute",
     "greater"),
    ("rate_limiting", {"max_requests_per_second": 5}, "rule.max_requests_per_second",
     "unknown field"),
    ("content_filtering", {"blocked_patterns": ["ok", "(?<=x)y"]}, "rule.blocked_patterns.1",
     "invalid RE2 pattern"),
    ("content_filtering", {"blocked_patterns": ["(a"]}, "rule.blocked_patterns.0", "RE2"),
    ("data_classification", {"detect": ["email", "dna"]}, "rule.detect.1", "credit_card"),
    ("data_classification", {"detect": []}, "rule.detect", "at least 1"),
    ("custom", {"field": "x"}, "rule.violation_if", "missing"),
    ("custom", {"violation_if": {"field": "x", "op": "exists"}, "field": "a..b"}, "rule.field",
     "empty segment"),
    ("custom", {"violation_if": {"field": "x", "op": "eq", "value": 1}, "field": "x",
                "query": "authorize"}, "rule.query", "validate_service"),
])
def test_rule_parameters_are_checked(type: str, rule: dict[str, Any], path: str,
                                     fragment: str) -> None:
    """Unknown rule parameters, wrong types and bad values are rejected with a dotted path."""
    errors = _errors(policy(type, rule))
    assert path in errors, errors
    assert fragment in errors[path], errors[path]


def test_every_error_is_reported_at_once() -> None:
    """All problems of one document come back together, not one per attempt."""
    errors = _errors({"id": "X", "name": "x", "type": "security",
                      "rule": {"require_https": "y", "bogus": 1}})
    assert set(errors) == {"id", "rule.require_https", "rule.bogus"}


def test_a_non_object_is_rejected() -> None:
    """A policy that is not an object gets one clear error at the root."""
    assert _errors(["not", "a", "policy"]) == {"": "must be an object"}


def test_the_error_message_names_source_and_path() -> None:
    """str() of the error names the file and the field, for the command line."""
    with pytest.raises(PolicyValidationError, match=r"policies/p\.json: rule\.bogus: unknown"):
        parse_policy(policy("pricing", {"bogus": 1}), source="policies/p.json")


def test_duplicate_ids_are_rejected_when_compiling() -> None:
    """Two policies with one id cannot be compiled into one set."""
    doc = parse_policy(policy("pricing", {"require_free_tier": True}, id="same"))
    with pytest.raises(PolicyValidationError) as caught:
        compile_policy_set([doc, doc], DATA)
    assert caught.value.errors[0].path == "id"
    assert "duplicate policy id 'same'" in caught.value.errors[0].message


@pytest.mark.parametrize(("data", "path"), [
    ({"roles": {"viewer": "service.read"}}, "data.roles.viewer"),
    ({"users": {"u": {"roles": ["ghost"]}}}, "data.users.u.roles.0"),
    ({"users": {"u": {"roles": [1]}}}, "data.users.u.roles.0"),
    ({"services": {"s": {"level": "top-secret"}}}, "data.services.s.level"),
    ({"approvals": {"u": "svc"}}, "data.approvals.u"),
    ({"routes": [{"method": "GET", "path": "no-slash", "action": "read",
                  "service_id": "s"}]}, "data.routes.0.path"),
    ({"routes": [{"method": "GET", "path": "/v1/x", "action": "read"}]}, "data.routes.0"),
])
def test_bad_bundle_data_is_rejected_with_its_path(data: dict[str, Any], path: str) -> None:
    """Malformed access data is refused at compile time with the path inside data.json."""
    with pytest.raises(PolicyValidationError) as caught:
        compile_policy_set([], data)
    assert path in {error.path for error in caught.value.errors}, caught.value.errors


def test_disabled_policies_are_kept_but_not_evaluated() -> None:
    """A disabled policy is visible through get() and never produces a violation."""
    doc = parse_policy(policy("security", {"require_https": True}, enabled=False))
    policy_set = compile_policy_set([doc], DATA)
    assert policy_set.get(doc.id) == doc
    decision = policy_set.validate_service({}, now=0, decision_id="d")
    assert decision["compliant"] and decision["metadata"]["policies_evaluated"] == 0


def test_the_policy_set_keeps_documents_data_and_revision() -> None:
    """A compiled set exposes its revision, documents and data, and get() finds nothing else."""
    doc = parse_policy(policy("pricing", {"require_free_tier": True}))
    policy_set = compile_policy_set([doc], DATA, revision="42")
    assert policy_set.revision == "42"
    assert policy_set.policies == (doc,)
    assert policy_set.data["roles"] == DATA["roles"]
    assert policy_set.get("missing") is None


def test_absurdly_nested_bundle_data_is_refused() -> None:
    """Bundle data nested beyond Python's recursion limit is a validation error, not a crash."""
    deep: dict[str, Any] = {}
    current = deep
    for _ in range(100_000):
        current["a"] = {}
        current = current["a"]
    with pytest.raises(PolicyValidationError, match="nests too deeply"):
        compile_policy_set([], {"anything": deep})
