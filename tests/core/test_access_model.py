"""The access model (DESIGN §4.3): roles from bundle data, wildcards, access_control policies."""

from __future__ import annotations

from typing import Any

import pytest
from core_kit import DATA, compile_set, decide, policy, violated

NO_POLICIES = compile_set()


def access(user: str, service: str = "svc-public", action: str = "read",
           policy_set: Any = NO_POLICIES, **context: Any) -> dict[str, Any]:
    """Ask check_access whether ``user`` may ``action`` on ``service``."""
    request: dict[str, Any] = {"user_id": user, "service_id": service, "action": action}
    if context:
        request["context"] = context
    return decide(policy_set, "check_access", request)


@pytest.mark.parametrize(("user", "action", "allowed"), [
    ("vera", "read", True),
    ("vera", "consume", False),
    ("carl", "consume", True),
    ("paula", "publish", True),
    ("paula", "delete", False),
    ("ada", "delete", True),     # service.* covers every service action
    ("rob", "anything", True),   # * covers everything
    ("nobody", "read", False),   # a user without roles holds nothing
])
def test_permissions_come_from_the_users_roles(user: str, action: str, allowed: bool) -> None:
    """``service.<action>`` is granted by a role's exact permission or a wildcard."""
    decision = access(user, action=action)
    assert decision["allowed"] is allowed
    assert decision["required_permissions"] == [f"service.{action}"]
    assert decision["missing_permissions"] == ([] if allowed else [f"service.{action}"])


def test_an_unknown_user_is_denied_with_an_actionable_reason() -> None:
    """Default deny: a user missing from data.users has no roles, and the reason says so."""
    decision = access("stranger")
    assert decision["allowed"] is False
    assert "unknown" in decision["reason"] and "data.users" in decision["reason"]


def test_roles_given_by_the_caller_are_ignored() -> None:
    """Roles come only from bundle data, never from the request."""
    decision = access("stranger", roles="admin")
    assert decision["allowed"] is False


def test_a_missing_permission_reason_names_the_roles_and_the_fix() -> None:
    """The reason names the user's roles, the missing permission and how to grant it."""
    reason = access("vera", action="publish")["reason"]
    assert "viewer" in reason and "service.publish" in reason and "service.*" in reason


def test_an_allowed_answer_has_the_origin_shape() -> None:
    """check_access answers allowed, reason, permission lists, violations and ids."""
    decision = access("carl", action="consume")
    assert decision == {
        "allowed": True,
        "reason": "allowed: user 'carl' holds service.consume on 'svc-public'",
        "required_permissions": ["service.consume"],
        "missing_permissions": [],
        "violations": [],
        "warnings": [],
        "decision_id": "dec-1",
        "bundle_revision": "rev-1",
    }


@pytest.mark.parametrize("request_", [
    {}, {"user_id": "carl"}, {"user_id": 5, "service_id": "s", "action": "read"},
    {"user_id": "carl", "service_id": "s", "action": ""},
])
def test_a_malformed_request_is_denied_not_raised(request_: dict[str, Any]) -> None:
    """Evaluation never raises: a request missing its ids is a denial naming the field."""
    decision = decide(NO_POLICIES, "check_access", request_)
    assert decision["allowed"] is False
    assert "must be a non-empty string" in decision["reason"]


def test_a_blocked_user_is_denied_despite_its_roles() -> None:
    """A user in blocked_user_ids is denied even with the permission."""
    policy_set = compile_set(policy("access_control", {"blocked_user_ids": ["carl"]}))
    decision = access("carl", action="consume", policy_set=policy_set)
    assert decision["allowed"] is False
    assert violated(decision) == {"p-access-control"}
    assert decision["missing_permissions"] == []
    assert "blocked" in decision["reason"]
    assert access("ada", policy_set=policy_set)["allowed"] is True


def test_allowed_roles_admit_only_holders() -> None:
    """With allowed_user_roles set, a user holding none of them is denied."""
    policy_set = compile_set(policy("access_control", {"allowed_user_roles": ["admin", "root"]}))
    assert access("ada", policy_set=policy_set)["allowed"] is True
    decision = access("vera", policy_set=policy_set)
    assert decision["allowed"] is False
    assert decision["violations"][0]["field"] == "user.roles"


