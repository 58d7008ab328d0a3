"""Decisions (DESIGN §5): answer shapes, enforcement, explain, fail-closed errors, the defaults."""

from __future__ import annotations

from typing import Any

import pytest
from core_kit import NOW, compile_set, decide, policy, violated

from pdp.core import QUERIES, UnknownQueryError
from pdp.core.findings import CompiledPolicy

DEFAULTS = [
    policy("data_residency", {"minimum_locations": 1}, id="data-residency-required"),
    policy("data_residency", {"blocked_countries": ["KP", "IR", "SY", "CU"]},
           id="restricted-countries", severity="critical"),
    policy("compliance", {"required_certifications": ["SOC2", "ISO27001"],
                          "minimum_compliance_level": "confidential"},
           id="confidential-certification-required"),
    policy("security", {"require_https": True}, id="https-required", severity="critical",
           when={"field": "environment", "op": "eq", "value": "production"}),
    policy("pricing", {"minimum_sla_for_enterprise": 99.9}, id="enterprise-sla-minimum",
           severity="medium"),
]
COMPLIANT: dict[str, Any] = {
    "service_id": "svc-1", "name": "Weather", "environment": "production",
    "endpoint": {"url": "https://api.example", "authentication": "oauth2"},
    "compliance": {"level": "confidential", "certifications": ["SOC 2"],
                   "data_residency": ["US"]},
    "sla": {"availability": 99.95, "support_level": "enterprise"},
}
BREAKS_THREE: dict[str, Any] = {
    **COMPLIANT,
    "endpoint": {"url": "http://api.example"},
    "compliance": {"level": "restricted", "certifications": [], "data_residency": ["US", "IR"]},
}


def test_a_compliant_listing_has_the_origin_shape() -> None:
    """validate_service answers the origin's response fields plus warnings and ids."""
    decision = decide(compile_set(*DEFAULTS, revision="42"), "validate_service", COMPLIANT)
    assert decision == {
        "compliant": True,
        "violations": [],
        "warnings": [],
        "policy_version": "42",
        "validated_at": "2026-01-01T00:00:00Z",
        "metadata": {"policies_evaluated": 5, "policies_passed": 5, "policies_failed": 0,
                     "validation_duration_ms": 0},
        "decision_id": "dec-1",
        "bundle_revision": "42",
    }


def test_a_listing_breaking_three_defaults() -> None:
    """Each broken default policy is reported with every §5 violation field."""
    decision = decide(compile_set(*DEFAULTS), "validate_service", BREAKS_THREE)
    assert decision["compliant"] is False
    assert violated(decision) == {"restricted-countries", "confidential-certification-required",
                                  "https-required"}
    assert decision["metadata"]["policies_failed"] == 3
    assert decision["metadata"]["policies_passed"] == 2
    https = next(v for v in decision["violations"] if v["policy_id"] == "https-required")
    assert https == {
        "policy_id": "https-required", "policy_name": "security policy",
        "severity": "critical", "message": "the service endpoint does not use HTTPS",
        "remediation": "serve the endpoint over HTTPS (an https:// URL)",
        "field": "endpoint.url", "actual_value": "http://api.example",
        "expected_value": "https://…", "enforcement": "deny",
    }


def test_validated_at_is_rfc3339_of_now() -> None:
    """validated_at is the caller's ``now`` in RFC 3339 UTC, to the second."""
    policy_set = compile_set(*DEFAULTS)
    assert decide(policy_set, "validate_service", {}, now=NOW + 61.9)["validated_at"] == (
        "2026-01-01T00:01:01Z")
    assert decide(policy_set, "validate_service", {}, now=NOW)["validated_at"] == (
        "2026-01-01T00:00:00Z")


def test_warn_violations_are_warnings_and_keep_the_listing_compliant() -> None:
    """A warn policy's violation is a warning; the listing stays compliant."""
    policy_set = compile_set(policy("security", {"require_https": True}, enforcement="warn"))
    decision = decide(policy_set, "validate_service", {})
    assert decision["compliant"] is True
    assert [w["enforcement"] for w in decision["warnings"]] == ["warn"]
    assert decision["metadata"]["policies_failed"] == 0


def test_dryrun_is_evaluated_but_absent_from_the_answer() -> None:
    """A dryrun policy never shows in violations, warnings or counts, only in ``dryrun``."""
    policy_set = compile_set(policy("security", {"require_https": True}, enforcement="dryrun"))
    decision = decide(policy_set, "validate_service", {})
    assert decision["compliant"] is True
    assert decision["violations"] == [] and decision["warnings"] == []
    assert decision["metadata"]["policies_evaluated"] == 0
    assert [d["policy_id"] for d in decision["dryrun"]] == ["p-security"]


