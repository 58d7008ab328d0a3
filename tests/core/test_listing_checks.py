"""The listing types of §4.1 — data_residency, compliance, security, pricing, custom — as tables.

Each row: a rule, a listing, and the fields the decision must name as violated (empty: passes).
Every parameter has a passing row, a failing row and a row with its input field absent.
"""

from __future__ import annotations

from typing import Any

import pytest
from core_kit import compile_set, decide, policy

PASS: set[str] = set()


def fields_violated(type: str, rule: dict[str, Any], listing: dict[str, Any]) -> set[str]:
    """The ``field`` of every violation one policy of ``type`` reports for ``listing``."""
    decision = decide(compile_set(policy(type, rule)), "validate_service", listing)
    assert decision["compliant"] == (not decision["violations"])
    return {violation["field"] for violation in decision["violations"]}


def residency(*codes: Any) -> dict[str, Any]:
    """A listing that keeps data in ``codes``."""
    return {"compliance": {"data_residency": list(codes)}}


RESIDENCY = "compliance.data_residency"
DATA_RESIDENCY = [
    ("allowed: inside", {"allowed_countries": ["US", "DE"]}, residency("us", "DE"), PASS),
    ("allowed: outside", {"allowed_countries": ["US", "DE"]}, residency("US", "FR"), {RESIDENCY}),
    ("allowed: absent", {"allowed_countries": ["US"]}, {}, PASS),
    ("allowed: region code", {"allowed_countries": ["EU"]}, residency("eu"), PASS),
    ("blocked: clean", {"blocked_countries": ["KP", "IR"]}, residency("US"), PASS),
    ("blocked: hit", {"blocked_countries": ["KP", "IR"]}, residency("US", "ir"), {RESIDENCY}),
    ("blocked: absent", {"blocked_countries": ["KP"]}, {}, PASS),
    ("blocked: padded", {"blocked_countries": ["KP"]}, residency("US", " KP"), {RESIDENCY}),
    ("blocked: newline", {"blocked_countries": ["KP"]}, residency("kp\n"), {RESIDENCY}),
    ("allowed: padded", {"allowed_countries": ["DE"]}, residency(" de "), PASS),
    ("specification: blank", {"require_specification": True}, residency("  "), {RESIDENCY}),
    ("specification: given", {"require_specification": True}, residency("US"), PASS),
    ("specification: empty", {"require_specification": True}, residency(), {RESIDENCY}),
    ("specification: absent", {"require_specification": True}, {}, {RESIDENCY}),
    ("minimum: met", {"minimum_locations": 2}, residency("US", "DE"), PASS),
    ("minimum: duplicates count once", {"minimum_locations": 2}, residency("US", "us"),
     {RESIDENCY}),
    ("minimum: short", {"minimum_locations": 1}, residency(), {RESIDENCY}),
    ("minimum: absent", {"minimum_locations": 1}, {}, {RESIDENCY}),
    ("minimum: non-strings ignored", {"minimum_locations": 1}, residency(5, None), {RESIDENCY}),
]

CERTS = "compliance.certifications"
COMPLIANCE = [
    ("certs: one of them", {"required_certifications": ["SOC2", "ISO27001"]},
     {"compliance": {"certifications": ["ISO27001"]}}, PASS),
    ("certs: spelled differently", {"required_certifications": ["SOC2"]},
     {"compliance": {"certifications": ["soc-2"]}}, PASS),
    ("certs: with a space", {"required_certifications": ["SOC 2"]},
     {"compliance": {"certifications": ["SOC2"]}}, PASS),
    ("certs: none held", {"required_certifications": ["SOC2"]},
     {"compliance": {"certifications": ["PCI"]}}, {CERTS}),
    ("certs: absent", {"required_certifications": ["SOC2"]}, {}, {CERTS}),
    ("gdpr: true", {"require_gdpr_compliance": True},
     {"compliance": {"gdpr_compliant": True}}, PASS),
    ("gdpr: false", {"require_gdpr_compliance": True},
     {"compliance": {"gdpr_compliant": False}}, {"compliance.gdpr_compliant"}),
    ("gdpr: absent", {"require_gdpr_compliance": True}, {}, {"compliance.gdpr_compliant"}),
    ("hipaa: true", {"require_hipaa_compliance": True},
     {"compliance": {"hipaa_compliant": True}}, PASS),
    ("hipaa: string is not true", {"require_hipaa_compliance": True},
     {"compliance": {"hipaa_compliant": "true"}}, {"compliance.hipaa_compliant"}),
    ("hipaa: absent", {"require_hipaa_compliance": True}, {}, {"compliance.hipaa_compliant"}),
    ("soc2: held", {"require_soc2_compliance": True},
     {"compliance": {"certifications": ["SOC 2"]}}, PASS),
    ("soc2: missing", {"require_soc2_compliance": True},
     {"compliance": {"certifications": ["ISO27001"]}}, {CERTS}),
    ("soc2: absent", {"require_soc2_compliance": True}, {}, {CERTS}),
    ("level: above minimum is checked",
     {"required_certifications": ["SOC2"], "minimum_compliance_level": "confidential"},
     {"compliance": {"level": "restricted"}}, {CERTS}),
    ("level: at minimum is checked",
     {"required_certifications": ["SOC2"], "minimum_compliance_level": "confidential"},
     {"compliance": {"level": "Confidential"}}, {CERTS}),
    ("level: below minimum is out of scope",
     {"required_certifications": ["SOC2"], "minimum_compliance_level": "confidential"},
     {"compliance": {"level": "internal"}}, PASS),
    ("level: absent is out of scope",
     {"required_certifications": ["SOC2"], "minimum_compliance_level": "confidential"},
     {}, PASS),
]

