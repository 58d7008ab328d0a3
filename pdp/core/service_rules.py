"""Checks of a service listing (validate_service): data residency, compliance, security, pricing.

Each ``compile_*`` function turns a rule model into a closure over precomputed constants
(uppercased country sets, normalised certification names, ...). A closure reads the input with
plain dict lookups and returns ``None`` or a list of ``Finding``s; a field that is absent or has
the wrong JSON type is treated as absent, so a check never raises on input data. Semantics follow
DESIGN §4.1 "Field details".
"""

from __future__ import annotations

from typing import Any

from pdp.core.findings import Check, Finding, display
from pdp.core.paths import MISSING, make_getter
from pdp.core.pricing import per_request_rate, per_token_rate
from pdp.core.rules import LEVELS, ComplianceRule, DataResidencyRule, PricingRule, SecurityRule

_RESIDENCY = make_getter(("compliance", "data_residency"))
_CERTIFICATIONS = make_getter(("compliance", "certifications"))
_LEVEL = make_getter(("compliance", "level"))
_URL = make_getter(("endpoint", "url"))
_AUTHENTICATION = make_getter(("endpoint", "authentication"))
_RATES = make_getter(("pricing", "rates"))
_SUPPORT = make_getter(("sla", "support_level"))
_AVAILABILITY = make_getter(("sla", "availability"))
_RANK: dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}


def _strings(value: Any) -> list[str]:
    """The string items of a JSON list (anything else reads as an empty list)."""
    return [item for item in value if type(item) is str] if type(value) is list else []


def normalise_certification(name: str) -> str:
    """``SOC 2`` and ``soc-2`` are ``SOC2``: case-insensitive, spaces and dashes ignored."""
    return name.replace(" ", "").replace("-", "").upper()


def compile_data_residency(rule: DataResidencyRule) -> Check:
    """Allowed and blocked countries, a stated residency, a minimum number of locations."""
    allowed = frozenset(code.upper() for code in rule.allowed_countries)
    blocked = frozenset(code.upper() for code in rule.blocked_countries)
    require = rule.require_specification
    minimum = rule.minimum_locations
    field = "compliance.data_residency"

    def check(doc: Any) -> list[Finding] | None:
        raw = _RESIDENCY(doc)
        codes = [code.upper() for code in _strings(raw)]
        findings = None
        if blocked and (hits := [code for code in codes if code in blocked]):
            findings = [Finding(field, display(hits), "none of " + display(sorted(blocked)),
                                f"data is kept in blocked locations: {display(hits)}",
                                "remove the blocked locations from data_residency")]
        if allowed and raw is not MISSING and (
            outside := [code for code in codes if code not in allowed]
        ):
            findings = (findings or []) + [Finding(
                field, display(outside), "only " + display(sorted(allowed)),
                f"data is kept outside the allowed locations: {display(outside)}",
                "keep data only in allowed locations: " + display(sorted(allowed)))]
        if require and not codes:
            findings = (findings or []) + [Finding(
                field, display(raw), "at least one location",
                "the service does not specify where it keeps data",
                "list the service's data locations in compliance.data_residency")]
        if minimum and len(set(codes)) < minimum:
            findings = (findings or []) + [Finding(
                field, display(raw), f"at least {minimum} location(s)",
                f"the service names {len(set(codes))} data location(s), fewer than {minimum}",
                f"list at least {minimum} data location(s) in compliance.data_residency")]
        return findings

    return check


def compile_compliance(rule: ComplianceRule) -> Check:
    """Certifications (any one suffices), GDPR, HIPAA, SOC2, scoped by compliance level."""
    required = tuple(rule.required_certifications)
    wanted = frozenset(normalise_certification(name) for name in required)
    gdpr, hipaa, soc2 = (rule.require_gdpr_compliance, rule.require_hipaa_compliance,
                         rule.require_soc2_compliance)
    minimum = _RANK[rule.minimum_compliance_level] if rule.minimum_compliance_level else None

    def check(doc: Any) -> list[Finding] | None:
        if minimum is not None:
            level = _LEVEL(doc)
            rank = _RANK.get(level.lower()) if type(level) is str else None
            if rank is None or rank < minimum:
                return None  # the policy covers only services at or above its level
        findings: list[Finding] = []
        compliance = doc.get("compliance") if type(doc) is dict else None
        if type(compliance) is not dict:
            compliance = {}
        held = frozenset(normalise_certification(c) for c in _strings(_CERTIFICATIONS(doc)))
        if wanted and not wanted & held:
            findings.append(Finding(
                "compliance.certifications", display(_CERTIFICATIONS(doc)),
                "one of " + display(required),
                "the service holds none of the required certifications: " + display(required),
                "obtain one of " + display(required) + " and list it in certifications"))
        for flag, name, label in ((gdpr, "gdpr_compliant", "GDPR"),
                                  (hipaa, "hipaa_compliant", "HIPAA")):
            if flag and compliance.get(name) is not True:
                findings.append(Finding(
                    f"compliance.{name}", display(compliance.get(name, MISSING)), "true",
                    f"the service is not declared {label} compliant",
                    f"achieve {label} compliance and set compliance.{name} to true"))
        if soc2 and "SOC2" not in held:
            findings.append(Finding(
                "compliance.certifications", display(_CERTIFICATIONS(doc)), "SOC2",
                "the service does not hold a SOC2 certification",
                "obtain SOC2 and list it in compliance.certifications"))
        return findings or None

    return check


