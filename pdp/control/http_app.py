"""The control plane's HTTP server: admin API, bundle server, health and metrics (`make_app`)."""

from __future__ import annotations

import contextlib

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from pdp.control import admin_routes, bundle_server, intake_routes, publish_routes
from pdp.control.admin_routes import PLANE, PRINCIPAL
from pdp.control.auth import Permission, bearer_token
from pdp.control.database import CONNECTION_ERRORS, problem
from pdp.control.http_errors import Handler, error_middleware
from pdp.control.http_json import json_response
from pdp.control.metrics import CONTENT_TYPE
from pdp.control.migrations import migrations_complete
from pdp.control.plane import ControlPlane

ROUTE_PERMISSIONS = web.AppKey("route_permissions", dict[AbstractRoute, Permission])


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate and authorise every API request before its handler reads the body.

    Health checks need no token; unknown routes fall through to their 404 / 405.
    """
    permission = request.app[ROUTE_PERMISSIONS].get(request.match_info.route)
    if permission is not None:
        token = bearer_token(request.headers.get("Authorization"))
        caller = await request.app[PLANE].tokens.authenticate(token)
        caller.require(permission)
        request[PRINCIPAL] = caller
    return await handler(request)


async def live(request: web.Request) -> web.Response:
    """``GET /health/live``: the process is up and serving."""
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """``GET /health/ready``: 200 when PostgreSQL answers, every migration is applied and the
    LISTEN connection is up (without it this replica learns of publishes only at its re-check)."""
    plane = request.app[PLANE]
    try:
        async with plane.pool.acquire(timeout=2) as conn:
            migrated = await migrations_complete(conn)
    except CONNECTION_ERRORS as exc:
        return json_response({"status": "unavailable", "database": problem(exc),
                              "listening": plane.feed.listening}, status=503)
    if not migrated:
        return json_response({"status": "unavailable", "database": "migrations pending",
                              "listening": plane.feed.listening}, status=503)
    latest = plane.feed.latest
    listening = plane.feed.listening
    return json_response({
        "status": "ok" if listening else "unavailable", "listening": listening,
        "latest_sequence": latest.sequence if latest else None,
    }, status=200 if listening else 503)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics`` (no token, like every Prometheus target): the control plane's metrics.

    The fleet gauge is refreshed from the database on each scrape, so it is as current as the
    scrape; when the database is away the previous figures are served.
    """
    plane = request.app[PLANE]
    with contextlib.suppress(*CONNECTION_ERRORS):
        plane.metrics.set_fleet(
            await plane.intake.revision_counts(seen_within=plane.settings.sidecar_expiry))
    return web.Response(body=plane.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


def make_app(plane: ControlPlane) -> web.Application:
    """The control plane's aiohttp application over an opened `plane`."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware],
        # aiohttp refuses bigger bodies itself; http_json checks each route's own limit and
        # answers 413 in our shape. Decision-log uploads may be larger than admin requests.
        client_max_size=plane.settings.max_body_bytes * intake_routes.LOG_BODY_FACTOR,
    )
    app[PLANE] = plane
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    permissions: dict[AbstractRoute, Permission] = {}
    for method, path, handler, permission in (*admin_routes.ROUTES, *publish_routes.ROUTES,
                                              *bundle_server.ROUTES, *intake_routes.ROUTES):
        permissions[app.router.add_route(method, path, handler)] = permission
    app[ROUTE_PERMISSIONS] = permissions
    app.cleanup_ctx.append(intake_routes.prune_decision_logs)
    app.cleanup_ctx.append(intake_routes.expire_sidecars)
    return app
