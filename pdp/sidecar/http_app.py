"""The sidecar's localhost HTTP API (DESIGN §7.2), built by :func:`make_app`.

OPA-compatible where OPA has the same endpoint: ``POST /v1/data/{path}`` takes ``{"input": ...}``
and answers ``{"result": ..., "decision_id": ...}``; a path no query lives at answers 200 with no
``result``; a missing ``input`` key answers with OPA's ``api_usage_warning``. The handlers are thin:
they frame JSON, call :meth:`Engine.decide`, and let :mod:`pdp.sidecar.http_errors` map failures.

Served on a loopback address (the default), the API answers only requests addressed to this
machine: a ``Host`` other than ``localhost``, ``127.0.0.1`` or ``[::1]`` (any port, or none; also
the bound address itself) is refused with 403, and so is any request carrying an ``Origin`` that
is not ``http(s)://`` one of those. A web page in the operator's browser could otherwise reach the
API by DNS rebinding (its own name resolving to 127.0.0.1) or send it simple cross-site POSTs
(each ``/v1/bundles/sync`` is a full bundle download). Clients that send no ``Origin`` (curl, the
app, the probes' ``urllib``) are unaffected. A non-loopback bind (``0.0.0.0``) is an operator's
deliberate choice to be reached under other names, and accepts any ``Host`` and ``Origin``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import orjson
from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pdp import __version__
from pdp.core import MAX_JSON_DEPTH, json_too_deep
from pdp.runtime import ActiveBundle, Engine
from pdp.runtime.errors import NotReadyError
from pdp.runtime.metrics import RuntimeMetrics
from pdp.sidecar.errors import BodyTooLargeError, MalformedBodyError, NestingTooDeepError
from pdp.sidecar.http_errors import json_error, response_for

ONE_MIB = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BundleSync = Callable[[], None]
"""Asks the bundle source for an immediate fetch and returns at once."""


class DataPath(NamedTuple):
    """What one ``/v1/data`` path answers: the engine query and how the result is shaped."""

    query: str
    shape: Callable[[dict[str, Any]], Any]


def _whole(decision: dict[str, Any]) -> Any:
    return decision


def _allowed(decision: dict[str, Any]) -> Any:
    return decision.get("allowed") is True


DATA_PATHS: Mapping[str, DataPath] = {
    "policyengine/validate_service": DataPath("validate_service", _whole),
    "policyengine/check_access": DataPath("check_access", _whole),
    "policyengine/validate_consumption": DataPath("validate_consumption", _whole),
    "policyengine/authorize_http": DataPath("authorize_http", _whole),
    "policyengine/allow": DataPath("check_access", _allowed),
}

CLIENT_CLOSED_REQUEST = 499
"""The ``code`` label of a request whose client disconnected before it was answered (nginx's)."""

DATA_ROUTE = "/v1/data/{path}"
"""The ``route`` label of every decision request in ``pdp_http_requests``."""

MISSING_INPUT_WARNING = {
    "code": "api_usage_warning",
    "message": "'input' key missing from the request",
}

ENGINE = web.AppKey("engine", Engine)
BUNDLE_SYNC: web.AppKey[BundleSync] = web.AppKey("bundle_sync")
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
CLOCK_NS: web.AppKey[Callable[[], int]] = web.AppKey("clock_ns")


def encode_json(body: Any, *, pretty: bool = False) -> bytes:
    """JSON bytes of ``body`` (orjson; the standard library for what orjson refuses)."""
    try:
        return orjson.dumps(body, option=_PRETTY if pretty else _COMPACT)
    except TypeError:
        # orjson refuses integers beyond 64 bits; decisions never hold them, but an answer must
        # not become a 500 if one ever does.
        return json.dumps(body, indent=2 if pretty else None, default=str).encode()


_COMPACT = orjson.OPT_NON_STR_KEYS
_PRETTY = orjson.OPT_NON_STR_KEYS | orjson.OPT_INDENT_2


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Read the body as one JSON object within the size and nesting limits; empty means ``{}``."""
    limit = request.app[MAX_BODY_BYTES]
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError(f"request body of {request.content_length} bytes exceeds {limit}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLargeError(f"request body exceeds {limit} bytes") from None
    except web.RequestPayloadError as exc:
        # aiohttp keeps the parser's own error (say, a gzip body that is not gzip) as the cause.
        reason = getattr(exc.__cause__, "message", None) or str(exc)
        raise MalformedBodyError(f"cannot read the request body: {reason}") from None
    if not body or body.isspace():
        return {}
    try:
        # Strict RFC 8259: UTF-8 only, no NaN/Infinity, no number that overflows a double.
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson stops at 1024 levels
            raise NestingTooDeepError(f"JSON nesting exceeds {MAX_JSON_DEPTH} levels") from None
        raise MalformedBodyError(f"invalid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise MalformedBodyError(f"the body must be a JSON object, got {type(parsed).__name__}")
    # Nesting cannot exceed the number of opening brackets (counted in C, strings included), so
    # only bodies with more than the limit need the walk.
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH and json_too_deep(parsed):
        raise NestingTooDeepError(f"JSON nesting exceeds {MAX_JSON_DEPTH} levels")
    return parsed


def json_response(body: Any, *, status: int = 200, pretty: bool = False) -> web.Response:
    """A JSON answer; ``pretty`` indents it (OPA's ``?pretty``)."""
    return web.Response(
        status=status, body=encode_json(body, pretty=pretty), content_type="application/json"
    )


def _flag(request: web.Request, name: str) -> bool:
    """OPA's boolean query parameters: present without a value, or anything but false/0."""
    if not request.query_string:  # the common case: skip building the query MultiDict
        return False
    value = request.query.get(name)
    return value is not None and value.lower() not in {"false", "0"}


def data_handler(target: DataPath) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``POST /v1/data/{path}`` handler of one decision path (see :func:`make_app`)."""

    async def post_data(request: web.Request) -> web.Response:
        """Evaluate ``target``'s query on the envelope's ``input``."""
        # The clock is read only when ?metrics can ask for it: a query string is rare here.
        started = request.app[CLOCK_NS]() if request.query_string else 0
        envelope = await read_json_object(request)
        pretty = _flag(request, "pretty")
        if "input" not in envelope:
            return json_response({"warning": MISSING_INPUT_WARNING}, pretty=pretty)
        explain = bool(request.query_string) and request.query.get(
            "explain", "off").lower() not in {"off", "false", "0"}
        decision = request.app[ENGINE].decide(
            target.query, envelope["input"], explain=explain,
            caller=lambda: f"http:{request.remote or ''}",
        )
        answer: dict[str, Any] = {
            "result": target.shape(decision),
            "decision_id": decision["decision_id"],
        }
        if explain:
            answer["explanation"] = decision.get("explain", [])
        if _flag(request, "provenance"):
            answer["provenance"] = {
                "version": __version__,
                "bundles": {"main": {"revision": decision.get("bundle_revision")}},
            }
        if _flag(request, "metrics"):
            answer["metrics"] = {"timer_server_handler_ns": request.app[CLOCK_NS]() - started}
        return json_response(answer, pretty=pretty)

    return post_data


_DATA_HANDLERS = {path: data_handler(target) for path, target in DATA_PATHS.items()}


async def post_any_data(request: web.Request) -> web.Response:
    """``POST /v1/data/{path}`` for any other spelling of a path (``/`` around it) or none."""
    handler = _DATA_HANDLERS.get(request.match_info.get("path", "").strip("/"))
    if handler is not None:
        return await handler(request)
    await read_json_object(request)  # a body that is not JSON is still a 400
    return json_response({}, pretty=_flag(request, "pretty"))  # OPA: an undefined document


def _active(request: web.Request) -> ActiveBundle:
    # Read the reference once: the answer comes from one snapshot even if a reload swaps it.
    active = request.app[ENGINE].active
    if active is None:
        raise NotReadyError("no bundle is active yet", state="starting")
    return active


async def list_policies(request: web.Request) -> web.Response:
    """``GET /v1/policies``: the active bundle's policy documents, in bundle order."""
    active = _active(request)
    policies = [policy.model_dump(mode="json") for policy in active.policy_set.policies]
    return json_response(
        {"result": policies, "bundle_revision": active.revision}, pretty=_flag(request, "pretty")
    )


async def get_policy(request: web.Request) -> web.Response:
    """``GET /v1/policies/{id}``: one policy document of the active bundle, or 404."""
    policy_id = request.match_info["policy_id"]
    active = _active(request)
    policy = active.policy_set.get(policy_id)
    if policy is None:
        message = f"no policy {policy_id!r} in the active bundle"
        return json_error(404, "resource_not_found", message)
    return json_response(
        {"result": policy.model_dump(mode="json"), "bundle_revision": active.revision},
        pretty=_flag(request, "pretty"),
    )


async def get_status(request: web.Request) -> web.Response:
    """``GET /v1/status``: health state, revision, sequence, age, last errors, keyring ids."""
    return json_response({"result": request.app[ENGINE].status()}, pretty=_flag(request, "pretty"))


async def get_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition of the injected registry."""
    body = generate_latest(request.app[METRICS_REGISTRY])
    answer = web.Response(body=body)
    answer.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return answer


async def health_live(request: web.Request) -> web.Response:
    """``GET /health/live``: the process serves HTTP (it says nothing about bundles)."""
    return json_response({"status": "live"})


async def health_ready(request: web.Request) -> web.Response:
    """``GET /health/ready``: 200 when decisions can be answered, else 503 with the state."""
    engine = request.app[ENGINE]
    state = engine.status().get("state")
    if engine.ready():
        return json_response({"status": "ready", "state": state})
    return json_response({"status": "not_ready", "state": state}, status=503)


async def health_opa(request: web.Request) -> web.Response:
    """``GET /health`` as OPA: ``?bundles`` (or ``?plugins``) also requires an active bundle."""
    wants_bundles = "bundles" in request.query or "plugins" in request.query
    if wants_bundles and not request.app[ENGINE].ready():
        return json_response({"error": "not all bundles have been activated"}, status=503)
    return json_response({})


async def sync_bundles(request: web.Request) -> web.Response:
    """``POST /v1/bundles/sync`` (loopback callers only): ask the source to fetch now (202)."""
    if not _is_loopback(request.remote):
        return json_error(403, "forbidden", "bundle sync is accepted from localhost only")
    sync = request.app.get(BUNDLE_SYNC)
    if sync is None:
        return json_error(409, "not_supported", "this sidecar has no bundle source to sync")
    sync()
    return json_response({"result": {"sync": "requested"}}, status=202)


def _is_loopback(remote: str | None) -> bool:
    if remote is None:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False  # a Unix socket peer or an unparsable address: not a loopback TCP caller


def is_loopback_host(host: str) -> bool:
    """Whether a listen host (``localhost`` or an IP address) accepts local connections only."""
    return host == "localhost" or _is_loopback(host)


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_HOST_RULE = "on a loopback-bound sidecar the Host header must be localhost, 127.0.0.1 or [::1]"
_ORIGIN_RULE = ("on a loopback-bound sidecar a request with an Origin header must come from "
                "http(s)://localhost, 127.0.0.1 or [::1]")


class LocalOnly:
    """The ``Host`` and ``Origin`` headers a loopback-bound API accepts (see the module doc)."""

    def __init__(self, listen_host: str) -> None:
        # The bound address itself too: a sidecar on 127.0.0.2 is called as 127.0.0.2.
        bound = f"[{listen_host}]" if ":" in listen_host else listen_host
        self._names = LOOPBACK_NAMES | {bound.lower()}
        # Host values already accepted: clients send the same one or two on every request, so
        # the decision path pays one set lookup. Bounded, as any port makes a distinct value.
        self._accepted: set[str] = set()

    def refusal(self, request: web.Request) -> web.Response | None:
        """A 403 answer for a request addressed to another name or sent by a foreign page."""
        headers = request.headers
        host = headers.get(hdrs.HOST)
        # No Host at all is an HTTP/1.0 client, never a browser: nothing to rebind.
        if host is not None and host not in self._accepted:
            if not self._local_authority(host):
                return json_error(403, "forbidden", _HOST_RULE)
            if len(self._accepted) < 32:
                self._accepted.add(host)
        origin = headers.get(hdrs.ORIGIN)
        if origin is not None:
            scheme, sep, authority = origin.partition("://")
            # "null" (a sandboxed or file: page) and every other site are refused alike.
            if not (sep and scheme.lower() in {"http", "https"}
                    and self._local_authority(authority)):
                return json_error(403, "forbidden", _ORIGIN_RULE)
        return None

    def _local_authority(self, authority: str) -> bool:
        name, colon, port = authority.rpartition(":")
        if not colon or not ((port.isascii() and port.isdigit()) or not port):
            name = authority  # no port; an IPv6 literal's colons are inside its brackets
        return name.lower() in self._names


class InFlightRequests:
    """How many requests the app is handling now, so shutdown can wait for them to finish.

    aiohttp's own shutdown stops reading from every connection at once, which strands a request
    whose body is still arriving; the process instead closes the listener, waits for this count
    to reach zero (or the grace deadline), and only then closes connections.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """A request started."""
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        """A request finished (answered or failed)."""
        self.count -= 1
        if not self.count:
            self._idle.set()

    async def drained(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for no request to be in flight; True if none is."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


IN_FLIGHT = web.AppKey("in_flight", InFlightRequests)


def _middleware(
    metrics: RuntimeMetrics,
    in_flight: InFlightRequests,
    route_labels: Mapping[object, str],
    local_only: LocalOnly | None,
) -> Any:
    # One middleware, not three: each layer costs a coroutine per request on the hot path.
    # Label lookups cost more than the increment; the set of (route, code) pairs is small.
    children: dict[tuple[object, int], Any] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        in_flight.enter()
        try:
            refusal = local_only.refusal(request) if local_only is not None else None
            answer = await handler(request) if refusal is None else refusal
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            answer = response_for(exc)
        except ConnectionError:
            # The client hung up before its body arrived: not our error, and no answer can reach
            # it. Re-raising would not help: aiohttp logs any handler exception as an error and
            # counts nothing. This answer is only counted (as nginx's 499, client closed request,
            # so a flood of them shows); aiohttp fails to send it and drops the connection quietly.
            answer = web.Response(status=CLIENT_CLOSED_REQUEST)
        except Exception as exc:
            answer = response_for(exc)
        finally:
            in_flight.leave()
        resource = request.match_info.route.resource
        key = (resource, answer.status)
        child = children.get(key)
        if child is None:
            if resource is None:
                route = "unmatched"
            else:
                route = route_labels.get(resource, resource.canonical)
            child = children[key] = metrics.http_requests.labels(route, str(answer.status))
        child.inc()
        return answer

    return middleware


def make_app(
    engine: Engine,
    *,
    metrics: RuntimeMetrics,
    bundle_sync: BundleSync | None = None,
    max_body_bytes: int = ONE_MIB,
    clock_ns: Callable[[], int] = time.perf_counter_ns,
    listen_host: str = "127.0.0.1",
) -> web.Application:
    """Build the HTTP app over ``engine``; ``metrics`` counts requests and backs ``/metrics``.

    ``listen_host`` is the host the app is served on: a loopback one makes it refuse foreign
    ``Host`` and ``Origin`` headers (see the module doc).
    """
    in_flight = InFlightRequests()
    route_labels: dict[object, str] = {}  # filled below, read by the middleware
    local_only = LocalOnly(listen_host) if is_loopback_host(listen_host) else None
    middleware = _middleware(metrics, in_flight, route_labels, local_only)
    app = web.Application(client_max_size=max_body_bytes, middlewares=[middleware])
    app[IN_FLIGHT] = in_flight
    app[ENGINE] = engine
    app[METRICS_REGISTRY] = metrics.registry
    app[MAX_BODY_BYTES] = max_body_bytes
    app[CLOCK_NS] = clock_ns
    if bundle_sync is not None:
        app[BUNDLE_SYNC] = bundle_sync
    # Each decision path has a plain route: aiohttp finds one with a single dict lookup, where the
    # catch-all costs a walk up the path and a regex match (9k instructions of ~360k per
    # check_access request, callgrind). The catch-all serves every other spelling; all of them
    # count under the catch-all's route label.
    for path, handler in _DATA_HANDLERS.items():
        route = app.router.add_post(f"/v1/data/{path}", handler)
        route_labels[route.resource] = DATA_ROUTE
    app.router.add_post("/v1/data/{path:.*}", post_any_data)
    # OPA also answers the data root; no query lives there, so it is undefined like any other.
    root = app.router.add_post("/v1/data", post_any_data)
    route_labels[root.resource] = DATA_ROUTE
    app.router.add_get("/v1/policies", list_policies)
    app.router.add_get("/v1/policies/{policy_id}", get_policy)
    app.router.add_get("/v1/status", get_status)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health/live", health_live)
    app.router.add_get("/health/ready", health_ready)
    app.router.add_get("/health", health_opa)
    app.router.add_post("/v1/bundles/sync", sync_bundles)
    return app
