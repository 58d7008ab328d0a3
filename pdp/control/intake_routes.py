"""HTTP handlers for what sidecars send (``/v1/status``, ``/v1/logs``) and the views over it
(``/v1/fleet``, ``/v1/decisions``), plus the two housekeeping tasks: decision-log retention and
sidecar expiry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from pdp.control.admin_routes import PLANE, Route, body_limit, principal
from pdp.control.auth import Permission
from pdp.control.database import CONNECTION_ERRORS, check_storable, positive_int
from pdp.control.http_json import json_response, query_params, read_json, read_json_object

log = logging.getLogger(__name__)

# A decision-log batch may be larger than an admin request (the uploader's batches are ~1 MiB of
# events before the JSON array around them). aiohttp inflates a gzip body before it is counted.
LOG_BODY_FACTOR = 4
PRUNE_INTERVAL_SECONDS = 3600.0
# Expired sidecars are deleted within a tenth of the expiry time (at least every 30 s), so the
# fleet and its metrics never count a sidecar much longer than configured.
MAX_EXPIRY_SWEEP_SECONDS = 30.0
MIN_EXPIRY_SWEEP_SECONDS = 0.1


def expiry_sweep_seconds(expiry: float) -> float:
    """How often the expiry task runs for a given `--sidecar-expiry`."""
    return min(max(expiry / 10, MIN_EXPIRY_SWEEP_SECONDS), MAX_EXPIRY_SWEEP_SECONDS)


async def post_status(request: web.Request) -> web.Response:
    """``POST /v1/status``: a sidecar's status document (its latest replaces the previous)."""
    report = await read_json_object(request, limit=body_limit(request))
    await request.app[PLANE].intake.record_status(principal(request), report)
    return json_response({"accepted": True})


async def post_logs(request: web.Request) -> web.Response:
    """``POST /v1/logs``: a JSON array of decision events, gzip-encoded or not (OPA's upload)."""
    events = await read_json(request, limit=body_limit(request) * LOG_BODY_FACTOR)
    accepted = await request.app[PLANE].intake.record_decisions(principal(request), events)
    return json_response({"accepted": accepted})


async def get_fleet(request: web.Request) -> web.Response:
    """``GET /v1/fleet``: "N of M on revision R" and every sidecar's revision, state, last error."""
    plane = request.app[PLANE]
    return json_response(await plane.intake.fleet(
        principal(request), seen_within=plane.settings.sidecar_expiry))


async def get_decisions(request: web.Request) -> web.Response:
    """``GET /v1/decisions?limit=&decision_id=``: recent decision events, newest first."""
    params = query_params(request, frozenset({"limit", "decision_id"}))
    limit = min(positive_int(params.get("limit", "100"), "limit"), 1000)
    decision_id = params.get("decision_id")
    check_storable(decision_id, what="decision_id")
    events = await request.app[PLANE].intake.recent_decisions(
        principal(request), limit=limit, decision_id=decision_id)
    return json_response({"decisions": events})


async def prune_decision_logs(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: delete decision events past their retention, hourly, while the app runs."""
    plane = app[PLANE]

    async def prune_forever() -> None:
        while True:
            try:
                deleted = await plane.intake.prune_decisions(
                    older_than=plane.settings.decision_log_retention_seconds)
                if deleted:
                    log.info("pruned decision logs", extra={"deleted": deleted})
            except CONNECTION_ERRORS as exc:
                log.warning("decision-log retention: database unavailable: %s", exc)
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    task = asyncio.create_task(prune_forever(), name="pdp-decision-log-retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def expire_sidecars(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: delete sidecars silent for longer than ``--sidecar-expiry``, repeatedly.

    Every replica runs it; the DELETE is idempotent, so replicas racing for a row are harmless.
    """
    plane = app[PLANE]
    expiry = plane.settings.sidecar_expiry

    async def expire_forever() -> None:
        while True:
            await asyncio.sleep(expiry_sweep_seconds(expiry))
            try:
                gone = await plane.intake.expire_sidecars(older_than=expiry)
            except CONNECTION_ERRORS as exc:
                log.warning("sidecar expiry: database unavailable: %s", exc)
                continue
            if gone:
                plane.metrics.sidecars_expired.inc(len(gone))
                log.info("expired sidecars", extra={"instances": gone, "after_seconds": expiry})

    task = asyncio.create_task(expire_forever(), name="pdp-sidecar-expiry")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


ROUTES: list[Route] = [
    ("POST", "/v1/status", post_status, Permission.REPORT),
    ("POST", "/v1/logs", post_logs, Permission.REPORT),
    ("GET", "/v1/fleet", get_fleet, Permission.READ),
    ("GET", "/v1/decisions", get_decisions, Permission.READ),
]
"""Intake and fleet routes with the permission each needs."""
