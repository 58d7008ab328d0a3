"""How a policy list is filtered, ordered and paged — one model for the HTTP and gRPC shells.

HTTP passes query parameters (``?type=security&enabled=true&order_by=created_at desc``); gRPC passes
the origin's ``filter`` string (``type=SECURITY AND enabled=true``) and ``order_by``. Both become a
:class:`PolicyQuery`; a bad value raises RequestError naming the parameter.

Orders are one or more comma-separated ``field [asc|desc]`` terms; ties are broken by id. Page sizes
above the maximum are lowered to it (as AIP-158 advises), not refused.

Page tokens are opaque to clients; inside they carry the offset of the next page and a digest of
the filter and order, so a token used with another filter or order is refused rather than paging
a different list (as the sidecar's ListPolicies does). Offsets can skip or repeat a row when
policies are created between two page reads, which an admin listing tolerates.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace

from pdp.control.database import MAX_BIGINT, positive_int
from pdp.control.errors import RequestError
from pdp.core import FieldError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

POLICY_TYPES = frozenset({
    "data_residency", "compliance", "security", "pricing", "access_control", "rate_limiting",
    "content_filtering", "data_classification", "custom",
})
SEVERITIES = frozenset({"critical", "high", "medium", "low"})
ENFORCEMENTS = frozenset({"deny", "warn", "dryrun"})
FILTER_KEYS = ("type", "enabled", "severity", "enforcement")

# Column expressions of the orderable fields; a user string never reaches SQL, only these.
ORDER_COLUMNS: dict[str, str] = {
    "id": "id",
    "name": "spec->>'name'",
    "type": "type",
    "enforcement": "spec->>'enforcement'",
    "severity": "array_position(ARRAY['critical','high','medium','low'], severity)",
    "version": "version",
    "created_at": "created_at",
    "updated_at": "updated_at",
}


@dataclass(frozen=True)
class PolicyQuery:
    """A validated list request."""

    type: str | None = None
    enabled: bool | None = None
    severity: str | None = None
    enforcement: str | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    offset: int = 0
    order: tuple[tuple[str, bool], ...] = (("id", False),)
    """(field, descending) pairs, most significant first."""

    def order_sql(self) -> str:
        """The ORDER BY list of this query (only column expressions from ORDER_COLUMNS)."""
        terms = [ORDER_COLUMNS[field] + (" DESC" if desc else " ASC") for field, desc in self.order]
        return ", ".join([*terms, "id ASC"])

    def digest(self) -> str:
        """What a page token is tied to: the filter and the order, not the page."""
        selection = [self.type, self.enabled, self.severity, self.enforcement, self.order]
        return hashlib.sha256(json.dumps(selection).encode()).hexdigest()[:16]

    def next_page_token(self, total: int) -> str:
        """The token of the page after this one, or "" when this is the last."""
        following = self.offset + self.page_size
        if following >= total:
            return ""
        return base64.urlsafe_b64encode(f"o:{following}:{self.digest()}".encode()
                                        ).decode().rstrip("=")


def _with_page_token(query: PolicyQuery, token: str) -> PolicyQuery:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raw = ""
    prefix, number, digest = [*raw.split(":"), "", "", ""][:3]
    offset = int(number) if number.isascii() and number.isdigit() else -1
    if prefix != "o" or not 0 <= offset <= MAX_BIGINT:
        raise _bad("page_token", "not a page token returned by a previous list")
    if digest != query.digest():
        raise _bad("page_token", "the token belongs to a listing with another filter or order_by")
    return replace(query, offset=offset)


def _bad(field: str, message: str) -> RequestError:
    return RequestError(f"invalid {field}: {message}", [FieldError(field, message)])


def _parse_bool(field: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise _bad(field, f"expected true or false, got {value!r}")


def _parse_order(value: str) -> tuple[tuple[str, bool], ...]:
    terms: list[tuple[str, bool]] = []
    for term in value.split(","):
        words = term.split()
        if not words or len(words) > 2:
            raise _bad("order_by", "expected '<field>' or '<field> asc|desc', comma-separated")
        field = words[0].lower()
        if field not in ORDER_COLUMNS:
            raise _bad("order_by", f"cannot order by {field!r}; one of {', '.join(ORDER_COLUMNS)}")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in {"asc", "desc"}:
            raise _bad("order_by", f"direction must be asc or desc, got {words[1]!r}")
        terms.append((field, direction == "desc"))
    return tuple(terms)


def _parse_choice(params: Mapping[str, str], field: str, choices: frozenset[str]) -> str | None:
    value = params.get(field)
    if value is None:
        return None
    value = value.strip().lower()
    if value not in choices:
        raise _bad(field, f"expected one of {', '.join(sorted(choices))}; got {value!r}")
    return value


def parse_policy_query(params: Mapping[str, str]) -> PolicyQuery:
    """Build a query from HTTP-style parameters; unknown parameters are refused."""
    known = {*FILTER_KEYS, "page_size", "page_token", "order_by"}
    for name in params:
        if name not in known:
            raise _bad(name, f"unknown parameter; expected one of {', '.join(sorted(known))}")
    enabled = _parse_bool("enabled", params["enabled"]) if "enabled" in params else None
    page_size = DEFAULT_PAGE_SIZE
    if params.get("page_size"):
        page_size = positive_int(params["page_size"], "page_size")
    order = _parse_order(params["order_by"]) if params.get("order_by") else (("id", False),)
    query = PolicyQuery(
        type=_parse_choice(params, "type", POLICY_TYPES),
        enabled=enabled,
        severity=_parse_choice(params, "severity", SEVERITIES),
        enforcement=_parse_choice(params, "enforcement", ENFORCEMENTS),
        page_size=min(page_size, MAX_PAGE_SIZE), order=order,
    )
    return _with_page_token(query, params["page_token"]) if params.get("page_token") else query


def parse_filter_expression(expression: str) -> dict[str, str]:
    """Split the origin's ``a=b AND c=d`` filter into parameters for :func:`parse_policy_query`."""
    params: dict[str, str] = {}
    text = expression.strip()
    if not text:
        return params
    for clause in _split_and(text):
        name, sep, value = clause.partition("=")
        name = name.strip().lower()
        if not sep or name not in FILTER_KEYS or not value.strip():
            raise _bad("filter", f"expected key=value with a key of {', '.join(FILTER_KEYS)};"
                       f" got {clause!r}")
        params[name] = value.strip().strip("'\"")
    return params


def _split_and(text: str) -> list[str]:
    clauses: list[str] = []
    current: list[str] = []
    for word in text.split():
        if word.upper() == "AND":
            clauses.append(" ".join(current))
            current = []
        else:
            current.append(word)
    clauses.append(" ".join(current))
    return clauses