SECURITY = [
    ("https: https", {"require_https": True}, {"endpoint": {"url": "https://api"}}, PASS),
    ("https: any case", {"require_https": True}, {"endpoint": {"url": "HTTPS://api"}}, PASS),
    ("https: http", {"require_https": True}, {"endpoint": {"url": "http://api"}},
     {"endpoint.url"}),
    ("https: no scheme", {"require_https": True}, {"endpoint": {"url": "api.example"}},
     {"endpoint.url"}),
    ("https: absent", {"require_https": True}, {}, {"endpoint.url"}),
    ("auth: oauth2", {"require_authentication": True},
     {"endpoint": {"authentication": "oauth2"}}, PASS),
    ("auth: none", {"require_authentication": True},
     {"endpoint": {"authentication": "NONE"}}, {"endpoint.authentication"}),
    ("auth: empty", {"require_authentication": True},
     {"endpoint": {"authentication": " "}}, {"endpoint.authentication"}),
    ("auth: absent", {"require_authentication": True}, {}, {"endpoint.authentication"}),
    ("auth types: allowed", {"allowed_authentication_types": ["OAuth2", "mtls"]},
     {"endpoint": {"authentication": "oauth2"}}, PASS),
    ("auth types: other", {"allowed_authentication_types": ["oauth2"]},
     {"endpoint": {"authentication": "api_key"}}, {"endpoint.authentication"}),
    ("auth types: absent", {"allowed_authentication_types": ["oauth2"]}, {}, PASS),
    ("at rest: true", {"require_encryption_at_rest": True},
     {"security": {"encryption_at_rest": True}}, PASS),
    ("at rest: false", {"require_encryption_at_rest": True},
     {"security": {"encryption_at_rest": False}}, {"security.encryption_at_rest"}),
    ("at rest: absent", {"require_encryption_at_rest": True}, {},
     {"security.encryption_at_rest"}),
    ("in transit: true", {"require_encryption_in_transit": True},
     {"security": {"encryption_in_transit": True}}, PASS),
    ("in transit: false", {"require_encryption_in_transit": True},
     {"security": {"encryption_in_transit": False}}, {"security.encryption_in_transit"}),
    ("in transit: absent", {"require_encryption_in_transit": True}, {},
     {"security.encryption_in_transit"}),
    ("tls: 1.3 string", {"minimum_tls_version": 12}, {"security": {"tls_version": "1.3"}}, PASS),
    ("tls: 12 number", {"minimum_tls_version": 12}, {"security": {"tls_version": 12}}, PASS),
    ("tls: too old", {"minimum_tls_version": 13}, {"security": {"tls_version": "1.2"}},
     {"security.tls_version"}),
    ("tls: nonsense", {"minimum_tls_version": 12}, {"security": {"tls_version": "fast"}},
     {"security.tls_version"}),
    ("tls: absent", {"minimum_tls_version": 12}, {}, PASS),
    ("tls: absent from a stated security section", {"minimum_tls_version": 13},
     {"endpoint": {"url": "https://x"}, "security": {"encryption_at_rest": True}}, PASS),
    ("tls: null is absent", {"minimum_tls_version": 13}, {"security": {"tls_version": None}},
     PASS),
    ("tls: empty text is stated, and unreadable", {"minimum_tls_version": 12},
     {"security": {"tls_version": ""}}, {"security.tls_version"}),
]


