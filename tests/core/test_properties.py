"""Property-based tests: evaluation never raises, and every policy document is compiled or refused.

Inputs are arbitrary JSON plus "near-valid" documents built from the real field names with
arbitrary values, which reach far deeper into the checks than random dicts would.
"""

from __future__ import annotations

from typing import Any

from core_kit import DATA, DictCounter, compile_set, decide, policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.core import (
    QUERIES,
    InputValidationError,
    PolicyDocument,
    PolicyValidationError,
    compile_policy_set,
    parse_input,
    parse_policy,
)
from pdp.core.conditions import Operator

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
OPERATORS: tuple[str, ...] = Operator.__args__  # type: ignore[attr-defined]

# JSON strings may carry lone surrogates ("\ud800"), which UTF-8 (and so RE2) cannot encode.
odd_text = st.text(st.characters(codec=None, categories=["Cs", "Ll", "Lu", "Nd", "P", "Zs"]),
                   max_size=30)
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=30) | odd_text
           | st.sampled_from(["", "production", "KP", "SOC2", "1.2", "10.0.0.1", "enterprise",
                              "https://x"]))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)


def near(fields: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects using the real field names, each present or not, with plausible or wild values."""
    return st.fixed_dictionaries({}, optional={
        name: (strategy | json_values) for name, strategy in fields.items()})


LISTING = near({
    "environment": st.sampled_from(["production", "staging"]),
    "endpoint": near({"url": st.text(max_size=20), "authentication": st.text(max_size=8)}),
    "compliance": near({"level": st.sampled_from(["public", "confidential", "RESTRICTED"]),
                        "certifications": st.lists(st.text(max_size=8), max_size=3),
                        "data_residency": st.lists(st.text(max_size=3), max_size=3),
                        "gdpr_compliant": st.booleans(), "hipaa_compliant": st.booleans()}),
    "sla": near({"availability": st.floats(), "support_level": st.text(max_size=12)}),
    "pricing": near({"rates": st.lists(near({"tier": st.text(max_size=6), "rate": st.floats(),
                                             "unit": st.text(max_size=12)}), max_size=3)}),
    "security": near({"tls_version": scalars, "encryption_at_rest": st.booleans()}),
})
ACCESS = near({"user_id": st.sampled_from([*DATA["users"], "ghost"]),
               "service_id": st.sampled_from([*DATA["services"], "nope"]),
               "action": st.sampled_from(["read", "consume", "publish", ""]),
               "context": near({"ip_address": st.sampled_from(["10.0.0.1", "::1", "x"])})})
CONSUMPTION = near({"consumer_id": st.sampled_from(["carl", "ada", "ghost"]),
                    "service_id": st.sampled_from(list(DATA["services"])),
                    "request_payload": st.text(max_size=60) | odd_text,
                    "context": near({"ip_address": st.text(max_size=15),
                                     "metadata": near({"max_tokens": scalars})})})
HTTP = near({"method": st.sampled_from(["GET", "POST", "get"]),
             "path": st.sampled_from(["/v1/services/svc-public", "/v1/admin", "/", "x"])
             | st.text(max_size=30),
             "headers": near({"x-user-id": st.sampled_from(["carl", "vera", ""])}),
             "user_id": scalars})
INPUTS = {"validate_service": LISTING, "check_access": ACCESS,
          "validate_consumption": CONSUMPTION, "authorize_http": HTTP}

EVERY_TYPE = compile_set(
    policy("data_residency", {"allowed_countries": ["US"], "blocked_countries": ["KP"],
                              "require_specification": True, "minimum_locations": 2}),
    policy("compliance", {"required_certifications": ["SOC2"], "require_gdpr_compliance": True,
                          "require_hipaa_compliance": True, "require_soc2_compliance": True,
                          "minimum_compliance_level": "internal"}),
    policy("security", {"require_https": True, "require_authentication": True,
                        "allowed_authentication_types": ["oauth2"],
                        "require_encryption_at_rest": True, "require_encryption_in_transit": True,
                        "minimum_tls_version": 12}, enforcement="warn"),
    policy("pricing", {"max_rate_per_token": 0.001, "max_rate_per_request": 1,
                       "require_free_tier": True, "minimum_sla_for_enterprise": 99.9}),
    policy("access_control", {"allowed_user_roles": ["consumer", "admin"],
                              "blocked_user_ids": ["vera"], "require_approval": True,
                              "allowed_ip_ranges": ["10.0.0.0/8", "::1/128"]}),
    policy("rate_limiting", {"max_requests_per_minute": 3, "max_requests_per_hour": 10,
                             "max_requests_per_day": 20, "max_tokens_per_request": 100}),
    policy("content_filtering", {"blocked_terms": ["drop"], "blocked_patterns": ["(a+)+$"],
                                 "max_payload_bytes": 40}),
    policy("data_classification", {"max_level": "internal"}, enforcement="dryrun"),
    *[policy("custom", {"violation_if": {"field": "tags.tier", "op": op, "value": value},
                        "field": "tags.tier", "query": query},
             id=f"custom-{op.replace('_', '-')}-{query.replace('_', '-')}",
             when={"not": {"field": "environment", "op": "exists"}})
      for op, value in [("eq", "x"), ("ne", 1), ("in", ["a", 1]), ("not_in", ["b"]),
                        ("contains", "a"), ("contains_any", ["a"]), ("contains_all", [1]),
                        ("gt", 1), ("gte", "a"), ("lt", 2.5), ("lte", "z"), ("exists", False),
                        ("starts_with", "a"), ("ends_with", "z"), ("matches", "^c"),
                        ("cidr_contains", ["10.0.0.0/8"])]
      for query in ("validate_service", "check_access", "validate_consumption")],
)


def test_the_policy_set_above_covers_every_type_and_operator() -> None:
    """The property tests below run against every policy type and every operator."""
    types = {doc.type for doc in EVERY_TYPE.policies}
    assert len(types) == 9
    assert {doc.rule.violation_if.op for doc in EVERY_TYPE.policies  # type: ignore[attr-defined]
            if doc.type == "custom"} == set(OPERATORS)


@SETTINGS
@given(query=st.sampled_from(QUERIES), data=st.data())
def test_evaluation_never_raises(query: str, data: st.DataObject) -> None:
    """Every query answers any JSON input (near-valid or arbitrary) with a decision."""
    raw = data.draw(INPUTS[query] | json_values)
    decision = decide(EVERY_TYPE, query, raw, counters=DictCounter(), explain=True)
    assert decision["decision_id"] == "dec-1"
    assert isinstance(decision["violations"], list)
    # Policies fail closed on exceptions; the checks themselves must not need to.
    assert all(entry["outcome"] != "error" for entry in decision["explain"]), decision["explain"]


@SETTINGS
@given(query=st.sampled_from(QUERIES), data=st.data())
def test_parse_input_accepts_or_names_the_problem(query: str, data: st.DataObject) -> None:
    """parse_input either returns the input or raises InputValidationError, nothing else."""
    raw = data.draw(INPUTS[query] | json_values)
    try:
        assert parse_input(query, raw) == raw
    except InputValidationError as exc:
        assert exc.errors


RULE_FIELDS = {
    "data_residency": ["allowed_countries", "blocked_countries", "require_specification",
                       "minimum_locations"],
    "compliance": ["required_certifications", "require_gdpr_compliance",
                   "minimum_compliance_level"],
    "security": ["require_https", "allowed_authentication_types", "minimum_tls_version"],
    "pricing": ["max_rate_per_token", "require_free_tier", "minimum_sla_for_enterprise"],
    "access_control": ["allowed_user_roles", "require_approval", "allowed_ip_ranges"],
    "rate_limiting": ["max_requests_per_minute", "max_tokens_per_request"],
    "content_filtering": ["blocked_terms", "blocked_patterns", "max_payload_bytes"],
    "data_classification": ["detect", "max_level"],
    "custom": ["violation_if", "field", "expected_value", "query"],
}
plausible = st.one_of(
    st.booleans(), st.integers(-5, 200), st.floats(0, 100),
    st.lists(st.sampled_from(["US", "KP", "SOC2", "10.0.0.0/8", "10.0.0.1/8", "(a+)+$",
                              "(?<=x)", "email", "dna", "oauth2", "admin"]), max_size=3),
    st.sampled_from(["confidential", "internal", "secret", "check_access", "x.y", ""]),
)


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> Any:
    """Condition trees, mostly well-formed, sometimes not."""
    kind = draw(st.sampled_from(["leaf", "leaf", "all", "any", "not", "junk"]
                                if depth < 3 else ["leaf", "junk"]))
    if kind == "junk":
        return draw(json_values)
    if kind == "not":
        return {"not": draw(conditions(depth + 1))}
    if kind in ("all", "any"):
        return {kind: draw(st.lists(conditions(depth + 1), max_size=3))}
    leaf: dict[str, Any] = {"field": draw(st.sampled_from(["environment", "a.b.0", "data.roles",
                                                          "", "x..y"]) | st.text(max_size=8)),
                            "op": draw(st.sampled_from(OPERATORS) | st.text(max_size=5))}
    if draw(st.booleans()):
        leaf["value"] = draw(plausible | json_values)
    return leaf


VALID_RULES: dict[str, dict[str, Any]] = {
    "data_residency": {"allowed_countries": ["US"], "minimum_locations": 1},
    "compliance": {"required_certifications": ["SOC2"], "minimum_compliance_level": "internal"},
    "security": {"require_https": True, "minimum_tls_version": 12},
    "pricing": {"max_rate_per_token": 0.5, "minimum_sla_for_enterprise": 99.9},
    "access_control": {"allowed_ip_ranges": ["10.0.0.0/8"], "require_approval": True},
    "rate_limiting": {"max_requests_per_minute": 5},
    "content_filtering": {"blocked_patterns": ["a+b"], "max_payload_bytes": 10},
    "data_classification": {"detect": ["email"], "max_level": "public"},
    "custom": {"violation_if": {"field": "a", "op": "exists"}, "field": "a"},
}
VALID_LEAVES = st.sampled_from([
    {"field": "environment", "op": "eq", "value": "production"},
    {"field": "data.roles.admin", "op": "contains", "value": "service.*"},
    {"field": "sla.availability", "op": "gte", "value": 99},
    {"field": "context.ip_address", "op": "cidr_contains", "value": "10.0.0.0/8"},
    {"field": "name", "op": "matches", "value": "(a+)+$"},
])


@st.composite
def policy_documents(draw: st.DrawFn) -> Any:
    """A valid document of a random type with at most one field off, or arbitrary JSON."""
    type_ = draw(st.sampled_from(sorted(RULE_FIELDS)))
    doc: dict[str, Any] = {"id": "p-1", "name": "A policy", "type": type_,
                           "rule": dict(VALID_RULES[type_])}
    if draw(st.booleans()):
        doc["when"] = draw(VALID_LEAVES | st.builds(lambda c: {"not": c}, VALID_LEAVES))
    mutation = draw(st.sampled_from(["none", "rule", "rule", "when", "field", "drop", "unknown"]))
    if mutation == "rule":
        name = draw(st.sampled_from(RULE_FIELDS[type_] + ["unknown_parameter"]))
        doc["rule"][name] = draw(conditions() if name == "violation_if"
                                 else plausible | json_values)
    elif mutation == "when":
        doc["when"] = draw(conditions())
    elif mutation == "field":
        name = draw(st.sampled_from(["id", "name", "type", "enabled", "severity",
                                     "enforcement", "version", "metadata", "message"]))
        doc[name] = draw(plausible | json_values)
    elif mutation == "drop":
        del doc[draw(st.sampled_from(["id", "name", "type", "rule"]))]
    elif mutation == "unknown":
        doc[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return draw(st.just(doc) | st.just(doc) | json_values)


@SETTINGS
@given(raw=policy_documents())
def test_a_policy_document_is_compiled_or_refused(raw: Any) -> None:
    """Any document is either a compilable PolicyDocument or a PolicyValidationError."""
    try:
        document = parse_policy(raw)
    except PolicyValidationError as exc:
        assert exc.errors and all(isinstance(error.path, str) for error in exc.errors)
        return
    assert isinstance(document, PolicyDocument)
    try:
        compile_policy_set([document], DATA)
    except PolicyValidationError as exc:
        assert exc.errors


@SETTINGS
@given(data=json_values)
def test_bundle_data_is_accepted_or_refused(data: Any) -> None:
    """Arbitrary bundle data either compiles or is refused with PolicyValidationError."""
    try:
        compile_policy_set([], data if isinstance(data, dict) else {"roles": data})
    except PolicyValidationError as exc:
        assert exc.errors
