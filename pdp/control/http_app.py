"""The control plane's HTTP server: admin API, bundle server and health, built by `make_app`."""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from pdp.control import admin_routes, bundle_server, intake_routes, publish_routes
from pdp.control.admin_routes import PLANE, PRINCIPAL
from pdp.control.auth import Permission, bearer_token
from pdp.control.database import CONNECTION_ERRORS
from pdp.control.http_errors import Handler, error_middleware
from pdp.control.http_json import json_response
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
    """``GET /health/ready``: 200 when PostgreSQL answers and every migration is applied."""
    plane = request.app[PLANE]
    try:
        async with plane.pool.acquire(timeout=2) as conn:
            migrated = await migrations_complete(conn)
    except CONNECTION_ERRORS as exc:
        return json_response({"status": "unavailable", "database": str(exc)}, status=503)
    if not migrated:
        return json_response({"status": "unavailable", "database": "migrations pending"},
                             status=503)
    latest = plane.feed.latest
    return json_response({
        "status": "ok", "listening": plane.feed.listening,
        "latest_sequence": latest.sequence if latest else None,
    })


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
    permissions: dict[AbstractRoute, Permission] = {}
    for method, path, handler, permission in (*admin_routes.ROUTES, *publish_routes.ROUTES,
                                              *bundle_server.ROUTES, *intake_routes.ROUTES):
        permissions[app.router.add_route(method, path, handler)] = permission
    app[ROUTE_PERMISSIONS] = permissions
    app.cleanup_ctx.append(intake_routes.prune_decision_logs)
    return app