def rates(*tiers: tuple[str, float, str]) -> dict[str, Any]:
    """A listing priced by (tier, rate, unit) triples."""
    return {"pricing": {"rates": [{"tier": t, "rate": r, "unit": u} for t, r, u in tiers]}}


PRICING = [
    ("per token: under", {"max_rate_per_token": 0.00001}, rates(("std", 0.002, "1k tokens")),
     PASS),
    ("per token: over", {"max_rate_per_token": 0.00001}, rates(("std", 0.02, "1k tokens")),
     {"pricing.rates.0.rate"}),
    ("per token: millions", {"max_rate_per_token": 0.000001}, rates(("std", 2, "1m tokens")),
     {"pricing.rates.0.rate"}),
    ("per token: plain unit", {"max_rate_per_token": 0.5}, rates(("std", 1, "token")),
     {"pricing.rates.0.rate"}),
    ("per token: other units ignored", {"max_rate_per_token": 0.1}, rates(("m", 50, "month")),
     PASS),
    ("per token: absent", {"max_rate_per_token": 0.1}, {}, PASS),
    ("per token: exactly at the ceiling, per thousand", {"max_rate_per_token": 0.00007},
     rates(("std", 0.07, "1k tokens")), PASS),
    ("per token: a hair over the ceiling, per thousand", {"max_rate_per_token": 0.00007},
     rates(("std", 0.0700000000000001, "1k tokens")), {"pricing.rates.0.rate"}),
    ("per token: just over the ceiling, per thousand", {"max_rate_per_token": 0.00007},
     rates(("std", 0.0700001, "1k tokens")), {"pricing.rates.0.rate"}),
    ("per token: exactly at the ceiling, per million", {"max_rate_per_token": 0.0000001},
     rates(("std", 0.1, "1m tokens")), PASS),
    ("per token: a hair over the ceiling, per million", {"max_rate_per_token": 0.0000001},
     rates(("std", 0.100000000000001, "1m tokens")), {"pricing.rates.0.rate"}),
    ("per token: exactly at the ceiling, per 1.5k", {"max_rate_per_token": 0.0001},
     rates(("std", 0.15, "1.5k tokens")), PASS),
    ("per request: under", {"max_rate_per_request": 0.01}, rates(("std", 0.005, "request")),
     PASS),
    ("per request: over", {"max_rate_per_request": 0.01},
     rates(("free", 0, "request"), ("std", 0.05, "request")), {"pricing.rates.1.rate"}),
    ("per request: absent", {"max_rate_per_request": 0.01}, {}, PASS),
    ("per request: exactly at the ceiling, per hundred", {"max_rate_per_request": 0.011},
     rates(("std", 1.1, "100 requests")), PASS),
    ("per request: a hair over the ceiling, per hundred", {"max_rate_per_request": 0.011},
     rates(("std", 1.10000000000001, "100 requests")), {"pricing.rates.0.rate"}),
    ("per request: at a zero ceiling, free passes", {"max_rate_per_request": 0.0},
     rates(("free", 0, "request"), ("std", 0.000001, "request")), {"pricing.rates.1.rate"}),
    ("free tier: named", {"require_free_tier": True}, rates(("Free", 5, "month")), PASS),
    ("free tier: zero rate", {"require_free_tier": True}, rates(("basic", 0, "request")), PASS),
    ("free tier: none", {"require_free_tier": True}, rates(("std", 1, "request")),
     {"pricing.rates"}),
    ("free tier: absent", {"require_free_tier": True}, {}, {"pricing.rates"}),
    ("sla: enterprise meets", {"minimum_sla_for_enterprise": 99.9},
     {"sla": {"support_level": "enterprise", "availability": 99.9}}, PASS),
    ("sla: enterprise short", {"minimum_sla_for_enterprise": 99.9},
     {"sla": {"support_level": "Enterprise", "availability": 99.5}}, {"sla.availability"}),
    ("sla: enterprise, availability absent", {"minimum_sla_for_enterprise": 99.9},
     {"sla": {"support_level": "enterprise"}}, {"sla.availability"}),
    ("sla: standard may promise less", {"minimum_sla_for_enterprise": 99.9},
     {"sla": {"support_level": "standard", "availability": 95}}, PASS),
    ("sla: absent", {"minimum_sla_for_enterprise": 99.9}, {}, PASS),
]