@pytest.mark.parametrize(("ip", "allowed"), [
    ("10.1.2.3", True),
    ("192.168.0.9", False),
    ("2001:db8:1::7", True),
    ("2001:db9::1", False),
    ("not-an-ip", False),
    (None, False),
])
def test_ip_ranges_admit_only_addresses_inside_them(ip: str | None, allowed: bool) -> None:
    """allowed_ip_ranges (IPv4 and IPv6) need context.ip_address inside one of them."""
    policy_set = compile_set(policy("access_control",
                                    {"allowed_ip_ranges": ["10.0.0.0/8", "2001:db8::/32"]}))
    context = {} if ip is None else {"ip_address": ip}
    assert access("vera", policy_set=policy_set, **context)["allowed"] is allowed


@pytest.mark.parametrize(("user", "service", "allowed"), [
    ("carl", "svc-public", True),      # approved for this service
    ("carl", "svc-internal", False),   # approved for another one only
    ("ada", "svc-secret", True),       # "*" approves every service
    ("vera", "svc-public", False),     # no approvals at all
])
def test_approvals_are_required_when_asked(user: str, service: str, allowed: bool) -> None:
    """require_approval needs the service (or "*") in data.approvals[user]."""
    policy_set = compile_set(policy("access_control", {"require_approval": True}))
    assert access(user, service, policy_set=policy_set)["allowed"] is allowed


def test_a_warn_policy_warns_but_does_not_deny() -> None:
    """A warn violation is returned under warnings and never fails the decision."""
    policy_set = compile_set(policy("access_control", {"blocked_user_ids": ["carl"]},
                                    enforcement="warn"))
    decision = access("carl", policy_set=policy_set)
    assert decision["allowed"] is True
    assert [w["policy_id"] for w in decision["warnings"]] == ["p-access-control"]
    assert decision["violations"] == []


def test_a_dryrun_policy_is_evaluated_but_invisible_in_the_answer() -> None:
    """A dryrun violation goes to the shadow ``dryrun`` list only."""
    policy_set = compile_set(policy("access_control", {"blocked_user_ids": ["carl"]},
                                    enforcement="dryrun"))
    decision = access("carl", policy_set=policy_set)
    assert decision["allowed"] is True
    assert decision["violations"] == [] and decision["warnings"] == []
    assert [d["policy_id"] for d in decision["dryrun"]] == ["p-access-control"]


def test_when_sees_the_request_enriched_with_user_and_service() -> None:
    """Conditions can read ``user.*`` and ``service.*`` from bundle data."""
    policy_set = compile_set(policy(
        "access_control", {"blocked_user_ids": ["carl"]},
        when={"all": [{"field": "service.level", "op": "eq", "value": "restricted"},
                      {"field": "user.attributes.tenant", "op": "eq", "value": "acme"}]}))
    assert access("carl", "svc-public", policy_set=policy_set)["allowed"] is True
    decision = access("carl", "svc-secret", policy_set=policy_set)
    assert violated(decision) == {"p-access-control"}


def test_a_custom_check_access_policy_can_deny() -> None:
    """A custom policy with query check_access joins the access decision."""
    policy_set = compile_set(policy("custom", {
        "violation_if": {"field": "service.visibility", "op": "eq", "value": "private"},
        "field": "service.visibility", "query": "check_access"}))
    assert access("ada", "svc-public", policy_set=policy_set)["allowed"] is True
    decision = access("ada", "svc-secret", policy_set=policy_set)
    assert decision["allowed"] is False
    assert "private" in decision["violations"][0]["actual_value"]


def test_listing_policies_do_not_affect_access() -> None:
    """Policies of the listing types are not part of check_access."""
    policy_set = compile_set(policy("security", {"require_https": True}))
    assert access("vera", policy_set=policy_set)["allowed"] is True


def test_users_data_is_read_from_the_bundle_at_compile_time() -> None:
    """Permissions reflect the data the set was compiled with, not later edits of the dict."""
    data: dict[str, Any] = {"roles": dict(DATA["roles"]), "users": {"u": {"roles": ["viewer"]}}}
    policy_set = compile_set(data=data)
    data["users"]["u"]["roles"] = ["admin"]
    assert access("u", action="publish", policy_set=policy_set)["allowed"] is False


def test_an_internal_error_in_an_access_policy_denies() -> None:
    """A broken access_control policy fails closed: the request is denied, with the reason."""
    policy_set = compile_set(policy("access_control", {"blocked_user_ids": ["mallory"]}))

    def explode(_subject: Any) -> None:
        raise KeyError("gone")

    policy_set._compiled.access_policies[0].check = explode
    decision = access("ada", policy_set=policy_set)
    assert decision["allowed"] is False
    assert "internal error" in decision["reason"]
