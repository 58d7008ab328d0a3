"""HTTP routes for ext_authz (``authorize_http``): request → route → check_access input.

``data.routes`` lists ``{method, path, action, service_id?}`` with path templates such as
``/v1/services/{service_id}/consume``; a ``{name}`` segment matches any one non-empty segment and
``{service_id}`` names the service. Routes are grouped by segment count at compile time and tried
in data order. The path is matched as received (no percent-decoding, so ``%2F`` can never turn
into a separator); the query string is ignored. The user comes from ``user_id`` or, failing
that, the ``x-user-id`` header (set by the proxy after authentication, never by the client).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from pdp.core.data import RouteRecord

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
