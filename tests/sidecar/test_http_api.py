"""The sidecar's HTTP API (DESIGN §7.2, §10) on a real socket, over a real engine and bundle."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from test_process_support import CHECK_ACCESS_INPUT, BundleFactory, activate

from pdp.runtime import Engine
from pdp.sidecar.http_app import make_app

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
CHECK_ACCESS = "/v1/data/policyengine/check_access"


@pytest.fixture
async def client(aiohttp_client: MakeClient, engine: Engine, bundles: BundleFactory) -> Client:
    """A client of an app whose engine serves revision 7 of the marketplace bundle."""
    await activate(engine, bundles, 7)
    return await aiohttp_client(make_app(engine, metrics=engine.metrics, max_body_bytes=4096))


@pytest.fixture
async def empty_client(aiohttp_client: MakeClient, engine: Engine) -> Client:
    """A client of an app whose engine has no bundle yet."""
    return await aiohttp_client(make_app(engine, metrics=engine.metrics))


async def post_json(client: Client, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON; return the status and the decoded answer."""
    async with client.post(path, json=body) as answer:
        return answer.status, await answer.json()


async def test_check_access_answers_with_result_and_decision_id(client: Client) -> None:
    """A decision comes back in OPA's envelope with the revision that made it and its id."""
    status, body = await post_json(client, CHECK_ACCESS, {"input": CHECK_ACCESS_INPUT})
    assert status == 200
    assert body["result"]["allowed"] is True
    assert body["result"]["bundle_revision"] == "7"
    assert body["decision_id"] == body["result"]["decision_id"]


async def test_allow_path_answers_a_boolean(client: Client) -> None:
    """`policyengine/allow` is the access check reduced to true/false."""
    denied = {**CHECK_ACCESS_INPUT, "user_id": "user-000"}
    _, allowed_body = await post_json(client, "/v1/data/policyengine/allow",
                                      {"input": CHECK_ACCESS_INPUT})
    _, denied_body = await post_json(client, "/v1/data/policyengine/allow", {"input": denied})
    assert allowed_body["result"] is True
    assert denied_body["result"] is False
    assert denied_body["decision_id"]


async def test_validate_service_lists_violations(client: Client) -> None:
    """A listing that breaks a policy is not compliant and names the policy."""
    listing = {"service_id": "svc-x", "environment": "production",
               "endpoint": {"url": "http://api.example.com"},
               "compliance": {"data_residency": ["US"]}}
    status, body = await post_json(client, "/v1/data/policyengine/validate_service",
                                   {"input": listing})
    assert status == 200
    assert body["result"]["compliant"] is False
    assert "https-required" in {v["policy_id"] for v in body["result"]["violations"]}


async def test_validate_consumption_answers(client: Client) -> None:
    """A consumer call is checked for access and answered with its limits."""
    call = {"consumer_id": "user-456", "service_id": "svc-1", "request_payload": "hello",
            "context": {"ip_address": "10.0.0.7"}}
    status, body = await post_json(client, "/v1/data/policyengine/validate_consumption",
                                   {"input": call})
    assert status == 200
    assert body["result"]["allowed"] is True


async def test_undefined_path_answers_200_without_result(client: Client) -> None:
    """As in OPA, a path no query lives at is undefined: 200 and no `result` key."""
    status, body = await post_json(client, "/v1/data/policyengine/nothing_here", {"input": {}})
    assert status == 200
    assert "result" not in body


async def test_a_path_with_extra_slashes_is_the_same_query(client: Client) -> None:
    """`policyengine/check_access/` decides as `policyengine/check_access` does."""
    status, body = await post_json(client, CHECK_ACCESS + "/", {"input": CHECK_ACCESS_INPUT})
    assert status == 200
    assert body["result"]["allowed"] is True


async def test_the_data_root_is_an_undefined_document(client: Client) -> None:
    """`POST /v1/data` exists, as in OPA; no query lives there, so there is no `result`."""
    status, body = await post_json(client, "/v1/data", {"input": CHECK_ACCESS_INPUT})
    assert status == 200
    assert body == {}


async def test_an_undefined_path_still_refuses_malformed_json(client: Client) -> None:
    """The body is read before the path is looked up: broken JSON is a 400 anywhere."""
    async with client.post("/v1/data/policyengine/nothing_here", data=b"{") as answer:
        assert answer.status == 400


