"""The access model (DESIGN §4.3): bundle data compiled into an index, and the access decision.

Roles come only from bundle data. ``AccessIndex`` precomputes, for every user, the permissions its
roles grant (exact names, ``prefix.*`` wildcards and ``*``), so a decision is a dict lookup and a
set membership test. ``access_control`` policies then see an ``AccessSubject`` (who, what, the
grant, from where); their ``when`` sees the input enriched with ``user`` and ``service``.

Bundle data is validated once, at compile time (``parse_data``): only the keys the access model
reads (``roles``, ``users``, ``services``, ``approvals``, ``routes``); anything else in
``data.json`` is free-form, for conditions reading ``data.<path>``. A user naming a role that
``roles`` lacks is an error: a typo would otherwise silently grant nothing.

``authorize_http`` (ext_authz) matches a request against ``data.routes``: templates such as
``/v1/services/{service_id}/consume`` grouped by segment count and tried in data order; the path
is matched as received (no percent-decoding, so ``%2F`` never becomes a separator), the query
string is ignored, and the user is ``user_id`` or, failing that, the ``x-user-id`` header (set by
the proxy after authentication).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from pdp.core.document import field_errors
from pdp.core.errors import FieldError, PolicyValidationError
from pdp.core.findings import (
    Check,
    CompiledPolicy,
    Finding,
    Tally,
    apply_policies,
    combine,
    display,
    judge,
)
from pdp.core.rules import AccessControlRule, Level

ANY_SERVICE = "*"  # in data.approvals: the user is approved for every service


class Grant(NamedTuple):
    """What a user's roles grant, precomputed (with the text reasons quote)."""

    roles: frozenset[str]
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    everything: bool
    roles_text: str


# What an access_control check sees: (user_id, service_id, grant or None, context.ip_address).
# A plain tuple: it is built on every access decision that has policies to apply.
AccessSubject = tuple[str, str, "Grant | None", Any]


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
                roles_text=", ".join(sorted(user.roles)) or "none",
            )
        self.approvals: dict[str, frozenset[str]] = {
            user: frozenset(services) for user, services in data.approvals.items()
        }
        # Enrichment uses the documents as written, so conditions see every attribute.
        users, services = raw.get("users"), raw.get("services")
        self.users: dict[str, Any] = dict(users) if isinstance(users, Mapping) else {}
        self.services: dict[str, Any] = dict(services) if isinstance(services, Mapping) else {}

    def enrich(self, request: Mapping[str, Any], user_id: Any, service_id: Any) -> dict[str, Any]:
        """The request as conditions see it: plus ``user`` and ``service`` from bundle data
        (``{}`` when unknown), replacing anything the caller sent under those names."""
        return {**request,
                "user": self.users.get(user_id, {}) if type(user_id) is str else {},
                "service": self.services.get(service_id, {}) if type(service_id) is str else {}}

    def approved(self, user_id: str, service_id: str) -> bool:
        """Whether ``data.approvals`` approves the user for the service (``"*"``: all)."""
        services = self.approvals.get(user_id)
        return services is not None and (service_id in services or ANY_SERVICE in services)


def _blocked(blocked: frozenset[str]) -> Check:
    def check(subject: AccessSubject) -> list[Finding] | None:
        user = subject[0]
        if user not in blocked:
            return None
        return [("user_id", user, "a user that is not blocked", f"user {user!r} is blocked",
                 "ask an administrator to lift the block")]

    return check


def _roles(allowed: frozenset[str]) -> Check:
    text = display(sorted(allowed))

    def check(subject: AccessSubject) -> list[Finding] | None:
        user, _, grant, _ = subject
        if grant is not None and grant.roles & allowed:
            return None
        return [("user.roles", grant.roles_text if grant else "none", "one of " + text,
                 f"user {user!r} holds none of the roles {text}",
                 "ask an administrator for one of the roles " + text)]

    return check


