"""The access model (DESIGN §4.3): bundle data compiled into an index, and the access decision.

Roles come only from bundle data. ``AccessIndex`` precomputes, for every user, the permissions its
roles grant (exact names, ``prefix.*`` wildcards and ``*``), so a decision is a dict lookup and a
set membership test. ``access_control`` policies then see an ``AccessSubject`` (who, what, from
where, approved or not); their ``when`` sees the input enriched with ``user`` and ``service``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, NamedTuple

from pdp.core.data import AccessData
from pdp.core.findings import Check, CompiledPolicy, Finding, Tally, apply_policies, display
from pdp.core.rules import AccessControlRule

ANY_SERVICE = "*"  # in data.approvals: the user is approved for every service


class Grant(NamedTuple):
    """What a user's roles grant, precomputed."""

    roles: frozenset[str]
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    everything: bool

    def allows(self, permission: str) -> bool:
        """Whether the roles grant ``permission`` exactly or through a wildcard."""
        return (self.everything or permission in self.exact
                or any(permission.startswith(prefix) for prefix in self.prefixes))


class AccessSubject(NamedTuple):
    """The facts an ``access_control`` rule checks."""

    user_id: str
    service_id: str
    roles: frozenset[str]
    ip_address: Any
    approved: bool


class AccessIndex:
    """Bundle data compiled for access decisions; immutable once built."""

    __slots__ = ("approvals", "grants", "services", "users")

    def __init__(self, data: AccessData, raw: Mapping[str, Any]) -> None:
        role_permissions = {role: frozenset(perms) for role, perms in data.roles.items()}
        self.grants: dict[str, Grant] = {}
        for user_id, user in data.users.items():
            permissions = frozenset().union(*(role_permissions[r] for r in user.roles))
            self.grants[user_id] = Grant(
                roles=frozenset(user.roles),
                exact=permissions,
                prefixes=tuple(sorted(p[:-1] for p in permissions if p.endswith(".*"))),
                everything="*" in permissions,
            )
        self.approvals: dict[str, frozenset[str]] = {
            user: frozenset(services) for user, services in data.approvals.items()
        }
        # Enrichment uses the documents as written, so conditions see every attribute.
        users, services = raw.get("users"), raw.get("services")
        self.users: dict[str, Any] = dict(users) if isinstance(users, Mapping) else {}
        self.services: dict[str, Any] = dict(services) if isinstance(services, Mapping) else {}

    def approved(self, user_id: str, service_id: str) -> bool:
        """Whether ``data.approvals`` approves the user for the service (``"*"``: all)."""
        services = self.approvals.get(user_id)
        return services is not None and (service_id in services or ANY_SERVICE in services)


def compile_access_control(rule: AccessControlRule) -> Check:
    """Blocked users, allowed roles, source IP ranges and approvals, as one check."""
    blocked = frozenset(rule.blocked_user_ids)
    allowed_roles = frozenset(rule.allowed_user_roles)
    networks = tuple(ipaddress.ip_network(cidr) for cidr in rule.allowed_ip_ranges)
    require_approval = rule.require_approval

    def check(subject: AccessSubject) -> list[Finding] | None:
        findings = None
        if subject.user_id in blocked:
            findings = [("user_id", subject.user_id, "a user that is not blocked",
                                f"user {subject.user_id!r} is blocked",
                                "ask an administrator to lift the block")]
        if allowed_roles and not subject.roles & allowed_roles:
            findings = (findings or []) + [(
                "user.roles", display(sorted(subject.roles)), "one of " + display(sorted(
                    allowed_roles)), f"user {subject.user_id!r} holds none of the roles "
                f"{display(sorted(allowed_roles))}", "ask an administrator for one of the roles "
                + display(sorted(allowed_roles)))]
        if networks and not _in_networks(subject.ip_address, networks):
            findings = (findings or []) + [(
                "context.ip_address", display(subject.ip_address),
                "an address in " + display([str(n) for n in networks]),
                "the request comes from an address outside the allowed ranges"
                if subject.ip_address else "the request carries no client IP address",
                "call from an allowed network")]
        if require_approval and not subject.approved:
            findings = (findings or []) + [(
                "approvals", "", f"{subject.user_id} approved for {subject.service_id}",
                f"user {subject.user_id!r} is not approved for service {subject.service_id!r}",
                "request approval for this service from its owner")]
        return findings

    return check


def _in_networks(value: Any, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
                 ) -> bool:
    if type(value) is not str or len(value) > 64:
        return False
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return any(address in network for network in networks)


def decide_access(index: AccessIndex, policies: tuple[CompiledPolicy, ...],
                  request: Mapping[str, Any], user_id: Any, service_id: Any, action: Any,
                  ip_address: Any, tally: Tally | None) -> dict[str, Any]:
    """The access decision without ids: allowed, reason, permissions, violations, warnings.

    ``tally`` may be None when there are no policies to apply and nothing to explain (the
    fast path of a plain permission check).
    """
    if not (type(user_id) is str and type(service_id) is str and type(action) is str
            and user_id and service_id and action):
        return {"allowed": False, "reason": _bad_request(user_id, service_id, action),
                "required_permissions": [], "missing_permissions": [],
                "violations": tally.violations if tally else [],
                "warnings": tally.warnings if tally else []}
    required = "service." + action
    grant = index.grants.get(user_id)
    granted = grant is not None and (
        grant.everything or required in grant.exact
        or (bool(grant.prefixes) and any(required.startswith(p) for p in grant.prefixes)))
    violations: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    if tally is not None:
        if policies:
            subject = AccessSubject(user_id, service_id, grant.roles if grant else frozenset(),
                                    ip_address, index.approved(user_id, service_id))
            scope = {**request, "user": index.users.get(user_id, {}),
                     "service": index.services.get(service_id, {})}
            apply_policies(policies, scope, subject, tally)
        violations, warnings = tally.violations, tally.warnings
    if granted and not violations:
        allowed, reason = True, f"allowed: user '{user_id}' holds {required} on '{service_id}'"
    else:
        allowed, reason = False, _denial(grant, user_id, required, granted, violations)
    return {
        "allowed": allowed,
        "reason": reason,
        "required_permissions": [required],
        "missing_permissions": [] if granted else [required],
        "violations": violations,
        "warnings": warnings,
    }


def _bad_request(user_id: Any, service_id: Any, action: Any) -> str:
    for name, value in (("user_id", user_id), ("service_id", service_id), ("action", action)):
        if type(value) is not str or not value:
            return f"denied: {name} must be a non-empty string"
    return "denied: invalid request"


def denial_by_policy(violations: list[dict[str, Any]]) -> str:
    """The reason of a decision denied by policy violations: the first one, and how many more."""
    first, more = violations[0], len(violations) - 1
    return (f"denied by policy {first['policy_id']!r}: {first['message']}"
            + (f" (and {more} more violation(s))" if more else ""))


def _denial(grant: Grant | None, user_id: str, required: str, granted: bool,
            violations: list[dict[str, Any]]) -> str:
    if grant is None:
        return (f"denied: user {user_id!r} is unknown (not in data.users) and so holds no "
                f"permissions; add it to data.users with a role granting {required}")
    if not granted:
        roles = display(sorted(grant.roles)) or "none"
        return (f"denied: user {user_id!r} (roles: {roles}) lacks {required}; grant it a role "
                f"with {required} or {required.split('.', 1)[0]}.*")
    return denial_by_policy(violations)