async def test_every_decision_path_counts_under_one_route_label(client: Client) -> None:
    """`pdp_http_requests` labels all `/v1/data` requests `/v1/data/{path}`, however routed."""
    for path in (CHECK_ACCESS, CHECK_ACCESS + "/", "/v1/data/policyengine/allow", "/v1/data"):
        await post_json(client, path, {"input": CHECK_ACCESS_INPUT})
    async with client.get("/metrics") as answer:
        text = await answer.text()
    assert 'pdp_http_requests_total{code="200",route="/v1/data/{path}"} 4.0' in text


async def test_missing_input_key_answers_with_opa_warning(client: Client) -> None:
    """A request without `input` gets OPA's api_usage_warning instead of a decision."""
    status, body = await post_json(client, CHECK_ACCESS, {"inputs": CHECK_ACCESS_INPUT})
    assert status == 200
    assert body["warning"] == {"code": "api_usage_warning",
                               "message": "'input' key missing from the request"}
    assert "result" not in body


async def test_malformed_json_is_400_with_the_parse_error(client: Client) -> None:
    """Broken JSON is refused with the parser's message and position."""
    async with client.post(CHECK_ACCESS, data=b'{"input": {"user_id": }') as answer:
        body = await answer.json()
    assert answer.status == 400
    assert body["code"] == "invalid_json"
    assert "line 1 column 23" in body["message"]


async def test_wrong_type_is_400_naming_the_field(client: Client) -> None:
    """A field of the wrong type is refused with its path in the answer."""
    status, body = await post_json(client, CHECK_ACCESS,
                                   {"input": {**CHECK_ACCESS_INPUT, "user_id": 42}})
    assert status == 400
    assert body["code"] == "invalid_parameter"
    assert "user_id" in [error["field"] for error in body["errors"]]


async def test_input_that_is_not_an_object_is_400(client: Client) -> None:
    """`input` must be an object; a list is refused with a message, not evaluated."""
    status, body = await post_json(client, CHECK_ACCESS, {"input": [1, 2]})
    assert status == 400
    assert body["message"]


async def test_body_that_is_not_an_object_is_400(client: Client) -> None:
    """The envelope itself must be a JSON object."""
    status, body = await post_json(client, CHECK_ACCESS, [{"input": CHECK_ACCESS_INPUT}])
    assert status == 400
    assert "JSON object" in body["message"]


async def test_nan_is_not_json(client: Client) -> None:
    """Python's JSON extensions (NaN, Infinity) are refused like any other invalid JSON."""
    async with client.post(CHECK_ACCESS, data=b'{"input": {"user_id": NaN}}') as answer:
        assert answer.status == 400
        assert (await answer.json())["code"] == "invalid_json"


async def test_body_that_is_not_utf8_is_400(client: Client) -> None:
    """JSON on the wire is UTF-8; other bytes are refused with a message saying so."""
    async with client.post(CHECK_ACCESS, data='{"input": "é"}'.encode("latin-1")) as answer:
        assert answer.status == 400
        assert "UTF-8" in (await answer.json())["message"]


async def test_body_over_the_limit_is_413(client: Client) -> None:
    """A body larger than max_body_bytes is refused before it is parsed."""
    big = {"input": {**CHECK_ACCESS_INPUT, "padding": "x" * 5000}}
    status, body = await post_json(client, CHECK_ACCESS, big)
    assert status == 413
    assert body["code"] == "body_too_large"


async def test_chunked_body_over_the_limit_is_413(client: Client) -> None:
    """A body without Content-Length is cut off at the limit too, not read to the end."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"input": {"padding": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    async with client.post(CHECK_ACCESS, data=chunks()) as answer:
        assert answer.status == 413
        assert (await answer.json())["code"] == "body_too_large"


def nested(levels: int) -> dict[str, Any]:
    """An envelope whose JSON nests exactly ``levels`` objects deep (the envelope is one)."""
    document: dict[str, Any] = {}
    for _ in range(levels - 2):
        document = {"a": document}
    return {"input": document}


async def test_nesting_deeper_than_64_is_400(client: Client) -> None:
    """JSON nested more than 64 levels is refused (DESIGN §10)."""
    status, body = await post_json(client, "/v1/data/anything", nested(65))
    assert status == 400
    assert body["code"] == "nesting_too_deep"


async def test_nesting_of_64_levels_is_accepted(client: Client) -> None:
    """Exactly the limit is still read: the check does not refuse legitimate documents."""
    status, _ = await post_json(client, "/v1/data/anything", nested(64))
    assert status == 200


async def test_nesting_beyond_the_parser_recursion_limit_is_400(client: Client) -> None:
    """Even nesting deep enough to exhaust the parser's recursion is a clean 400."""
    body = b'{"input": ' + b"[" * 1900 + b"]" * 1900 + b"}"  # within the 4 KiB test limit
    async with client.post(CHECK_ACCESS, data=body) as answer:
        assert answer.status == 400
        assert (await answer.json())["code"] == "nesting_too_deep"