def _networks(networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> Check:
    expected = "an address in " + display([str(network) for network in networks])

    def check(subject: AccessSubject) -> list[Finding] | None:
        ip_address = subject[3]
        if _in_networks(ip_address, networks):
            return None
        return [("context.ip_address", display(ip_address), expected,
                 "the request comes from an address outside the allowed ranges"
                 if ip_address else "the request carries no client IP address",
                 "call from an allowed network")]

    return check


def _approval(index: AccessIndex) -> Check:
    def check(subject: AccessSubject) -> list[Finding] | None:
        user, service, _, _ = subject
        if index.approved(user, service):
            return None
        return [("approvals", "", f"{user} approved for {service}",
                 f"user {user!r} is not approved for service {service!r}",
                 "request approval for this service from its owner")]

    return check


def compile_access_control(rule: AccessControlRule, index: AccessIndex) -> Check:
    """Blocked users, allowed roles, source IP ranges and approvals: one closure each."""
    parts: list[Check] = []
    if rule.blocked_user_ids:
        parts.append(_blocked(frozenset(rule.blocked_user_ids)))
    if rule.allowed_user_roles:
        parts.append(_roles(frozenset(rule.allowed_user_roles)))
    if rule.allowed_ip_ranges:
        parts.append(_networks(tuple(ipaddress.ip_network(c) for c in rule.allowed_ip_ranges)))
    if rule.require_approval:
        parts.append(_approval(index))
    return combine(parts) if parts else _passes


def _passes(_subject: Any) -> None:
    """The check of a rule whose parameters are all off (``require_approval: false``)."""
    return None


def _in_networks(value: Any, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
                 ) -> bool:
    if type(value) is not str or len(value) > 64:
        return False
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return any(address in network for network in networks)


def decide_access(index: AccessIndex, policies: tuple[CompiledPolicy, ...], scoped: bool,
                  request: Mapping[str, Any], ids: tuple[Any, Any, Any], ip_address: Any,
                  tally: Tally | None, stamp: tuple[str, str],
                  ) -> tuple[dict[str, Any], Tally | None]:
    """The access decision for ``ids`` = (user_id, service_id, action), and its tally.

    ``stamp`` is (decision_id, bundle_revision), placed in the answer as it is built.
    With ``tally`` None (no explain) the policies run in ``judge`` mode and a tally exists only
    if one of them found something. ``scoped``: some policy has a ``when``, so it needs the input
    enriched with ``user`` and ``service``.
    """
    user_id, service_id, action = ids
    if not (type(user_id) is str and type(service_id) is str and type(action) is str
            and user_id and service_id and action):
        return {"allowed": False, "reason": _bad_request(user_id, service_id, action),
                "required_permissions": [], "missing_permissions": [],
                "violations": tally.violations if tally else [],
                "warnings": tally.warnings if tally else [],
                "decision_id": stamp[0], "bundle_revision": stamp[1]}, tally
    required = "service." + action
    grant = index.grants.get(user_id)
    granted = grant is not None and (
        grant.everything or required in grant.exact
        or (bool(grant.prefixes) and any(required.startswith(p) for p in grant.prefixes)))
    if policies:
        scope = index.enrich(request, user_id, service_id) if scoped else request
        subject = (user_id, service_id, grant, ip_address)
        if tally is None:
            tally = judge(policies, scope, subject)
        else:
            apply_policies(policies, scope, subject, tally)
    violations = tally.violations if tally is not None else []
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
        "warnings": tally.warnings if tally is not None else [],
        "decision_id": stamp[0],
        "bundle_revision": stamp[1],
    }, tally


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
        return (f"denied: user {user_id!r} (roles: {grant.roles_text}) lacks {required}; grant "
                f"it a role with {required} or service.*")
    return denial_by_policy(violations)


Name = Annotated[StrictStr, StringConstraints(min_length=1, max_length=1024)]
HttpMethod = Annotated[StrictStr, StringConstraints(pattern=r"^(\*|[A-Za-z]{1,16})$")]
RoutePath = Annotated[StrictStr, StringConstraints(pattern=r"^/[^\s?#]*$", max_length=2048)]


class UserRecord(BaseModel):
    """``data.users[<id>]``: the user's roles and free-form attributes."""

    model_config = ConfigDict(extra="allow", frozen=True)

    roles: tuple[Name, ...] = ()
    attributes: dict[str, JsonValue] = Field(default_factory=dict)


class ServiceRecord(BaseModel):
    """``data.services[<id>]``: owner, sensitivity ``level`` and anything else."""

    model_config = ConfigDict(extra="allow", frozen=True)

    owner: StrictStr | None = None
    level: Level | None = None
    visibility: StrictStr | None = None


