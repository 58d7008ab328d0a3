"""Drive the Cedar sources in this directory through cedarpy (the Rust Cedar engine) from Python.

Cedar decides permit/forbid on (principal, action, resource, context) against an entity store, so
each call converts the caller's dict into a Cedar request. For validate_service the listing becomes
the context, normalised the way the Cedar language needs (see validate_service.cedar); for
check_access the user and service become entity references into a store parsed once at load time
(users whose parents are their roles, and the blocked users' group). Policy sets and entity stores
are pre-parsed handles, the fastest way cedarpy offers; the request conversion is billed per call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cedarpy

HERE = Path(__file__).resolve().parent
LISTING_REQUEST = {"principal": {"type": "Provider", "id": "bench"},
                   "action": {"type": "Action", "id": "publish"},
                   "resource": {"type": "Listing", "id": "bench"}}


def listing_request(listing: Mapping[str, Any]) -> dict[str, Any]:
    """A validate_service listing as a Cedar request whose context validate_service.cedar reads."""
    compliance = listing.get("compliance") or {}
    endpoint = listing.get("endpoint") or {}
    sla = listing.get("sla") or {}
    context: dict[str, Any] = {
        "environment": str(listing.get("environment", "")),
        "residency": [str(c).upper() for c in compliance.get("data_residency") or ()],
        "level": str(compliance.get("level", "")).lower(),
        "certifications": [str(c).upper().replace(" ", "").replace("-", "")
                           for c in compliance.get("certifications") or ()],
        "url": str(endpoint.get("url", "")).lower(),
        "support_level": str(sla.get("support_level", "")),
    }
    if "availability" in sla:
        # Cedar has no floats; its decimal type takes at most four fractional digits.
        context["availability"] = {"__extn": {"fn": "decimal",
                                              "arg": f"{float(sla['availability']):.4f}"}}
    return {**LISTING_REQUEST, "context": context}


def access_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """A check_access input as a Cedar request on the entity store."""
    return {"principal": {"type": "User", "id": request["user_id"]},
            "action": {"type": "Action", "id": request["action"]},
            "resource": {"type": "Service", "id": request["service_id"]},
            "context": {}}


def access_entities(access_data: Mapping[str, Any], blocked_user_ids: Sequence[str]) -> str:
    """The bundle data as Cedar entities JSON: roles and the blocked group as parents of users."""
    blocked = set(blocked_user_ids)
    entities: list[dict[str, Any]] = [
        {"uid": {"type": "Role", "id": role}, "attrs": {}, "parents": []}
        for role in access_data["roles"]]
    entities.append({"uid": {"type": "Group", "id": "blocked"}, "attrs": {}, "parents": []})
    for uid, user in access_data["users"].items():
        parents = [{"type": "Role", "id": role} for role in user["roles"]]
        if uid in blocked:
            parents.append({"type": "Group", "id": "blocked"})
        entities.append({"uid": {"type": "User", "id": uid}, "attrs": {}, "parents": parents})
    for sid, service in access_data["services"].items():
        entities.append({"uid": {"type": "Service", "id": sid},
                         "attrs": {"owner": service["owner"], "level": service["level"]},
                         "parents": []})
    return json.dumps(entities)


class CedarContender:
    """Cedar through cedarpy's public ``is_authorized`` with pre-parsed handles."""

    name = "cedar (cedarpy)"

    def __init__(self, access_data: Mapping[str, Any], blocked_user_ids: Sequence[str]) -> None:
        self._listing_policies = cedarpy.PolicySet.from_str(
            (HERE / "validate_service.cedar").read_text())
        self._no_entities = cedarpy.Entities.from_json_str("[]")
        self._access_policies = cedarpy.PolicySet.from_str(
            (HERE / "check_access.cedar").read_text())
        self._access_entities = cedarpy.Entities.from_json_str(
            access_entities(access_data, blocked_user_ids))
        self.conversions: Mapping[str, Callable[[Mapping[str, Any]], object]] = {
            "validate_service": listing_request, "check_access": access_request}

    def validate_service(self, listing: Mapping[str, Any]) -> object:
        """The Cedar answer for a listing: Deny, with the forbids that matched as reasons."""
        return cedarpy.is_authorized(listing_request(listing), self._listing_policies,
                                     self._no_entities)

    def check_access(self, request: Mapping[str, Any]) -> object:
        """The Cedar answer for an access request."""
        return cedarpy.is_authorized(access_request(request), self._access_policies,
                                     self._access_entities)

    @staticmethod
    def violations(decision: object) -> frozenset[str]:
        """Policy ids (@id annotations) of the forbid policies that matched."""
        result = _checked(decision)
        names = result.diagnostics.id_annotations_by_reason
        return frozenset(names[r] for r in result.diagnostics.reasons) - {"baseline"}

    @staticmethod
    def allowed(decision: object) -> bool:
        """Whether the Cedar answer is Allow."""
        return _checked(decision).allowed


def _checked(decision: object) -> cedarpy.AuthzResult:
    if not isinstance(decision, cedarpy.AuthzResult):
        raise TypeError(f"expected a cedarpy.AuthzResult, got {decision!r}")
    if decision.diagnostics.errors:
        raise ValueError(f"Cedar evaluation errors: {decision.diagnostics.errors}")
    return decision