def _tls(value: Any) -> int | None:
    """``"1.2"`` / ``12`` → 12; anything else → None."""
    if type(value) is int:
        return value
    if type(value) is float:
        return round(value * 10) if value < 10 else round(value)
    if type(value) is str:
        text = value.strip().lower().removeprefix("tls").strip().removeprefix("v")
        major, _, minor = text.partition(".")
        if major.isdigit() and (minor.isdigit() or not minor) and len(text) <= 8:
            return int(major) * 10 + int(minor or 0) if minor else int(major)
    return None


def compile_security(rule: SecurityRule) -> Check:
    """HTTPS, authentication, encryption at rest and in transit, minimum TLS version."""
    https, auth = rule.require_https, rule.require_authentication
    allowed = frozenset(kind.lower() for kind in rule.allowed_authentication_types)
    at_rest, in_transit = rule.require_encryption_at_rest, rule.require_encryption_in_transit
    minimum_tls = rule.minimum_tls_version

    def check(doc: Any) -> list[Finding] | None:
        findings = None
        if https:
            url = _URL(doc)
            if type(url) is not str or url[:8].lower() != "https://":
                findings = [Finding("endpoint.url", display(url), "https://…",
                                    "the service endpoint does not use HTTPS",
                                    "serve the endpoint over HTTPS (an https:// URL)")]
        if auth or allowed:
            kind = _AUTHENTICATION(doc)
            text = kind.strip().lower() if type(kind) is str else ""
            if auth and text in ("", "none"):
                findings = (findings or []) + [Finding(
                    "endpoint.authentication", display(kind), "an authentication method",
                    "the service endpoint requires no authentication",
                    "require authentication on the endpoint")]
            elif allowed and text and text not in allowed:
                findings = (findings or []) + [Finding(
                    "endpoint.authentication", display(kind), "one of " + display(sorted(allowed)),
                    f"authentication type {display(kind)!r} is not allowed",
                    "use one of: " + display(sorted(allowed)))]
        if at_rest or in_transit or minimum_tls:
            security = doc.get("security") if type(doc) is dict else None
            if type(security) is not dict:
                security = {}
            for flag, name in ((at_rest, "encryption_at_rest"),
                               (in_transit, "encryption_in_transit")):
                if flag and security.get(name) is not True:
                    findings = (findings or []) + [Finding(
                        f"security.{name}", display(security.get(name, MISSING)), "true",
                        f"the service does not declare {name.replace('_', ' ')}",
                        f"enable {name.replace('_', ' ')} and set security.{name} to true")]
            if minimum_tls:
                version = security.get("tls_version", MISSING)
                number = _tls(version)
                if number is None or number < minimum_tls:
                    wanted = f"{minimum_tls // 10}.{minimum_tls % 10}"
                    findings = (findings or []) + [Finding(
                        "security.tls_version", display(version), f"TLS {wanted} or newer",
                        f"the service does not declare TLS {wanted} or newer",
                        f"support TLS {wanted}+ and set security.tls_version")]
        return findings

    return check


def compile_pricing(rule: PricingRule) -> Check:
    """Rate ceilings per token and per request, a free tier, the enterprise SLA minimum."""
    max_token, max_request = rule.max_rate_per_token, rule.max_rate_per_request
    free_tier, sla_minimum = rule.require_free_tier, rule.minimum_sla_for_enterprise

    def check(doc: Any) -> list[Finding] | None:
        findings = None
        if max_token is not None or max_request is not None or free_tier:
            rates = [r for r in _RATES(doc) if type(r) is dict] if type(_RATES(doc)) is list else []
            for index, rate in enumerate(rates):
                per_token, per_request = per_token_rate(rate), per_request_rate(rate)
                if max_token is not None and per_token is not None and per_token > max_token:
                    findings = (findings or []) + [Finding(
                        f"pricing.rates.{index}.rate", display(per_token),
                        f"at most {display(max_token)} per token",
                        f"tier {display(rate.get('tier'))!r} charges {display(per_token)} per "
                        f"token, above {display(max_token)}", "lower the per-token rate")]
                if (max_request is not None and per_request is not None
                        and per_request > max_request):
                    findings = (findings or []) + [Finding(
                        f"pricing.rates.{index}.rate", display(per_request),
                        f"at most {display(max_request)} per request",
                        f"tier {display(rate.get('tier'))!r} charges {display(per_request)} per "
                        f"request, above {display(max_request)}", "lower the per-request rate")]
            if free_tier and not any(
                (type(r.get("tier")) is str and r["tier"].strip().lower() == "free")
                or (type(r.get("rate")) in (int, float) and r["rate"] == 0) for r in rates
            ):
                findings = (findings or []) + [Finding(
                    "pricing.rates", display([r.get("tier") for r in rates]), "a free tier",
                    "the service offers no free tier",
                    "add a tier named 'free' or a rate of 0")]
        if sla_minimum is not None:
            support = _SUPPORT(doc)
            if type(support) is str and support.strip().lower() == "enterprise":
                availability = _AVAILABILITY(doc)
                if type(availability) not in (int, float) or availability < sla_minimum:
                    findings = (findings or []) + [Finding(
                        "sla.availability", display(availability), f">= {display(sla_minimum)}",
                        f"enterprise support needs availability of at least "
                        f"{display(sla_minimum)}%", f"raise sla.availability to "
                        f"{display(sla_minimum)} or offer a lower support level")]
        return findings

    return check
