"""Listing checks of ``compliance.*``: the ``data_residency`` and ``compliance`` types.

Every rule parameter compiles to its own small closure over precomputed constants (uppercased
country sets, normalised certification names); ``combine`` joins the parameters a rule sets.
The closures read the listing with inline dict lookups (they run on every validate_service) and
treat a field that is absent or of the wrong JSON type as absent, so they never raise.
"""

from __future__ import annotations

from typing import Any

from pdp.core.conditions import MISSING
from pdp.core.findings import Check, Finding, combine, display
from pdp.core.rules import LEVELS, ComplianceRule, DataResidencyRule

RESIDENCY = "compliance.data_residency"
_RANK: dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}


def _compliance(doc: dict[str, Any]) -> dict[str, Any]:
    compliance = doc.get("compliance")
    return compliance if type(compliance) is dict else {}


def _codes(raw: Any) -> list[str]:
    """The location codes of a residency list, trimmed and uppercased; non-strings are ignored."""
    if type(raw) is not list:
        return []
    return [code.strip().upper() for code in raw if type(code) is str and code.strip()]


def normalise_certification(name: str) -> str:
    """``SOC 2`` and ``soc-2`` are ``SOC2``: case-insensitive, spaces and dashes ignored."""
    return name.replace(" ", "").replace("-", "").upper()


def _blocked(blocked: frozenset[str]) -> Check:
    expected = "none of " + display(sorted(blocked))

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        compliance = doc.get("compliance")  # inline rather than _compliance(): a hot path
        raw = compliance.get("data_residency") if type(compliance) is dict else None
        if type(raw) is not list:
            return None
        hits = None
        for code in raw:
            if type(code) is str:
                # Trimmed: " KP" or "KP\n" named a blocked country and passed the check.
                upper = code.strip().upper()
                if upper in blocked:
                    if hits is None:
                        hits = [upper]
                    else:
                        hits.append(upper)
        if hits is None:
            return None
        text = ", ".join(hits)
        return [(RESIDENCY, text, expected, "data is kept in blocked locations: " + text,
                 "remove the blocked locations from data_residency")]

    return check


def _allowed(allowed: frozenset[str]) -> Check:
    expected = "only " + display(sorted(allowed))

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        outside = [code for code in _codes(_compliance(doc).get("data_residency"))
                   if code not in allowed]
        if not outside:
            return None
        return [(RESIDENCY, display(outside), expected,
                 f"data is kept outside the allowed locations: {display(outside)}",
                 "keep data only in: " + display(sorted(allowed)))]

    return check


def _minimum_locations(minimum: int, *, required: bool) -> Check:
    """``minimum_locations`` (and ``require_specification``, which is a minimum of one)."""

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        compliance = doc.get("compliance")
        raw = (compliance.get("data_residency", MISSING) if type(compliance) is dict
               else MISSING)
        if type(raw) is list and len(raw) >= minimum:
            if minimum == 1:
                for code in raw:
                    if type(code) is str and code.strip():
                        return None
            elif len(set(_codes(raw))) >= minimum:
                return None
        count = len(set(_codes(raw)))
        if required:
            return [(RESIDENCY, display(raw), "at least one location",
                     "the service does not specify where it keeps data",
                     "list the service's data locations in compliance.data_residency")]
        return [(RESIDENCY, display(raw), f"at least {minimum} location(s)",
                 f"the service names {count} data location(s), fewer than {minimum}",
                 f"list at least {minimum} data location(s) in compliance.data_residency")]

    return check


def compile_data_residency(rule: DataResidencyRule) -> Check:
    """Blocked and allowed countries, a stated residency, a minimum number of locations."""
    parts: list[Check] = []
    if rule.blocked_countries:
        parts.append(_blocked(frozenset(code.upper() for code in rule.blocked_countries)))
    if rule.allowed_countries:
        parts.append(_allowed(frozenset(code.upper() for code in rule.allowed_countries)))
    if rule.require_specification:
        parts.append(_minimum_locations(1, required=True))
    if rule.minimum_locations:
        parts.append(_minimum_locations(rule.minimum_locations, required=False))
    return combine(parts) if parts else _passes


def _passes(_doc: Any) -> None:
    """The check of a rule whose parameters are all off (e.g. ``require_https: false``)."""
    return None


def _certifications(required: tuple[str, ...]) -> Check:
    wanted = frozenset(normalise_certification(name) for name in required)
    expected = "one of " + display(required)

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        held = _compliance(doc).get("certifications", MISSING)
        if type(held) is list:
            for name in held:
                if type(name) is str and (name in wanted
                                          or normalise_certification(name) in wanted):
                    return None
        return [("compliance.certifications", display(held), expected,
                 "the service holds none of the required certifications: "
                 + display(required),
                 f"obtain one of {display(required)} and list it in certifications")]

    return check


def _flag(name: str, label: str) -> Check:
    def check(doc: dict[str, Any]) -> list[Finding] | None:
        value = _compliance(doc).get(name, MISSING)
        if value is True:
            return None
        return [(f"compliance.{name}", display(value), "true",
                 f"the service is not declared {label} compliant",
                 f"achieve {label} compliance and set compliance.{name} to true")]

    return check


def _scoped(minimum: int, inner: Check) -> Check:
    """Apply ``inner`` only to services at or above a compliance level."""

    def check(doc: dict[str, Any]) -> list[Finding] | None:
        compliance = doc.get("compliance")
        level = compliance.get("level") if type(compliance) is dict else None
        if type(level) is not str:
            return None
        rank = _RANK.get(level)
        if rank is None:
            rank = _RANK.get(level.strip().lower(), -1)
        return inner(doc) if rank >= minimum else None

    return check


def compile_compliance(rule: ComplianceRule) -> Check:
    """Certifications (any one suffices), GDPR, HIPAA, SOC2, scoped by compliance level."""
    parts: list[Check] = []
    if rule.required_certifications:
        parts.append(_certifications(tuple(rule.required_certifications)))
    if rule.require_gdpr_compliance:
        parts.append(_flag("gdpr_compliant", "GDPR"))
    if rule.require_hipaa_compliance:
        parts.append(_flag("hipaa_compliant", "HIPAA"))
    if rule.require_soc2_compliance:
        parts.append(_certifications(("SOC2",)))
    check = combine(parts) if parts else _passes
    if rule.minimum_compliance_level is not None:
        return _scoped(_RANK[rule.minimum_compliance_level], check)
    return check
