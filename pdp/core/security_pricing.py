"""Listing checks of ``endpoint.*``, ``security.*``, ``pricing.*`` and ``sla.*``.

The ``security`` and ``pricing`` types, built like ``residency_compliance``: one closure per rule
parameter, joined by ``combine``, reading the listing with inline lookups and never raising.
Field semantics are DESIGN §4.1 "Field details". ``minimum_tls_version`` is not one of the
parameters that require their field (§4.1: ``require_*``, ``minimum_locations``, ``allowed_*``),
so a listing that does not state ``security.tls_version`` passes it; a stated version that is too
old or unreadable fails it.

Pricing units: a rate whose unit is ``token``, ``N tokens``, ``Nk tokens`` or ``Nm tokens`` is the
price of N tokens (k = 10³, m = 10⁶), so its per-token rate is ``rate / N``; ``request`` or
``N requests`` is a price per request; any other unit (``month``, ``GB``) is neither. Ceilings are
compared exactly for the decimals people write (see ``_rate_ceiling``).
"""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal
from typing import Any

from pdp.core.conditions import MISSING
from pdp.core.findings import Check, Finding, combine, display
from pdp.core.rules import PricingRule, SecurityRule


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    section = doc.get(name)
    return section if type(section) is dict else {}


def _https(doc: dict[str, Any]) -> list[Finding] | None:
    endpoint = doc.get("endpoint")  # inline rather than _section(): a hot path
    url = endpoint.get("url", MISSING) if type(endpoint) is dict else MISSING
    if type(url) is str and url[:8].lower() == "https://":
        return None
    return [("endpoint.url", display(url), "https://…",
             "the service endpoint does not use HTTPS",
             "serve the endpoint over HTTPS (an https:// URL)")]


def _authentication(doc: dict[str, Any]) -> list[Finding] | None:
    kind = _section(doc, "endpoint").get("authentication", MISSING)
    if type(kind) is str and kind.strip().lower() not in ("", "none"):
        return None
    return [("endpoint.authentication", display(kind), "an authentication method",
             "the service endpoint requires no authentication",
             "require authentication on the endpoint")]


def _authentication_types(allowed: frozenset[str]) -> Check:
    expected = "one of " + display(sorted(allowed))

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        kind = _section(doc, "endpoint").get("authentication")
        if type(kind) is not str or not kind.strip() or kind.strip().lower() in allowed:
            return None  # absence is require_authentication's business
        return [("endpoint.authentication", display(kind), expected,
                 f"authentication type {kind!r} is not allowed",
                 "use one of: " + display(sorted(allowed)))]

    return check


def _encryption(name: str) -> Check:
    words = name.replace("_", " ")

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        value = _section(doc, "security").get(name, MISSING)
        if value is True:
            return None
        return [(f"security.{name}", display(value), "true",
                 f"the service does not declare {words}",
                 f"enable {words} and set security.{name} to true")]

    return check


def tls_number(value: Any) -> int | None:
    """``"1.2"``, ``"TLSv1.2"``, ``1.2`` and ``12`` are 12; anything else is None."""
    if type(value) is int:
        return value if 10 <= value <= 19 else None
    if type(value) is float:
        return round(value * 10) if 1 <= value < 2 else None
    if type(value) is str and len(value) <= 16:
        text = value.strip().lower().removeprefix("tls").strip().removeprefix("v")
        major, dot, minor = text.partition(".")
        if major == "1" and dot and minor.isdigit() and len(minor) == 1:
            return 10 + int(minor)
        if text.isdigit() and 10 <= int(text) <= 19:
            return int(text)
    return None


def _minimum_tls(minimum: int) -> Check:
    wanted = f"{minimum // 10}.{minimum % 10}"

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        version = _section(doc, "security").get("tls_version")
        if version is None:
            return None  # not stated (typed inputs say so with null): absent is no violation
        number = tls_number(version)
        if number is not None and number >= minimum:
            return None
        return [("security.tls_version", display(version), f"TLS {wanted} or newer",
                 f"the service does not declare TLS {wanted} or newer",
                 f"support TLS {wanted}+ and set security.tls_version")]

    return check


def compile_security(rule: SecurityRule) -> Check:
    """HTTPS, authentication and its allowed types, encryption, minimum TLS version."""
    parts: list[Check] = []
    if rule.require_https:
        parts.append(_https)
    if rule.require_authentication:
        parts.append(_authentication)
    if rule.allowed_authentication_types:
        parts.append(_authentication_types(
            frozenset(kind.strip().lower() for kind in rule.allowed_authentication_types)))
    if rule.require_encryption_at_rest:
        parts.append(_encryption("encryption_at_rest"))
    if rule.require_encryption_in_transit:
        parts.append(_encryption("encryption_in_transit"))
    if rule.minimum_tls_version is not None:
        parts.append(_minimum_tls(rule.minimum_tls_version))
    return combine(parts) if parts else _passes


def _passes(_doc: Any) -> None:
    """The check of a rule whose parameters are all off."""
    return None


