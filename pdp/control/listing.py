"""How a policy list is filtered, ordered and paged — one model for the HTTP and gRPC shells.

HTTP passes query parameters (``?type=security&enabled=true&order_by=created_at desc``); gRPC passes
the origin's ``filter`` string (``type=SECURITY AND enabled=true``) and ``order_by``. Both become a
:class:`PolicyQuery`; a bad value raises RequestError naming the parameter.

Page tokens are opaque to clients; inside they carry the offset of the next page. Offsets can skip
or repeat a row when policies are created between two page reads, which an admin listing tolerates.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from pdp.control.errors import RequestError
from pdp.core import FieldError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

POLICY_TYPES = frozenset({
    "data_residency", "compliance", "security", "pricing", "access_control", "rate_limiting",
    "content_filtering", "data_classification", "custom",
})
SEVERITIES = frozenset({"critical", "high", "medium", "low"})

# Column expressions of the orderable fields; a user string never reaches SQL, only these.
ORDER_COLUMNS: dict[str, str] = {
    "id": "id",
    "name": "spec->>'name'",
    "type": "type",
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
    page_size: int = DEFAULT_PAGE_SIZE
    offset: int = 0
    order_by: str = "id"
    descending: bool = False

    def next_page_token(self, total: int) -> str:
        """The token of the page after this one, or "" when this is the last."""
        following = self.offset + self.page_size
        return encode_page_token(following) if following < total else ""


def encode_page_token(offset: int) -> str:
    """The opaque token for a page starting at `offset`."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_page_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = raw.partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        offset = -1
        prefix = ""
    if prefix != "o" or offset < 0:
        raise _bad("page_token", "not a page token returned by a previous list")
    return offset


def _bad(field: str, message: str) -> RequestError:
    return RequestError(f"invalid {field}: {message}", [FieldError(field, message)])


def _parse_bool(field: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise _bad(field, f"expected true or false, got {value!r}")


def _parse_order(value: str) -> tuple[str, bool]:
    words = value.split()
    if not words or len(words) > 2:
        raise _bad("order_by", "expected '<field>' or '<field> asc|desc'")
    field = words[0].lower()
    if field not in ORDER_COLUMNS:
        raise _bad("order_by", f"cannot order by {field!r}; one of {', '.join(ORDER_COLUMNS)}")
    direction = words[1].lower() if len(words) == 2 else "asc"
    if direction not in {"asc", "desc"}:
        raise _bad("order_by", f"direction must be asc or desc, got {words[1]!r}")
    return field, direction == "desc"


def parse_policy_query(params: Mapping[str, str]) -> PolicyQuery:
    """Build a query from HTTP-style parameters; unknown parameters are refused."""
    known = {"type", "enabled", "severity", "page_size", "page_token", "order_by"}
    for name in params:
        if name not in known:
            raise _bad(name, f"unknown parameter; expected one of {', '.join(sorted(known))}")
    policy_type = params.get("type")
    if policy_type is not None:
        policy_type = policy_type.strip().lower()
        if policy_type not in POLICY_TYPES:
            raise _bad("type", f"unknown policy type {policy_type!r}")
    severity = params.get("severity")
    if severity is not None:
        severity = severity.strip().lower()
        if severity not in SEVERITIES:
            raise _bad("severity", f"expected one of critical, high, medium, low; got {severity!r}")
    enabled = _parse_bool("enabled", params["enabled"]) if "enabled" in params else None
    page_size = DEFAULT_PAGE_SIZE
    if params.get("page_size"):
        try:
            page_size = int(params["page_size"])
        except ValueError:
            raise _bad("page_size", f"not an integer: {params['page_size']!r}") from None
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _bad("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    offset = _decode_page_token(params["page_token"]) if params.get("page_token") else 0
    order_by, descending = _parse_order(params["order_by"]) if params.get("order_by") else (
        "id", False)
    return PolicyQuery(type=policy_type, enabled=enabled, severity=severity, page_size=page_size,
                       offset=offset, order_by=order_by, descending=descending)


def parse_filter_expression(expression: str) -> dict[str, str]:
    """Split the origin's ``a=b AND c=d`` filter into parameters for :func:`parse_policy_query`."""
    params: dict[str, str] = {}
    text = expression.strip()
    if not text:
        return params
    for clause in _split_and(text):
        name, sep, value = clause.partition("=")
        name = name.strip().lower()
        if not sep or name not in {"type", "enabled", "severity"} or not value.strip():
            raise _bad("filter", f"expected 'type=…', 'enabled=…' or 'severity=…', got {clause!r}")
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