class RouteRecord(BaseModel):
    """``data.routes[i]``: an HTTP route template and the action it means (for ext_authz)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: HttpMethod
    path: RoutePath
    action: Name
    service_id: Name | None = None

    @model_validator(mode="after")
    def _names_a_service(self) -> RouteRecord:
        if self.service_id is None and "{service_id}" not in self.path:
            raise ValueError("a route needs a {service_id} segment in its path or a service_id")
        return self


class AccessData(BaseModel):
    """The parts of bundle data that the access model and ext_authz read."""

    model_config = ConfigDict(extra="allow", frozen=True)

    roles: dict[str, tuple[Name, ...]] = Field(default_factory=dict)
    users: dict[str, UserRecord] = Field(default_factory=dict)
    services: dict[str, ServiceRecord] = Field(default_factory=dict)
    approvals: dict[str, tuple[Name, ...]] = Field(default_factory=dict)
    routes: tuple[RouteRecord, ...] = ()


def parse_data(raw: Mapping[str, Any], *, source: str = "data") -> AccessData:
    """Validate bundle data or raise ``PolicyValidationError`` with ``data.``-prefixed paths."""
    try:
        data = AccessData.model_validate(dict(raw) if isinstance(raw, Mapping) else raw)
    except ValidationError as exc:
        raise PolicyValidationError(source, field_errors(exc, prefix="data")) from None
    errors = [
        FieldError(f"data.users.{user_id}.roles.{i}",
                   f"unknown role {role!r}; data.roles defines: {', '.join(sorted(data.roles))}")
        for user_id, user in data.users.items()
        for i, role in enumerate(user.roles)
        if role not in data.roles
    ]
    if errors:
        raise PolicyValidationError(source, errors)
    return data


USER_HEADER = "x-user-id"
MAX_PATH = 8192


class CompiledRoute(NamedTuple):
    """One route template, split into segments; ``None`` is a ``{placeholder}``."""

    method: str
    segments: tuple[str | None, ...]
    service_index: int | None
    service_id: str | None
    action: str
    template: str


CompiledRoutes = dict[int, tuple[CompiledRoute, ...]]


class RouteMatch(NamedTuple):
    """The outcome of matching: a check_access input, or why there is none."""

    access_request: dict[str, Any] | None
    reason: str
    template: str | None
    denied_status: int


def compile_routes(routes: Iterable[RouteRecord]) -> CompiledRoutes:
    """Group routes by segment count for matching."""
    grouped: dict[int, list[CompiledRoute]] = {}
    for route in routes:
        parts = route.path.strip("/").split("/") if route.path.strip("/") else []
        segments = tuple(None if p.startswith("{") and p.endswith("}") else p for p in parts)
        service_index = parts.index("{service_id}") if "{service_id}" in parts else None
        grouped.setdefault(len(segments), []).append(CompiledRoute(
            route.method.upper(), segments, service_index, route.service_id, route.action,
            route.path))
    return {count: tuple(items) for count, items in grouped.items()}


def _header(headers: Any, name: str) -> Any:
    if type(headers) is not dict:
        return None
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if type(key) is str and key.lower() == name:
                return candidate
    return value


def match_route(routes: CompiledRoutes, request: dict[str, Any]) -> RouteMatch:
    """Match an HTTP request against the routes; never raises."""
    method, path = request.get("method"), request.get("path")
    if type(method) is not str or type(path) is not str or not path.startswith("/"):
        return RouteMatch(None, "denied: the request needs a method and a path starting with /",
                          None, 400)
    if len(path) > MAX_PATH:
        return RouteMatch(None, f"denied: the path is longer than {MAX_PATH} characters",
                          None, 400)
    method = method.upper()
    bare = path.split("?", 1)[0].strip("/")
    parts = bare.split("/") if bare else []
    for route in routes.get(len(parts), ()):
        if route.method not in (method, "*"):
            continue
        if all(part if seg is None else seg == part
               for seg, part in zip(route.segments, parts, strict=True)):
            break
    else:
        return RouteMatch(None, f"denied: no route in data.routes matches {method} {path[:200]}",
                          None, 403)
    service_id = (parts[route.service_index] if route.service_index is not None
                  else route.service_id)
    user_id = request.get("user_id")
    if user_id is None:
        user_id = _header(request.get("headers"), USER_HEADER)
    if type(user_id) is not str or not user_id:
        return RouteMatch(None, "denied: the request carries no user identity (user_id or the "
                          f"{USER_HEADER} header)", route.template, 401)
    context = request.get("context")
    return RouteMatch({"user_id": user_id, "service_id": service_id, "action": route.action,
                       "context": context if type(context) is dict else {}},
                      "", route.template, 403)
