"""authorize_http (ext_authz): an HTTP request is matched to data.routes, then access-checked."""

from __future__ import annotations

from typing import Any

import pytest
from core_kit import compile_set, decide, policy

POLICY_SET = compile_set()


def authorize(method: str, path: str, user: str | None = "carl", **extra: Any) -> dict[str, Any]:
    """Ask authorize_http about one request, the user given as x-user-id."""
    policy_set = extra.pop("policy_set", POLICY_SET)
    request: dict[str, Any] = {"method": method, "path": path, **extra}
    if user is not None:
        request.setdefault("headers", {"x-user-id": user})
    return decide(policy_set, "authorize_http", request)


def test_a_route_maps_the_request_to_an_access_check() -> None:
    """The route's action and the path's service_id make the check_access input."""
    decision = authorize("GET", "/v1/services/svc-public")
    assert decision["allowed"] is True
    assert decision["required_permissions"] == ["service.read"]
    assert decision["route"] == "/v1/services/{service_id}"
    assert decision["http_status"] == 200


def test_the_route_action_decides_the_permission() -> None:
    """A viewer may GET a service but not POST to consume it."""
    assert authorize("GET", "/v1/services/svc-public", user="vera")["allowed"] is True
    decision = authorize("POST", "/v1/services/svc-public/consume", user="vera")
    assert decision["allowed"] is False
    assert decision["missing_permissions"] == ["service.consume"]
    assert decision["http_status"] == 403


@pytest.mark.parametrize("path", ["/v1/services/svc-public?verbose=1",
                                  "/v1/services/svc-public/"])
def test_query_strings_and_trailing_slashes_do_not_matter(path: str) -> None:
    """The query string is ignored and a trailing slash matches the same route."""
    assert authorize("get", path)["allowed"] is True


def test_a_fixed_service_route_and_a_method_wildcard() -> None:
    """A route may name its service_id, and ``*`` matches every method."""
    decision = authorize("DELETE", "/v1/admin", user="paula")
    assert decision["allowed"] is True
    assert decision["required_permissions"] == ["service.publish"]


def test_no_matching_route_is_a_denial() -> None:
    """Default deny: a request no route describes is refused with the reason."""
    decision = authorize("GET", "/v2/unknown")
    assert decision["allowed"] is False
    assert "no route" in decision["reason"] and decision["route"] is None


def test_a_request_without_user_is_unauthenticated() -> None:
    """No user_id and no x-user-id header: denied with status 401."""
    decision = authorize("GET", "/v1/services/svc-public", user=None)
    assert decision["allowed"] is False and decision["http_status"] == 401


def test_the_user_header_is_found_in_any_case_and_user_id_wins() -> None:
    """Header names are case-insensitive; an explicit user_id takes precedence."""
    assert authorize("GET", "/v1/services/svc-public", headers={"X-User-ID": "vera"},
                     user=None)["allowed"] is True
    decision = authorize("POST", "/v1/services/svc-public/consume", user_id="vera",
                         headers={"x-user-id": "carl"})
    assert decision["allowed"] is False


@pytest.mark.parametrize("request_", [{}, {"method": "GET"}, {"method": 1, "path": "/x"},
                                      {"method": "GET", "path": "relative"}])
def test_a_malformed_request_is_a_bad_request(request_: dict[str, Any]) -> None:
    """A request without a method and an absolute path is denied with status 400."""
    decision = decide(POLICY_SET, "authorize_http", request_)
    assert decision["allowed"] is False and decision["http_status"] == 400


def test_access_control_policies_apply_with_the_context_ip() -> None:
    """The request's context.ip_address reaches the access_control policies."""
    policy_set = compile_set(policy("access_control", {"allowed_ip_ranges": ["10.0.0.0/8"]}))
    inside = authorize("GET", "/v1/services/svc-public", policy_set=policy_set,
                       context={"ip_address": "10.0.0.1"})
    outside = authorize("GET", "/v1/services/svc-public", policy_set=policy_set,
                        context={"ip_address": "11.0.0.1"})
    assert (inside["allowed"], outside["allowed"]) == (True, False)


def test_a_route_with_another_method_does_not_match() -> None:
    """Methods must match (or the route says ``*``)."""
    decision = authorize("DELETE", "/v1/services/svc-public", user="ada")
    assert decision["allowed"] is False and "no route" in decision["reason"]


def test_an_overlong_path_is_a_bad_request() -> None:
    """Paths beyond 8 KiB are refused before matching."""
    decision = authorize("GET", "/v1/" + "x" * 9000)
    assert decision["http_status"] == 400 and "longer" in decision["reason"]
