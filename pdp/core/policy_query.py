"""A policy list request — filter, order, page — parsed once for every shell that lists policies.

The sidecar's and the control plane's ``ListPolicies`` (gRPC) and the control plane's
``GET /v1/policies`` (HTTP) all turn their request into one :class:`PolicyQuery` here; each shell
keeps only how it *executes* one (documents sorted in memory, or SQL from a fixed column map), so
the same request over the same policies answers the same page everywhere.

- ``filter`` (gRPC, the origin's syntax): ``key=value`` terms joined by ``AND`` (any case), keys
  ``type`` (``SECURITY`` or ``security``), ``enabled`` (``true`` / ``false``), ``severity``,
  ``enforcement``; a value may be quoted. Over HTTP each key is a query parameter of its own.
  A value outside the key's set is refused, not a query that silently matches nothing.
- ``order_by``: comma-separated ``field [asc|desc]`` terms, fields :data:`ORDER_KEYS`; ties are
  always broken by ``id`` ascending (:attr:`PolicyQuery.full_order`). ``severity`` orders critical
  first; ``name`` orders by the name with ASCII letters lower-cased, by code point.
- ``page_size``: 0 (gRPC's "unset") means :data:`DEFAULT_PAGE_SIZE`; larger than
  :data:`MAX_PAGE_SIZE` is lowered to it, as AIP-158 advises; negative is refused. Over HTTP the
  text must be an integer from 1.
- ``page_token``: opaque to clients; inside, the offset of the next page and a digest of filter and
  order, so a token used with another filter or order is refused rather than paging another list.
  Offsets can skip or repeat a policy created between two page reads, which a listing tolerates.

Every refusal is a :class:`~pdp.core.errors.PolicyQueryError` naming the field (or, over HTTP,
the query parameter).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol, get_args

from pdp.core.document import POLICY_TYPES, Enforcement, Severity
from pdp.core.errors import PolicyQueryError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# The largest number a list request may carry (an HTTP page_size, a token's offset): a signed
# 64-bit integer, what a PostgreSQL OFFSET takes, so no store fails on one as a server error.
MAX_REQUEST_NUMBER = 2**63 - 1

SEVERITIES: tuple[str, ...] = get_args(Severity)
"""Severities from the most to the least severe: the order ``order_by=severity`` gives."""
ENFORCEMENTS: tuple[str, ...] = get_args(Enforcement)
FILTER_VALUES: dict[str, tuple[str, ...]] = {
    "type": POLICY_TYPES,
    "enabled": ("true", "false"),
    "severity": SEVERITIES,
    "enforcement": ENFORCEMENTS,
}
"""The filter keys and the values each accepts (lower case)."""
ORDER_KEYS = ("id", "name", "type", "severity", "enforcement", "version", "created_at",
              "updated_at")
_PAGE_PARAMS = ("order_by", "page_size", "page_token")


class ListRequest(Protocol):
    """The four fields of the origin's ``ListPoliciesRequest`` (any object that has them)."""

    @property
    def filter(self) -> str: ...
    @property
    def order_by(self) -> str: ...
    @property
    def page_size(self) -> int: ...
    @property
    def page_token(self) -> str: ...


@dataclass(frozen=True)
class PolicyQuery:
    """A validated list request: which policies (None: any), in which order, which page."""

    type: str | None = None
    enabled: bool | None = None
    severity: str | None = None
    enforcement: str | None = None
    order: tuple[tuple[str, bool], ...] = ()
    """(field, descending) pairs as requested, most significant first."""
    page_size: int = DEFAULT_PAGE_SIZE
    offset: int = 0

    @property
    def filters(self) -> dict[str, str | bool]:
        """The filter terms that are set, by key (all must match)."""
        terms = {"type": self.type, "enabled": self.enabled, "severity": self.severity,
                 "enforcement": self.enforcement}
        return {key: value for key, value in terms.items() if value is not None}

    @property
    def full_order(self) -> tuple[tuple[str, bool], ...]:
        """The requested order with the tie-break every executor applies last: ``id`` ascending."""
        return (*self.order, ("id", False))

    def digest(self) -> str:
        """What a page token is tied to: the filter and the order, not the page."""
        selection = [self.type, self.enabled, self.severity, self.enforcement, self.order]
        return hashlib.sha256(json.dumps(selection).encode()).hexdigest()[:16]

    def next_page_token(self, total: int) -> str:
        """The token of the page after this one among `total` matches, or "" if this is the last."""
        following = self.offset + self.page_size
        if following >= total:
            return ""
        raw = f"o:{following}:{self.digest()}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_list_request(request: ListRequest) -> PolicyQuery:
    """The query of a gRPC ``ListPoliciesRequest``; PolicyQueryError naming the bad field."""
    if request.page_size < 0:
        raise PolicyQueryError("page_size", f"must not be negative, got {request.page_size}")
    filters: dict[str, str] = {}
    for term in _split_and(request.filter):
        key, sep, value = term.partition("=")
        key, value = key.strip().lower(), value.strip().strip("\"'")
        if not sep or not key or not value:
            raise PolicyQueryError("filter", f"expected key=value terms joined by AND, "
                                             f"got {term.strip()!r}")
        if key not in FILTER_VALUES:
            raise PolicyQueryError("filter", f"unknown key {key!r}; use {', '.join(FILTER_VALUES)}")
        if key in filters:
            # A single value per key keeps the query one value; `type=a AND type=b` is a mistake.
            raise PolicyQueryError("filter", f"{key} given more than once")
        filters[key] = _filter_value(key, value, field="filter")
    return _query(filters, request.order_by, request.page_size or DEFAULT_PAGE_SIZE,
                  request.page_token)


