"""What a failed check reports, and how compiled policies turn reports into violations.

A type's check returns ``None`` when the input passes (the common, fast case) or a list of
``Finding``s. ``CompiledPolicy`` carries a policy's identity with its compiled ``when`` and check;
``apply_policies`` runs a tuple of them, sorting each violation into the answer's ``violations``
(enforcement ``deny``), ``warnings`` (``warn``) or the shadow ``dryrun`` list, and recording the
``explain`` entry when asked. ``judge`` (access checks) and ``collect`` (listings) are the same
loop without explain, for the hot path: they build a ``Tally`` only when something is found. An
exception inside one policy is a finding of that policy, not a crash: fail closed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pdp.core.conditions import MISSING

MAX_VALUE_TEXT = 256  # actual/expected values are echoed, so keep them short
_SEQUENCES = (list, tuple, set, frozenset)
_CONTAINERS = (*_SEQUENCES, dict)


# One way an input fails one policy: (field, actual value, expected value, message, remediation).
# A plain tuple, not a NamedTuple: findings are built on the decision path, and a tuple
# is several times cheaper to build than a NamedTuple instance.
Finding = tuple[str, str, str, str, str]


def display(value: Any) -> str:
    """Render an input value for ``actual_value`` / ``expected_value`` (strings, as the origin)."""
    kind = type(value)  # dispatch on the exact type: cheaper than isinstance on the hot path
    text: str
    if kind is str:
        text = value
    elif value is None or value is MISSING:
        return ""
    elif kind is bool:
        return "true" if value else "false"
    elif kind is int or kind is float:
        text = repr(value)
    elif kind in _SEQUENCES:
        # Items are shown flat; a nested container is shown as JSON (bounded, never recursing).
        text = ", ".join([item if type(item) is str
                          else _json(item) if type(item) in _CONTAINERS else display(item)
                          for item in value])
    else:
        text = _json(value)
    return text if len(text) <= MAX_VALUE_TEXT else text[: MAX_VALUE_TEXT - 1] + "…"


def _json(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):  # unsortable keys, cycles, absurd nesting
        return f"<{type(value).__name__}>"


Check = Callable[[Any], "list[Finding] | None"]
Predicate = Callable[[Any], bool]


class CompiledPolicy:
    """A policy ready to evaluate: identity, enforcement, compiled ``when`` and check."""

    __slots__ = ("check", "enforcement", "id", "message", "name", "remediation", "severity",
                 "template", "when")

    def __init__(self, *, id: str, name: str, severity: str, enforcement: str,
                 message: str | None, remediation: str | None, when: Predicate | None,
                 check: Check) -> None:
        self.id = id
        self.name = name
        self.severity = severity
        self.enforcement = enforcement
        self.message = message
        self.remediation = remediation
        self.when = when
        self.check = check
        # The violation object with this policy's fields filled in, in §5 order: copying it and
        # setting the finding's fields is cheaper than building a nine-key dict each time.
        self.template: dict[str, Any] = {
            "policy_id": id, "policy_name": name, "severity": severity, "message": message,
            "remediation": remediation, "field": "", "actual_value": "", "expected_value": "",
            "enforcement": enforcement,
        }


def file_violations(policy: CompiledPolicy, findings: list[Finding], enforcement: str,
                    target: list[dict[str, Any]]) -> None:
    """Append the §5 violation objects of a policy's findings to ``target``."""
    template = policy.template
    for field, actual, expected, message, remediation in findings:
        violation = template.copy()
        violation["field"] = field
        violation["actual_value"] = actual
        violation["expected_value"] = expected
        if policy.message is None:
            violation["message"] = message
        if policy.remediation is None:
            violation["remediation"] = remediation
        if enforcement != policy.enforcement:
            violation["enforcement"] = enforcement
        target.append(violation)


def internal_error(exc: BaseException) -> Finding:
    """The finding that stands for an unexpected error inside a policy (fail closed)."""
    return ("", "", "",
            f"internal error while evaluating the policy: {type(exc).__name__}: "
            f"{display(str(exc))}",
            "report this to the policy owner; the policy is treated as violated")


_OUTCOMES = {"deny": "violation", "warn": "warning", "dryrun": "dryrun"}


