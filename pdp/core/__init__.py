"""The pure policy core of pdp: policy documents, compilation, and the four decision queries.

No I/O, no clock reads, no asyncio, no protocol types: a compiled ``PolicySet`` and an input go in,
a JSON-able decision comes out. See ``docs/architecture.md`` for how the other layers use it.
"""

from pdp.core.conditions import Condition
from pdp.core.consumption import RateCounter
from pdp.core.document import POLICY_TYPES, PolicyDocument, parse_policy
from pdp.core.errors import (
    CoreError,
    FieldError,
    InputValidationError,
    PolicyQueryError,
    PolicyValidationError,
    TestDefinitionError,
    UnknownQueryError,
)
from pdp.core.inputs import (
    ACCESS_ACTION_PATTERN,
    COMPLIANCE_LEVELS,
    ENVIRONMENTS,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_TEXT_CHARS,
    TLS_VERSIONS,
    json_too_deep,
    parse_input,
)
from pdp.core.policy_query import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MAX_REQUEST_NUMBER,
    SEVERITIES,
    ListRequest,
    PolicyQuery,
    parse_list_params,
    parse_list_request,
    whole_number,
)
from pdp.core.policyset import QUERIES, PolicySet, compile_policy_set
from pdp.core.testing import TestCase, TestFailure, TestReport, parse_tests, run_tests

__all__ = [
    "ACCESS_ACTION_PATTERN",
    "COMPLIANCE_LEVELS",
    "DEFAULT_PAGE_SIZE",
    "ENVIRONMENTS",
    "MAX_ID_CHARS",
    "MAX_JSON_DEPTH",
    "MAX_PAGE_SIZE",
    "MAX_REQUEST_NUMBER",
    "MAX_TEXT_CHARS",
    "POLICY_TYPES",
    "QUERIES",
    "SEVERITIES",
    "TLS_VERSIONS",
    "Condition",
    "CoreError",
    "FieldError",
    "InputValidationError",
    "ListRequest",
    "PolicyDocument",
    "PolicyQuery",
    "PolicyQueryError",
    "PolicySet",
    "PolicyValidationError",
    "RateCounter",
    "TestCase",
    "TestDefinitionError",
    "TestFailure",
    "TestReport",
    "UnknownQueryError",
    "compile_policy_set",
    "json_too_deep",
    "parse_input",
    "parse_list_params",
    "parse_list_request",
    "parse_policy",
    "parse_tests",
    "run_tests",
    "whole_number",
]
