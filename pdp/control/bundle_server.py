"""``GET /bundles/{name}``: the latest signed bundle for sidecars (DESIGN §8.4).

The ETag is the bundle's SHA-256. ``If-None-Match`` with the current ETag answers 304; with
``Prefer: wait=N`` the request is held up to N seconds (capped by ``--max-wait-seconds``) until a
newer bundle is published — woken by the feed's LISTEN/NOTIFY — and then answered 200, or 304 when
the wait ends with nothing new. The bytes served are exactly the stored ones.
"""

from __future__ import annotations

import re

from aiohttp import web

from pdp.control.admin_routes import PLANE, Route
from pdp.control.auth import Permission, bearer_token
from pdp.control.bundle_store import BundleRecord
from pdp.control.errors import ClientGoneError, NotFoundError, NotPublishedError

BUNDLE_NAME = "main"
CONTENT_TYPE = "application/vnd.openpolicyagent.bundles"

# The value must end where the preference does: "wait=1e3" is malformed (0), not 1 s.
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)\s*(?:$|[,;])", re.IGNORECASE)


def requested_wait(prefer: str | None, cap: float) -> float:
    """Seconds asked for by a ``Prefer: wait=N`` header, capped; 0 when absent or malformed."""
    if not prefer:
        return 0.0
    match = _WAIT.search(prefer)
    return min(float(match.group(1)), cap) if match else 0.0


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _matches(record: BundleRecord, known: set[str]) -> bool:
    # RFC 9110 §13.1.2: "*" matches any current representation.
    return record.etag in known or "*" in known


def _bundle_response(record: BundleRecord) -> web.Response:
    return web.Response(
        body=record.content, content_type=CONTENT_TYPE,
        headers={"ETag": record.etag, "X-Bundle-Sequence": str(record.sequence),
                 "X-Bundle-Revision": record.revision, "Cache-Control": "no-cache"},
    )


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def get_bundle(request: web.Request) -> web.StreamResponse:
    """Serve the latest bundle, long-polling when the client's copy is current (the route
    requires ``Permission.DOWNLOAD``, checked by the app's middleware)."""
    name = request.match_info["name"]
    if name != BUNDLE_NAME:
        raise NotFoundError(f"no bundle named {name!r}; the bundle is {BUNDLE_NAME!r}")
    plane = request.app[PLANE]
    known = _etags(request.headers.get("If-None-Match"))
    wait = requested_wait(request.headers.get("Prefer"), plane.settings.max_wait_seconds)
    latest = plane.feed.latest
    if (latest is None or _matches(latest, known)) and wait > 0:
        # Held until the bundle differs from the one the client has (of the ETags it listed,
        # the current one), or until something is published at all.
        with plane.metrics.long_polls_waiting.track_inprogress():
            latest = await plane.feed.wait_for_change(
                latest.etag if latest is not None else None, wait,
                abandoned=lambda: _client_gone(request))
        if _client_gone(request):
            # A client that closed its connection while waiting gets no token lookup, no answer
            # and no count: thousands of them would otherwise each cost a query on the next
            # publish and show up as downloads that never happened.
            raise ClientGoneError("the client closed the connection during a long poll")
        # The caller was authenticated before the wait, which can last a minute: a token
        # revoked meanwhile must not receive what was published meanwhile.
        await plane.tokens.authenticate(bearer_token(request.headers.get("Authorization")))
    if latest is None:
        raise NotPublishedError("nothing has been published yet")
    # Tells clients the wait was honoured, so they long-poll rather than fall back to polling.
    applied = {"Preference-Applied": f"wait={wait:g}"} if wait > 0 else {}
    if _matches(latest, known):
        plane.metrics.bundle_downloads.labels(status="304").inc()
        return web.Response(status=304, headers={"ETag": latest.etag, **applied})
    plane.metrics.bundle_downloads.labels(status="200").inc()
    answer = _bundle_response(latest)
    answer.headers.update(applied)
    return answer


# HEAD answers as GET would, headers only (aiohttp drops the body): how a probe or a script
# learns the current ETag and sequence without downloading the bundle.
ROUTES: list[Route] = [("GET", "/bundles/{name}", get_bundle, Permission.DOWNLOAD),
                       ("HEAD", "/bundles/{name}", get_bundle, Permission.DOWNLOAD)]
"""The bundle server's routes."""