async def test_decisions_before_any_bundle_are_503(empty_client: Client) -> None:
    """With no bundle, decisions fail closed with 503 instead of guessing."""
    status, body = await post_json(empty_client, CHECK_ACCESS, {"input": CHECK_ACCESS_INPUT})
    assert status == 503
    assert body["code"] == "not_ready"


async def test_readiness_before_any_bundle_is_503(empty_client: Client) -> None:
    """Readiness is false until a bundle is active; liveness is already true."""
    async with empty_client.get("/health/ready") as ready:
        assert ready.status == 503
        assert (await ready.json())["state"] == "starting"
    async with empty_client.get("/health/live") as live:
        assert live.status == 200


async def test_opa_health_with_bundles_follows_activation(
    empty_client: Client, engine: Engine, bundles: BundleFactory
) -> None:
    """`GET /health?bundles` is unhealthy until the bundle is active, then 200."""
    async with empty_client.get("/health?bundles") as before:
        assert before.status == 503
    async with empty_client.get("/health") as plain:
        assert plain.status == 200
    await activate(engine, bundles, 1)
    async with empty_client.get("/health?bundles") as after:
        assert after.status == 200


async def test_policies_list_the_active_bundle(client: Client) -> None:
    """`GET /v1/policies` shows the five default policies of the active revision."""
    async with client.get("/v1/policies") as answer:
        body = await answer.json()
    assert answer.status == 200
    assert body["bundle_revision"] == "7"
    assert {p["id"] for p in body["result"]} == {
        "data-residency-required", "restricted-countries", "confidential-certification-required",
        "https-required", "enterprise-sla-minimum"}


async def test_one_policy_by_id(client: Client) -> None:
    """`GET /v1/policies/{id}` returns that policy document."""
    async with client.get("/v1/policies/https-required") as answer:
        body = await answer.json()
    assert answer.status == 200
    assert body["result"]["id"] == "https-required"
    assert body["result"]["severity"] == "critical"


async def test_unknown_policy_is_404(client: Client) -> None:
    """An id not in the active bundle is 404 with a message naming it."""
    async with client.get("/v1/policies/no-such-policy") as answer:
        body = await answer.json()
    assert answer.status == 404
    assert "no-such-policy" in body["message"]


async def test_policies_before_any_bundle_are_503(empty_client: Client) -> None:
    """There is nothing to list before a bundle is active."""
    async with empty_client.get("/v1/policies") as answer:
        assert answer.status == 503


async def test_status_shows_state_and_revision(client: Client) -> None:
    """`GET /v1/status` reports the health state, revision and sequence."""
    async with client.get("/v1/status") as answer:
        status = (await answer.json())["result"]
    assert status["state"] == "fresh"
    assert status["revision"] == "7"
    assert status["sequence"] == 7
    assert status["ready"] is True


async def test_metrics_are_prometheus_text(client: Client) -> None:
    """`GET /metrics` exposes decision and HTTP request counters in Prometheus text format."""
    await post_json(client, CHECK_ACCESS, {"input": CHECK_ACCESS_INPUT})
    async with client.get("/metrics") as answer:
        text = await answer.text()
    assert answer.content_type == "text/plain"
    assert 'policy_engine_validations_total{query="check_access",result="allow"} 1.0' in text
    assert 'pdp_http_requests_total{code="200",route="/v1/data/{path}"} 1.0' in text


async def test_explain_adds_the_explanation(client: Client) -> None:
    """`?explain=full` adds every evaluated policy and its outcome to the answer."""
    path = "/v1/data/policyengine/validate_service?explain=full"
    _, body = await post_json(client, path, {"input": {"service_id": "s"}})
    assert isinstance(body["explanation"], list)
    assert body["explanation"]


async def test_metrics_and_provenance_parameters(client: Client) -> None:
    """`?metrics` adds the handler time and `?provenance` the bundle revision, as in OPA."""
    _, body = await post_json(client, CHECK_ACCESS + "?metrics&provenance",
                              {"input": CHECK_ACCESS_INPUT})
    assert body["metrics"]["timer_server_handler_ns"] > 0
    assert body["provenance"]["bundles"]["main"]["revision"] == "7"


