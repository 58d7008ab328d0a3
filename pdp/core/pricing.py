"""Pricing units (DESIGN §4.1): what one ``rate`` of a pricing tier costs per token or request.

A unit of ``token``, ``N tokens``, ``Nk tokens`` or ``Nm tokens`` makes ``rate`` the price of N
tokens (k = 10³, m = 10⁶), so the per-token rate is ``rate / N``; a unit of ``request`` (or
``N requests``) is a price per request. Any other unit (``month``, ``GB``) is neither.
"""

from __future__ import annotations

import re
from typing import Any

# A fixed pattern of ours, applied to a string of at most 64 characters: Python's re is safe here
# (admin-supplied patterns, by contrast, always go to RE2).
_UNIT = re.compile(r"(?:per\s+)?(?:(\d+(?:\.\d+)?)\s*([km])?\s+)?(tokens?|requests?)", re.I)
_SCALE = {None: 1.0, "k": 1e3, "m": 1e6}
MAX_UNIT_LENGTH = 64


def _unit(rate: dict[str, Any]) -> tuple[str, float] | None:
    """``("token", 1000.0)`` for ``"1k tokens"``; None for units that are neither."""
    unit = rate.get("unit")
    if type(unit) is not str or len(unit) > MAX_UNIT_LENGTH:
        return None
    match = _UNIT.fullmatch(unit.strip())
    if match is None:
        return None
    number: str | None = match.group(1)
    scale: str | None = match.group(2)
    kind: str = match.group(3)
    count = float(number) * _SCALE[scale.lower() if scale else None] if number else 1.0
    if count <= 0:
        return None
    return ("token" if kind.lower().startswith("token") else "request"), count


def _amount(rate: dict[str, Any]) -> float | None:
    value = rate.get("rate")
    return float(value) if isinstance(value, int | float) and type(value) is not bool else None


def per_token_rate(rate: dict[str, Any]) -> float | None:
    """The price of one token under this tier, or None if the tier is not priced per token."""
    unit, amount = _unit(rate), _amount(rate)
    if unit is None or amount is None or unit[0] != "token":
        return None
    return amount / unit[1]


def per_request_rate(rate: dict[str, Any]) -> float | None:
    """The price of one request under this tier, or None if it is not priced per request."""
    unit, amount = _unit(rate), _amount(rate)
    if unit is None or amount is None or unit[0] != "request":
        return None
    return amount / unit[1]
