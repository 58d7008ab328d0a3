"""How the control plane lists policies: requests parsed by the core, executed as SQL.

HTTP (``GET /v1/policies?type=security&enabled=true&order_by=created_at desc``) and gRPC
(``ListPolicies`` with the origin's ``filter``, ``order_by``, ``page_size``, ``page_token``) both
become a :class:`~pdp.core.PolicyQuery` through :mod:`pdp.core.policy_query`, the parser the
sidecar's ``ListPolicies`` uses too, so the three answer the same page for the same request. Here
a refusal becomes this layer's RequestError naming the field (400 / INVALID_ARGUMENT), and a query
becomes SQL: only column expressions from :data:`FILTER_COLUMNS` and :data:`ORDER_COLUMNS` and
numbered parameters reach the database, never a string from the request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pdp.control.errors import RequestError
from pdp.core import (
    ListRequest,
    PolicyQuery,
    PolicyQueryError,
    parse_list_params,
    parse_list_request,
)

__all__ = ["FILTER_COLUMNS", "ORDER_COLUMNS", "PolicyQuery", "order_sql", "query_from_params",
           "query_from_request", "where_sql"]

# The column expression each filter key compares with its (parameter) value.
FILTER_COLUMNS: dict[str, str] = {
    "type": "type",
    "enabled": "enabled",
    "severity": "severity",
    "enforcement": "spec->>'enforcement'",
}

# The column expression each order key sorts by, written to order as the sidecar does in memory
# (pdp.core.policy_query documents the order): text under the C collation compares by code point
# whatever the database's locale, and lower() under it folds ASCII letters only.
ORDER_COLUMNS: dict[str, str] = {
    "id": 'id COLLATE "C"',
    "name": "lower(spec->>'name' COLLATE \"C\")",
    "type": 'type COLLATE "C"',
    "enforcement": "(spec->>'enforcement') COLLATE \"C\"",
    "severity": "array_position(ARRAY['critical','high','medium','low'], severity)",
    "version": "version",
    "created_at": "created_at",
    "updated_at": "updated_at",
}


def query_from_params(params: Mapping[str, str]) -> PolicyQuery:
    """The query of ``GET /v1/policies``'s parameters; RequestError naming a bad one."""
    return _parsed(lambda: parse_list_params(params))


def query_from_request(request: ListRequest) -> PolicyQuery:
    """The query of a gRPC ``ListPoliciesRequest``; RequestError naming the bad field."""
    return _parsed(lambda: parse_list_request(request))


def _parsed(parse: Callable[[], PolicyQuery]) -> PolicyQuery:
    # The core's refusal becomes this layer's, which both shells map to 400 / INVALID_ARGUMENT.
    try:
        return parse()
    except PolicyQueryError as exc:
        raise RequestError(str(exc), exc.errors) from None


def where_sql(query: PolicyQuery) -> tuple[str, list[Any]]:
    """The WHERE condition selecting the live policies `query` matches, and its parameters."""
    clauses = ["deleted_at IS NULL"]
    args: list[Any] = []
    for key, value in query.filters.items():
        args.append(value)
        clauses.append(f"{FILTER_COLUMNS[key]} = ${len(args)}")
    return " AND ".join(clauses), args


def order_sql(query: PolicyQuery) -> str:
    """The ORDER BY list of `query`, its id tie-break included."""
    return ", ".join(f"{ORDER_COLUMNS[key]} {'DESC' if descending else 'ASC'}"
                     for key, descending in query.full_order)
