"""parse_input: the shells' schema check, answering 400 with the path of the offending field."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.core import QUERIES, InputValidationError, UnknownQueryError, parse_input

LISTING: dict[str, Any] = {
    "service_id": "svc-1", "name": "Weather", "version": "1.0", "description": "d",
    "provider_id": "p", "category": "data", "environment": "production",
    "endpoint": {"url": "https://x", "protocol": "REST", "authentication": "oauth2"},
    "compliance": {"level": "confidential", "certifications": ["SOC2"],
                   "data_residency": ["US"], "gdpr_compliant": True, "hipaa_compliant": False},
    "sla": {"availability": 99.9, "max_latency": 200, "support_level": "enterprise"},
    "pricing": {"model": "usage", "currency": "USD",
                "rates": [{"tier": "free", "rate": 0, "unit": "request", "description": "d"}]},
    "capabilities": [{"name": "forecast", "description": "d"}],
    "security": {"encryption_at_rest": True, "encryption_in_transit": True, "tls_version": "1.3"},
}
VALID: dict[str, dict[str, Any]] = {
    "validate_service": LISTING,
    "check_access": {"user_id": "u", "service_id": "s", "action": "read",
                     "context": {"ip_address": "10.0.0.1"}},
    "validate_consumption": {"consumer_id": "u", "service_id": "s", "request_payload": "hi",
                             "headers": {"x-a": "b"},
                             "context": {"ip_address": "10.0.0.1", "user_agent": "ua",
                                         "region": "eu", "metadata": {"max_tokens": "100"}}},
    "authorize_http": {"method": "GET", "path": "/v1/x", "headers": {"x-user-id": "u"},
                       "context": {"ip_address": "10.0.0.1"}},
}


@pytest.mark.parametrize("query", QUERIES)
def test_a_complete_valid_input_is_returned_unchanged(query: str) -> None:
    """A valid input passes and is returned as the dict to evaluate."""
    assert parse_input(query, VALID[query]) == VALID[query]


def test_every_listing_field_may_be_absent() -> None:
    """Absent listing fields are for the policies to judge, not the schema."""
    assert parse_input("validate_service", {}) == {}


@pytest.mark.parametrize(("query", "raw", "path"), [
    ("validate_service", {"compliance": {"data_residency": ["US", 7]}},
     "compliance.data_residency.1"),
    ("validate_service", {"compliance": {"level": "secret"}}, "compliance.level"),
    ("validate_service", {"compliance": {"gdpr_compliant": "yes"}}, "compliance.gdpr_compliant"),
    ("validate_service", {"sla": {"availability": "high"}}, "sla.availability"),
    ("validate_service", {"sla": {"availability": 101}}, "sla.availability"),
    ("validate_service", {"pricing": {"rates": [{"rate": "cheap"}]}}, "pricing.rates.0.rate"),
    ("validate_service", {"endpoint": {"uri": "https://x"}}, "endpoint.uri"),
    ("validate_service", {"environment": "prod"}, "environment"),
    ("validate_service", {"security": {"tls_version": "2.0"}}, "security.tls_version"),
    ("validate_service", {"colour": "red"}, "colour"),
    ("check_access", {"service_id": "s", "action": "read"}, "user_id"),
    ("check_access", {"user_id": "", "service_id": "s", "action": "read"}, "user_id"),
    ("check_access", {"user_id": "u", "service_id": "s", "action": "read now"}, "action"),
    ("check_access", {"user_id": "u", "service_id": "s", "action": "read",
                      "context": {"ip": ["a"]}}, "context.ip"),
    ("validate_consumption", {"consumer_id": "u", "service_id": "s", "request_payload": 5},
     "request_payload"),
    ("validate_consumption", {"consumer_id": "u", "service_id": "s",
                              "context": {"metadata": {"max_tokens": [1]}}},
     "context.metadata.max_tokens"),
    ("authorize_http", {"method": "GET", "path": "relative"}, "path"),
    ("authorize_http", {"path": "/x"}, "method"),
])
def test_a_bad_field_is_named_by_its_path(query: str, raw: dict[str, Any], path: str) -> None:
    """InputValidationError lists the dotted path of every offending field."""
    with pytest.raises(InputValidationError) as caught:
        parse_input(query, raw)
    assert path in {error.path for error in caught.value.errors}, caught.value.errors
    assert path in str(caught.value)


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("raw", [None, [], "text", 3])
def test_a_non_object_input_is_refused(query: str, raw: object) -> None:
    """An input that is not a JSON object is an InputValidationError, not a crash."""
    with pytest.raises(InputValidationError):
        parse_input(query, raw)


def test_an_unknown_query_is_refused() -> None:
    """parse_input raises UnknownQueryError naming the known queries."""
    with pytest.raises(UnknownQueryError, match="check_access"):
        parse_input("nope", {})


def test_json_nesting_limit_counts_arrays_and_objects() -> None:
    """Bodies nested exactly to the §10 limit pass; one level more is too deep, for both shells."""
    from pdp.core import MAX_JSON_DEPTH, json_too_deep

    def nested(levels: int) -> object:
        value: object = "leaf"
        for level in range(levels):
            value = {"k": value} if level % 2 else [value]
        return value

    assert not json_too_deep(nested(MAX_JSON_DEPTH))
    assert json_too_deep(nested(MAX_JSON_DEPTH + 1))
    assert not json_too_deep("scalar")