CUSTOM = [
    ("condition false", {"violation_if": {"field": "category", "op": "eq", "value": "gambling"},
                         "field": "category"}, {"category": "data"}, PASS),
    ("condition true", {"violation_if": {"field": "category", "op": "eq", "value": "gambling"},
                        "field": "category"}, {"category": "gambling"}, {"category"}),
    ("field absent", {"violation_if": {"field": "category", "op": "eq", "value": "gambling"},
                      "field": "category"}, {}, PASS),
]


@pytest.mark.parametrize(("type", "rule", "listing", "expected"), [
    pytest.param(type, rule, listing, expected, id=f"{type}: {name}")
    for type, table in (("data_residency", DATA_RESIDENCY), ("compliance", COMPLIANCE),
                        ("security", SECURITY), ("pricing", PRICING), ("custom", CUSTOM))
    for name, rule, listing, expected in table
])
def test_listing_rule(type: str, rule: dict[str, Any], listing: dict[str, Any],
                      expected: set[str]) -> None:
    """A listing passes or fails each rule parameter as §4.1 specifies."""
    assert fields_violated(type, rule, listing) == expected


def test_a_violation_names_actual_and_expected_values() -> None:
    """A violation carries the offending value and what was expected, as strings."""
    decision = decide(compile_set(policy("data_residency", {"blocked_countries": ["KP", "IR"]})),
                      "validate_service", residency("US", "KP"))
    (violation,) = decision["violations"]
    assert violation["actual_value"] == "KP"
    assert violation["expected_value"] == "none of IR, KP"
    assert violation["message"] == "data is kept in blocked locations: KP"
    assert violation["remediation"]


def test_a_custom_violation_reports_the_field_value_and_expected_value() -> None:
    """A custom rule reports its field's value and its expected_value."""
    decision = decide(compile_set(policy("custom", {
        "violation_if": {"field": "sla.max_latency", "op": "gt", "value": 500},
        "field": "sla.max_latency", "expected_value": "at most 500 ms"})),
        "validate_service", {"sla": {"max_latency": 900}})
    (violation,) = decision["violations"]
    assert (violation["field"], violation["actual_value"], violation["expected_value"]) == (
        "sla.max_latency", "900", "at most 500 ms")


def test_a_policy_message_and_remediation_override_the_defaults() -> None:
    """``message`` and ``remediation`` of the policy replace the type's default texts."""
    decision = decide(compile_set(policy("security", {"require_https": True},
                                         message="Use TLS.", remediation="Ask ops.")),
                      "validate_service", {})
    (violation,) = decision["violations"]
    assert (violation["message"], violation["remediation"]) == ("Use TLS.", "Ask ops.")


def test_several_parameters_report_separately() -> None:
    """Each failing parameter of one policy is its own violation; the policy fails once."""
    decision = decide(compile_set(policy("security", {"require_https": True,
                                                      "require_authentication": True})),
                      "validate_service", {"endpoint": {"url": "http://x"}})
    assert {v["field"] for v in decision["violations"]} == {"endpoint.url",
                                                            "endpoint.authentication"}
    assert decision["metadata"]["policies_failed"] == 1


@pytest.mark.parametrize(("version", "passes"), [
    (1.3, True), ("13", True), ("TLSv1.3", True), ("tls 1.2", False), (2, False),
])
def test_tls_versions_are_read_in_their_usual_spellings(version: Any, passes: bool) -> None:
    """``minimum_tls_version`` 13 accepts 1.3 as a number, "13", "TLSv1.3"; not 1.2."""
    listing = {"security": {"tls_version": version}}
    assert (fields_violated("security", {"minimum_tls_version": 13}, listing) == PASS) is passes


def test_a_rate_violation_reports_the_per_token_rate_as_written() -> None:
    """A price over the ceiling is reported per token, as a person would write it (0.00021)."""
    decision = decide(compile_set(policy("pricing", {"max_rate_per_token": 0.0002})),
                      "validate_service", rates(("std", 0.21, "1k tokens")))
    (violation,) = decision["violations"]
    assert (violation["actual_value"], violation["expected_value"]) == (
        "0.00021", "at most 0.0002 per token")
    assert violation["message"] == "tier 'std' charges 0.00021 per token, above 0.0002"


def test_an_object_value_is_reported_as_json() -> None:
    """A custom rule on an object field reports it as compact, sorted JSON."""
    decision = decide(compile_set(policy("custom", {
        "violation_if": {"field": "sla", "op": "exists"}, "field": "sla"})),
        "validate_service", {"sla": {"b": 1, "a": [True, None]}})
    assert decision["violations"][0]["actual_value"] == '{"a": [true, null], "b": 1}'