def _rates(doc: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    rates = _section(doc, "pricing").get("rates")
    if type(rates) is not list:
        return []
    return [(index, rate) for index, rate in enumerate(rates) if type(rate) is dict]


# Rates and ceilings arrive as binary floats parsed from decimals, so ``0.07 / 1000`` is
# 7.000000000000001e-05, above a ceiling of 7e-05 that 0.07 per 1k tokens exactly meets, and
# multiplying instead (``7e-05 * 1000`` = 0.06999999999999999) errs the other way. The decimals
# are recovered exactly from each float's shortest repr (what JSON and YAML wrote, up to 15
# significant digits), and compared in decimal: exact, but ~1 µs. So the float quotient, whose
# error is a few parts in 10¹⁶, decides every price outside a band of ±_SLACK around the ceiling
# for free, and only a price inside the band (a price at, or a hair from, the ceiling) pays for
# the exact comparison.
_SLACK = 1e-12
# Below this magnitude floats lose relative precision (subnormals), so the band above does not
# hold: a ceiling this small is compared exactly for any price under twice this.
_TINY = 1e-290
# 40 digits hold the product of two shortest reprs (17 digits each) without rounding.
_EXACT = Context(prec=40)


def _decimal(value: float) -> Decimal:
    """The decimal a person wrote for ``value``: its shortest repr, not its binary expansion."""
    return Decimal(repr(value))


def _exact_rate(amount: float, count: float) -> float:
    """``amount / count`` done in decimal, then rounded once: 0.21 / 1000 is 0.00021."""
    return float(_EXACT.divide(_decimal(amount), _decimal(count)))


def _rate_ceiling(ceiling: float, kind: str) -> Check:
    exact_ceiling = _decimal(ceiling)
    low, high = ((ceiling * (1 - _SLACK), ceiling * (1 + _SLACK)) if ceiling >= _TINY
                 else (-math.inf, 2 * _TINY))
    expected = f"at most {display(ceiling)} per {kind}"

    def over(amount: float, count: float) -> bool:
        price = amount / count
        # NaN compares false both ways and passes, as an unreadable price always has here.
        return price > high or (price >= low and _decimal(amount)
                                > _EXACT.multiply(exact_ceiling, _decimal(count)))

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        findings: list[Finding] = []
        for index, rate in _rates(doc):
            priced = _priced(rate, kind)
            if priced is None or not over(*priced):
                continue
            # Reported as written (0.00021, not 0.00020999999999999998); only violations pay.
            price = display(_exact_rate(*priced))
            findings.append((f"pricing.rates.{index}.rate", price, expected,
                             f"tier {display(rate.get('tier'))!r} charges {price} per {kind}, "
                             f"above {display(ceiling)}", f"lower the per-{kind} rate"))
        return findings or None

    return check


def _is_free(rate: dict[str, Any]) -> bool:
    tier, price = rate.get("tier"), rate.get("rate")
    return ((type(tier) is str and tier.strip().lower() == "free")
            or (type(price) in (int, float) and price == 0))


def _free_tier(doc: dict[str, Any]) -> list[Finding] | None:
    rates = _rates(doc)
    if any(_is_free(rate) for _, rate in rates):
        return None
    return [("pricing.rates", display([rate.get("tier") for _, rate in rates]),
             "a free tier", "the service offers no free tier",
             "add a tier named 'free' or a rate of 0")]


def _enterprise_sla(minimum: float) -> Check:
    expected = f">= {display(minimum)}"
    message = f"enterprise support needs availability of at least {display(minimum)}%"
    remediation = f"raise sla.availability to {display(minimum)} or offer a lower support level"

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        sla = doc.get("sla")
        if type(sla) is not dict:
            return None
        support = sla.get("support_level")
        if type(support) is not str or (support != "enterprise"
                                        and support.strip().lower() != "enterprise"):
            return None
        availability = sla.get("availability", MISSING)
        if type(availability) in (int, float):
            if availability >= minimum:
                return None
            actual = repr(availability)  # display() would say the same, one call later
        else:
            actual = display(availability)
        return [("sla.availability", actual, expected, message, remediation)]

    return check


def compile_pricing(rule: PricingRule) -> Check:
    """Rate ceilings per token and per request, a free tier, the enterprise SLA minimum."""
    parts: list[Check] = []
    if rule.max_rate_per_token is not None:
        parts.append(_rate_ceiling(rule.max_rate_per_token, "token"))
    if rule.max_rate_per_request is not None:
        parts.append(_rate_ceiling(rule.max_rate_per_request, "request"))
    if rule.require_free_tier:
        parts.append(_free_tier)
    if rule.minimum_sla_for_enterprise is not None:
        parts.append(_enterprise_sla(rule.minimum_sla_for_enterprise))
    return combine(parts) if parts else _passes


# A fixed pattern of ours, applied to a string of at most 64 characters: Python's re is safe here
# (admin-supplied patterns, by contrast, always go to RE2).
_UNIT = re.compile(r"(?:per\s+)?(?:(\d+(?:\.\d+)?)\s*([km])?\s+)?(tokens?|requests?)", re.I)
# Scales as exponents: float("1.5e3") rounds once, where float("1.5") * 1e3 could round twice.
_EXPONENT = {"": "", "k": "e3", "m": "e6"}
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
    count = float(number + _EXPONENT[scale.lower() if scale else ""]) if number else 1.0
    if count <= 0:
        return None
    return ("token" if kind.lower().startswith("token") else "request"), count


def _amount(rate: dict[str, Any]) -> float | None:
    value = rate.get("rate")
    return float(value) if isinstance(value, int | float) and type(value) is not bool else None


def _priced(rate: dict[str, Any], kind: str) -> tuple[float, float] | None:
    """``(amount, count)`` of a tier priced per ``kind`` (token or request), else None."""
    unit, amount = _unit(rate), _amount(rate)
    if unit is None or amount is None or unit[0] != kind:
        return None
    return amount, unit[1]


def per_token_rate(rate: dict[str, Any]) -> float | None:
    """The price of one token under this tier, or None if the tier is not priced per token."""
    priced = _priced(rate, "token")
    return None if priced is None else _exact_rate(*priced)


def per_request_rate(rate: dict[str, Any]) -> float | None:
    """The price of one request under this tier, or None if it is not priced per request."""
    priced = _priced(rate, "request")
    return None if priced is None else _exact_rate(*priced)