def parse_list_params(params: Mapping[str, str]) -> PolicyQuery:
    """The query of HTTP query parameters (``type``, ``enabled``, ``severity``, ``enforcement``,
    ``order_by``, ``page_size``, ``page_token``); PolicyQueryError naming the bad parameter,
    an unknown one included. Empty ``order_by``, ``page_size`` and ``page_token`` are unset."""
    known = (*FILTER_VALUES, *_PAGE_PARAMS)
    for name in params:
        if name not in known:
            raise PolicyQueryError(name, f"unknown parameter; use {', '.join(sorted(known))}")
    filters = {key: _filter_value(key, params[key], field=key)
               for key in FILTER_VALUES if key in params}
    size_text = params.get("page_size", "")
    page_size = whole_number(size_text) if size_text else DEFAULT_PAGE_SIZE
    if page_size is None or page_size < 1:
        raise PolicyQueryError("page_size", f"expected an integer from 1 to {MAX_REQUEST_NUMBER},"
                                            f" got {size_text!r}")
    return _query(filters, params.get("order_by", ""), page_size, params.get("page_token", ""))


def _query(filters: Mapping[str, str], order_by: str, page_size: int,
           page_token: str) -> PolicyQuery:
    enabled = filters.get("enabled")
    query = PolicyQuery(
        type=filters.get("type"), enabled=None if enabled is None else enabled == "true",
        severity=filters.get("severity"), enforcement=filters.get("enforcement"),
        order=_parse_order(order_by), page_size=min(page_size, MAX_PAGE_SIZE),
    )
    if not page_token:
        return query
    return replace(query, offset=_token_offset(page_token, query.digest()))


def _filter_value(key: str, raw: str, *, field: str) -> str:
    value = raw.strip().lower()
    allowed = FILTER_VALUES[key]
    if value not in allowed:
        subject = f"{key} must be" if field != key else "must be"
        raise PolicyQueryError(field, f"{subject} one of {', '.join(allowed)}, got {raw!r}")
    return value


def _split_and(text: str) -> list[str]:
    if not text.strip():
        return []
    terms: list[str] = []
    current: list[str] = []
    for word in text.split():
        if word.upper() == "AND":
            terms.append(" ".join(current))
            current = []
        else:
            current.append(word)
    terms.append(" ".join(current))
    return terms


def _parse_order(text: str) -> tuple[tuple[str, bool], ...]:
    if not text.strip():
        return ()
    order: list[tuple[str, bool]] = []
    for term in text.split(","):
        words = term.split()
        if not 1 <= len(words) <= 2:
            raise PolicyQueryError("order_by", f"expected 'field [asc|desc]' terms separated by "
                                               f"commas, got {term.strip()!r}")
        key = words[0].lower()
        if key not in ORDER_KEYS:
            raise PolicyQueryError("order_by", f"unknown key {key!r}; use {', '.join(ORDER_KEYS)}")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise PolicyQueryError("order_by", f"direction must be asc or desc, got {words[1]!r}")
        order.append((key, direction == "desc"))
    return tuple(order)


def whole_number(value: object) -> int | None:
    """``value`` as an integer from 0 to :data:`MAX_REQUEST_NUMBER`, else None: an int (not a
    bool) or its ASCII digits. ``int()`` would also take "٣" or " 3 ", and a larger number would
    fail in a store as a server error. The control plane reads every number a request carries
    with it, not only the listing's."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            return None
        digits = value.lstrip("0")
        # Bounded before int(), which refuses more than 4,300 digits with a ValueError that
        # escaped every caller as a 500.
        if len(digits) > len(str(MAX_REQUEST_NUMBER)):
            return None
        value = int(digits or "0")
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value if 0 <= value <= MAX_REQUEST_NUMBER else None


def _token_offset(token: str, digest: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raw = ""
    prefix, number, token_digest = [*raw.split(":"), "", "", ""][:3]
    offset = whole_number(number)
    if prefix != "o" or offset is None:
        raise PolicyQueryError("page_token", "not a page token returned by a previous list")
    if token_digest != digest:
        raise PolicyQueryError("page_token",
                               "the token belongs to a listing with another filter or order_by")
    return offset