class Tally:
    """The violations, warnings, dry-run findings and explain entries of one decision."""

    __slots__ = ("dryrun", "explain", "failed", "violations", "warnings")

    def __init__(self, explain: bool) -> None:
        self.violations: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []
        self.dryrun: list[dict[str, Any]] = []
        self.explain: list[dict[str, Any]] | None = [] if explain else None
        self.failed = 0

    def record(self, policy: CompiledPolicy, findings: list[Finding], enforcement: str) -> None:
        """File a policy's findings as violations, warnings or dry-run findings."""
        if enforcement == "deny":
            self.failed += 1
            file_violations(policy, findings, enforcement, self.violations)
        elif enforcement == "warn":
            file_violations(policy, findings, enforcement, self.warnings)
        else:
            file_violations(policy, findings, enforcement, self.dryrun)

    def record_error(self, policy: CompiledPolicy, exc: BaseException) -> None:
        """An exception inside a policy: a ``deny`` violation, or a dry-run finding in shadow
        mode (a dry-run policy must never change an answer, even when broken)."""
        enforcement = "dryrun" if policy.enforcement == "dryrun" else "deny"
        findings = [internal_error(exc)]
        self.record(policy, findings, enforcement)
        if self.explain is not None:
            self.note(policy, True, findings, "error")

    def note(self, policy: CompiledPolicy, matched: bool, findings: list[Finding] | None,
             enforcement: str) -> None:
        """Add the explain entry of one policy."""
        if self.explain is None:
            return
        if not matched:
            outcome = "not_applicable"
        elif not findings:
            outcome = "pass"
        else:
            outcome = _OUTCOMES.get(enforcement, "error")
        self.explain.append({"policy_id": policy.id, "when_matched": matched,
                             "outcome": outcome, "findings": len(findings or ())})

    def finish(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Attach the dry-run list and explain entries (only when present) to an answer."""
        if self.dryrun:
            answer["dryrun"] = self.dryrun
        if self.explain is not None:
            answer["explain"] = self.explain
        return answer


def apply_policies(policies: tuple[CompiledPolicy, ...], scope: Any, subject: Any,
                   tally: Tally) -> None:
    """Evaluate ``policies``: ``when`` against ``scope``, the check against ``subject``."""
    for policy in policies:
        matched = True
        try:
            when = policy.when
            if when is not None:
                matched = when(scope)
            findings = policy.check(subject) if matched else None
        except Exception as exc:  # one broken policy must not break the decision
            tally.record_error(policy, exc)
            continue
        if findings:
            tally.record(policy, findings, policy.enforcement)
        if tally.explain is not None:
            tally.note(policy, matched, findings, policy.enforcement)


def judge(policies: tuple[CompiledPolicy, ...], scope: Any, subject: Any) -> Tally | None:
    """``apply_policies`` without explain, for the hot path: None when nothing was found.

    Most decisions find nothing, so the tally is only built when a policy reports something.
    """
    tally = None
    for policy in policies:
        try:
            when = policy.when
            if when is not None and not when(scope):
                continue
            findings = policy.check(subject)
        except Exception as exc:  # one broken policy must not break the decision
            tally = tally or Tally(False)
            tally.record_error(policy, exc)
            continue
        if findings:
            tally = tally or Tally(False)
            tally.record(policy, findings, policy.enforcement)
    return tally


def collect(policies: tuple[CompiledPolicy, ...],
            doc: Any) -> tuple[list[dict[str, Any]], int, Tally | None]:
    """validate_service's loop: (deny violations, failing policies, tally of the rest).

    Deny violations, the one kind of finding a listing commonly has, go straight into a list;
    warnings and dry-run findings (rare) into a tally built only when one turns up.
    """
    violations: list[dict[str, Any]] = []
    failed = 0
    tally = None
    for policy in policies:
        enforcement = policy.enforcement
        try:
            when = policy.when
            if when is not None and not when(doc):
                continue
            findings = policy.check(doc)
        except Exception as exc:  # one broken policy must not break the decision
            findings = [internal_error(exc)]
            enforcement = "dryrun" if enforcement == "dryrun" else "deny"
        if not findings:
            continue
        if enforcement == "deny":
            failed += 1
            # file_violations inlined: this loop is most of the cost of a failing listing.
            template = policy.template
            for field, actual, expected, message, remediation in findings:
                violation = template.copy()
                violation["field"] = field
                violation["actual_value"] = actual
                violation["expected_value"] = expected
                if policy.message is None:
                    violation["message"] = message
                if policy.remediation is None:
                    violation["remediation"] = remediation
                if policy.enforcement != "deny":  # an internal error in a warn policy
                    violation["enforcement"] = "deny"
                violations.append(violation)
        else:
            tally = tally or Tally(False)
            tally.record(policy, findings, enforcement)
    return violations, failed, tally


def combine(parts: list[Check]) -> Check:
    """One check running several parameter checks; a single part is returned as it is."""
    if len(parts) == 1:
        return parts[0]
    frozen = tuple(parts)

    def check(subject: Any) -> list[Finding] | None:
        found = None
        for part in frozen:
            result = part(subject)
            if result:
                found = result if found is None else found + result
        return found

    return check
