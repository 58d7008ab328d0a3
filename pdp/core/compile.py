"""Compilation of policy documents into per-query tuples of ``CompiledPolicy``.

Each type has one compile function (rule model → check closure); ``compile_policies`` validates
bundle data, rejects duplicate ids, compiles each enabled policy's ``when`` against the data, and
files the result under the query that evaluates it. Disabled policies are kept in the document
list (``PolicySet.get`` shows them) but never compiled into an evaluation path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from pdp.core.access import (
    AccessIndex,
    CompiledRoutes,
    compile_access_control,
    compile_routes,
    parse_data,
)
from pdp.core.conditions import compile_condition, field_getter
from pdp.core.consumption import RateLimit, compile_classification, compile_content_filter
from pdp.core.document import (
    AccessControlPolicy,
    ContentFilteringPolicy,
    CustomPolicy,
    DataClassificationPolicy,
    PolicyDocument,
    PricingPolicy,
    RateLimitingPolicy,
    condition_errors,
)
from pdp.core.errors import FieldError, PolicyValidationError
from pdp.core.findings import Check, CompiledPolicy, Finding, display
from pdp.core.patterns import Detectors
from pdp.core.residency_compliance import compile_compliance, compile_data_residency
from pdp.core.rules import CustomRule, RuleModel
from pdp.core.security_pricing import compile_pricing, compile_security

_SERVICE_CHECKS: dict[str, Callable[[Any], Check]] = {
    "data_residency": compile_data_residency,
    "compliance": compile_compliance,
    "security": compile_security,
    "pricing": compile_pricing,
}


class CompiledSet(NamedTuple):
    """Everything a ``PolicySet`` evaluates, grouped by where it is used."""

    service: tuple[CompiledPolicy, ...]
    service_counted: int  # deny/warn policies of validate_service (dry-run ones stay invisible)
    access_policies: tuple[CompiledPolicy, ...]
    access_scoped: bool  # some access policy has a `when`: enrich the input for it
    access_custom: tuple[CompiledPolicy, ...]
    consumption_custom: tuple[CompiledPolicy, ...]
    rate_limits: tuple[RateLimit, ...]
    content: tuple[CompiledPolicy, ...]
    classification: tuple[CompiledPolicy, ...]
    detectors: Detectors | None
    max_cost_per_request: float | None
    routes: CompiledRoutes
    access: AccessIndex


def compile_custom(rule: CustomRule, data: Mapping[str, Any]) -> Check:
    """A ``custom`` rule: the condition being true is the violation."""
    condition = compile_condition(rule.violation_if, data)
    getter = field_getter(rule.field, data)
    field, expected = rule.field, rule.expected_value or ""

    def check(doc: Any) -> list[Finding] | None:
        if not condition(doc):
            return None
        return [(field, display(getter(doc)), expected, f"{field} violates the policy's condition",
                 f"change {field}" + (f" to {expected}" if expected else ""))]

    return check


def _policy(document: PolicyDocument, data: Mapping[str, Any], check: Check) -> CompiledPolicy:
    return CompiledPolicy(
        id=document.id, name=document.name, severity=document.severity,
        enforcement=document.enforcement, message=document.message,
        remediation=document.remediation,
        when=compile_condition(document.when, data) if document.when is not None else None,
        check=check,
    )


def _no_check(_subject: Any) -> None:
    """The check slot of a rate-limiting policy: its limits need the injected counters, so
    ``consumption`` evaluates them itself; the compiled policy carries identity and ``when``."""
    return None


def compile_policies(documents: tuple[PolicyDocument, ...],
                     data: Mapping[str, Any]) -> CompiledSet:
    """Compile ``documents`` with ``data``; raises ``PolicyValidationError`` naming the problem."""
    seen: set[str] = set()
    for document in documents:
        if document.id in seen:
            raise PolicyValidationError(f"policy {document.id}", [
                FieldError("id", f"duplicate policy id {document.id!r}")])
        seen.add(document.id)
        errors = condition_errors(document)  # documents built without parse_policy
        if errors:
            raise PolicyValidationError(f"policy {document.id}", errors)
    access_data = parse_data(data)
    access = AccessIndex(access_data, data)
    groups: dict[str, list[CompiledPolicy]] = {
        "service": [], "access": [], "access_custom": [], "consumption_custom": [],
        "content": [], "classification": [],
    }
    rate_limits: list[RateLimit] = []
    costs: list[float] = []
    for document in documents:
        if not document.enabled:
            continue
        rule: RuleModel = document.rule
        kind: str = document.type
        try:
            if kind in _SERVICE_CHECKS:
                groups["service"].append(_policy(document, data, _SERVICE_CHECKS[kind](rule)))
                if (isinstance(document, PricingPolicy) and document.enforcement != "dryrun"
                        and document.rule.max_rate_per_request is not None):
                    costs.append(document.rule.max_rate_per_request)  # limits.max_cost_per_request
            elif isinstance(document, CustomPolicy):
                target = {"validate_service": "service", "check_access": "access_custom",
                          "validate_consumption": "consumption_custom"}[document.rule.query]
                groups[target].append(_policy(document, data,
                                              compile_custom(document.rule, data)))
            elif isinstance(document, AccessControlPolicy):
                groups["access"].append(
                    _policy(document, data, compile_access_control(document.rule, access)))
            elif isinstance(document, RateLimitingPolicy):
                rate_limits.append(RateLimit(_policy(document, data, _no_check), document.rule))
            elif isinstance(document, ContentFilteringPolicy):
                groups["content"].append(
                    _policy(document, data, compile_content_filter(document.rule)))
            elif isinstance(document, DataClassificationPolicy):
                groups["classification"].append(
                    _policy(document, data, compile_classification(document.rule)))
            else:
                raise ValueError(f"policy type {kind!r} has no compiler")
        except ValueError as exc:  # a condition or pattern that validated but cannot compile
            raise PolicyValidationError(f"policy {document.id}",
                                        [FieldError("rule", str(exc))]) from None
    service = tuple(groups["service"])
    return CompiledSet(
        service=service,
        service_counted=sum(1 for p in service if p.enforcement != "dryrun"),
        access_policies=tuple(groups["access"]),
        access_scoped=any(policy.when is not None for policy in groups["access"]),
        access_custom=tuple(groups["access_custom"]),
        consumption_custom=tuple(groups["consumption_custom"]),
        rate_limits=tuple(rate_limits),
        content=tuple(groups["content"]),
        classification=tuple(groups["classification"]),
        detectors=Detectors() if groups["classification"] else None,
        max_cost_per_request=min(costs) if costs else None,
        routes=compile_routes(access_data.routes),
        access=access,
    )