def test_no_dryrun_key_when_nothing_was_found_in_shadow_mode() -> None:
    """The ``dryrun`` key appears only when a dry-run policy found something."""
    policy_set = compile_set(policy("security", {"require_https": True}, enforcement="dryrun"))
    assert "dryrun" not in decide(policy_set, "validate_service",
                                  {"endpoint": {"url": "https://x"}})


def test_explain_lists_every_policy_with_scope_and_outcome() -> None:
    """explain=True adds, per policy, whether ``when`` matched and the outcome."""
    policy_set = compile_set(*DEFAULTS)
    staging = {**BREAKS_THREE, "environment": "staging"}
    decision = decide(policy_set, "validate_service", staging, explain=True)
    assert {e["policy_id"]: (e["when_matched"], e["outcome"]) for e in decision["explain"]} == {
        "data-residency-required": (True, "pass"),
        "restricted-countries": (True, "violation"),
        "confidential-certification-required": (True, "violation"),
        "https-required": (False, "not_applicable"),
        "enterprise-sla-minimum": (True, "pass"),
    }
    assert "explain" not in decide(policy_set, "validate_service", staging)


@pytest.mark.parametrize("query", QUERIES)
def test_explain_is_available_for_every_query(query: str) -> None:
    """Every query accepts explain and returns an explain list."""
    decision = decide(compile_set(*DEFAULTS), query, {}, explain=True)
    assert isinstance(decision["explain"], list)


@pytest.mark.parametrize("explain", [True, False])
@pytest.mark.parametrize("enforcement", ["deny", "warn"])
def test_an_internal_error_in_a_policy_fails_closed(enforcement: str, explain: bool) -> None:
    """An exception inside one policy is reported as its deny violation, not raised."""
    policy_set = compile_set(policy("security", {"require_https": True},
                                    enforcement=enforcement), *DEFAULTS[:1])

    def explode(_doc: Any) -> None:
        raise ZeroDivisionError("boom")

    broken: CompiledPolicy = policy_set._compiled.service[0]
    broken.check = explode
    decision = decide(policy_set, "validate_service", COMPLIANT, explain=explain)
    assert decision["compliant"] is False
    assert decision["metadata"]["policies_failed"] == 1
    (violation,) = decision["violations"]
    assert violation["policy_id"] == "p-security" and violation["enforcement"] == "deny"
    assert "ZeroDivisionError: boom" in violation["message"]
    if explain:
        assert decision["explain"][0]["outcome"] == "error"


def test_an_internal_error_in_a_dryrun_policy_stays_in_shadow() -> None:
    """Even broken, a dry-run policy never changes the answer."""
    policy_set = compile_set(policy("security", {"require_https": True}, enforcement="dryrun"))

    def explode(_doc: Any) -> None:
        raise RuntimeError("boom")

    policy_set._compiled.service[0].check = explode
    decision = decide(policy_set, "validate_service", {})
    assert decision["compliant"] is True and len(decision["dryrun"]) == 1


def test_an_unknown_query_is_refused() -> None:
    """evaluate raises UnknownQueryError for a query it does not answer."""
    with pytest.raises(UnknownQueryError, match="validate_service"):
        decide(compile_set(), "delete_everything", {})


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("input", [None, [], "text", 42, {"compliance": "x"}])
def test_any_input_gives_a_decision(query: str, input: Any) -> None:
    """Whatever the input, every query answers with a decision and the ids."""
    decision = decide(compile_set(*DEFAULTS), query, input)
    assert decision["decision_id"] == "dec-1" and decision["bundle_revision"] == "rev-1"


def test_decisions_do_not_share_mutable_state() -> None:
    """Mutating one answer does not change the next one."""
    policy_set = compile_set(*DEFAULTS)
    first = decide(policy_set, "validate_service", BREAKS_THREE)
    first["violations"].clear()
    first["metadata"]["policies_failed"] = 99
    second = decide(policy_set, "validate_service", BREAKS_THREE)
    assert len(second["violations"]) == 3 and second["metadata"]["policies_failed"] == 3


def test_absurdly_nested_input_is_reported_not_crashed() -> None:
    """A value nested 100,000 levels deep is shown as a placeholder, not an internal error."""
    deep: list[Any] = []
    current = deep
    for _ in range(100_000):
        current.append([])
        current = current[0]
    policy_set = compile_set(policy("custom", {"violation_if": {"field": "tags", "op": "exists"},
                                               "field": "tags"}))
    decision = decide(policy_set, "validate_service", {"tags": deep}, explain=True)
    assert decision["explain"][0]["outcome"] == "violation"
    assert decision["violations"][0]["actual_value"] == "<list>"