async def test_pretty_indents_the_answer(client: Client) -> None:
    """`?pretty` returns indented JSON."""
    async with client.post(CHECK_ACCESS + "?pretty=true",
                           json={"input": CHECK_ACCESS_INPUT}) as answer:
        text = await answer.text()
    assert text.startswith('{\n  "result"')
    assert json.loads(text)["result"]["allowed"] is True


async def test_sync_without_a_source_is_409(client: Client) -> None:
    """`POST /v1/bundles/sync` says so when there is no source to fetch from."""
    async with client.post("/v1/bundles/sync") as answer:
        assert answer.status == 409
        assert (await answer.json())["code"] == "not_supported"


async def test_unknown_route_is_json_404(client: Client) -> None:
    """Unknown paths get a JSON error like every other failure."""
    async with client.get("/v2/whatever") as answer:
        assert answer.status == 404
        assert (await answer.json())["code"] == "resource_not_found"


async def test_wrong_method_is_json_405_with_allow(client: Client) -> None:
    """A GET on a POST-only path is 405 and says which method to use."""
    async with client.get(CHECK_ACCESS) as answer:
        assert answer.status == 405
        assert answer.headers["Allow"] == "POST"
        assert (await answer.json())["code"] == "method_not_allowed"


async def test_body_that_claims_gzip_but_is_not_is_400(client: Client) -> None:
    """A body that does not match its Content-Encoding is the client's error, named as such."""
    async with client.post(CHECK_ACCESS, data=b"garbage",
                           headers={"Content-Encoding": "gzip"}) as answer:
        body = await answer.json()
    assert answer.status == 400
    assert body["message"] == ("cannot read the request body: "
                               "Can not decode content-encoding: gzip")


@pytest.fixture
async def sync_client(aiohttp_client: MakeClient, engine: Engine) -> tuple[Client, list[int]]:
    """A client of an app with a bundle source; the list counts the syncs it was asked for."""
    requested: list[int] = []
    app = make_app(engine, metrics=engine.metrics, bundle_sync=lambda: requested.append(1))
    return await aiohttp_client(app), requested


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8181", "localhost.",
                                  "127.0.0.2", "::1", "localhost:evil"])
async def test_a_foreign_host_is_refused_on_a_loopback_bind(client: Client, host: str) -> None:
    """A page whose own name was rebound to 127.0.0.1 cannot read the loopback API."""
    async with client.get("/v1/policies", headers={"Host": host}) as answer:
        body = await answer.json()
    assert answer.status == 403
    assert body["code"] == "forbidden"
    assert "Host header must be localhost, 127.0.0.1 or [::1]" in body["message"]


@pytest.mark.parametrize("host", ["localhost", "LocalHost:8181", "127.0.0.1", "127.0.0.1:1",
                                  "[::1]", "[::1]:8181"])
async def test_loopback_hosts_with_any_port_are_served(client: Client, host: str) -> None:
    """Clients calling the sidecar by a loopback name, with or without a port, are served."""
    async with client.get("/v1/policies", headers={"Host": host}) as answer:
        assert answer.status == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost.evil.example",
                                    "file://", "http://127.0.0.1.evil.example:80"])
async def test_a_cross_site_post_is_refused(
    sync_client: tuple[Client, list[int]], origin: str
) -> None:
    """A foreign page's simple POST cannot make the sidecar download its bundle."""
    client, requested = sync_client
    async with client.post("/v1/bundles/sync", data="x", headers={
            "Origin": origin, "Content-Type": "text/plain"}) as answer:
        body = await answer.json()
    assert answer.status == 403
    assert "Origin header" in body["message"]
    assert requested == []


@pytest.mark.parametrize("origin", [None, "http://localhost:3000", "https://127.0.0.1",
                                    "http://[::1]:8181"])
async def test_requests_without_or_from_a_loopback_origin_are_served(
    sync_client: tuple[Client, list[int]], origin: str | None
) -> None:
    """curl, the app and pages served from localhost itself keep working."""
    client, requested = sync_client
    headers = {} if origin is None else {"Origin": origin}
    async with client.post("/v1/bundles/sync", headers=headers) as answer:
        assert answer.status == 202
    assert requested == [1]


async def test_a_non_loopback_bind_accepts_any_host(
    aiohttp_client: MakeClient, engine: Engine, bundles: BundleFactory
) -> None:
    """An operator who binds 0.0.0.0 chose to be reached under other names."""
    await activate(engine, bundles, 7)
    client = await aiohttp_client(make_app(engine, metrics=engine.metrics, listen_host="0.0.0.0"))
    async with client.get("/v1/policies", headers={
            "Host": "pdp.internal:8181", "Origin": "http://app.internal"}) as answer:
        assert answer.status == 200
