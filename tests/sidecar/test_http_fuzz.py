"""Property: whatever a client sends to the decision endpoints, the answer is never a 5xx."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_process_support import CHECK_ACCESS_INPUT, BundleFactory, activate

from pdp.runtime import Engine
from pdp.sidecar.http_app import DATA_PATHS, make_app

Client = TestClient[web.Request, web.Application]

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)

# Inputs shaped like the real ones, with any field replaced by any JSON value: these reach the
# core's schema checks and evaluation rather than stopping at "not an object".
NEAR_MISSES = st.builds(
    lambda key, value: {**CHECK_ACCESS_INPUT, key: value},
    st.sampled_from([*CHECK_ACCESS_INPUT, "request_payload", "endpoint", "compliance", "x"]),
    JSON_VALUES,
)


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]], engine: Engine, bundles: BundleFactory
) -> Client:
    """A client of an app serving the marketplace bundle."""
    await activate(engine, bundles, 1)
    return await aiohttp_client(make_app(engine, metrics=engine.metrics))


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(path=st.sampled_from(sorted(DATA_PATHS)), value=JSON_VALUES | NEAR_MISSES)
async def test_any_json_input_gets_200_or_400(client: Client, path: str, value: Any) -> None:
    """Any JSON `input` is decided or refused with 400, never a server error."""
    async with client.post(f"/v1/data/{path}", json={"input": value}) as answer:
        assert answer.status in {200, 400}, await answer.text()
        assert answer.content_type == "application/json"


@FUZZ
@given(body=st.binary(max_size=200))
async def test_any_bytes_get_200_or_400(client: Client, body: bytes) -> None:
    """Arbitrary bytes as a body are refused cleanly (or, if they are JSON, answered)."""
    async with client.post("/v1/data/policyengine/check_access", data=body) as answer:
        assert answer.status in {200, 400}, await answer.text()
