"""Helpers for the core's tests: building policies, policy sets and decisions tersely."""

from __future__ import annotations

from typing import Any

from pdp.core import PolicySet, compile_policy_set, parse_policy

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DATA: dict[str, Any] = {
    "roles": {
        "viewer": ["service.read"],
        "consumer": ["service.read", "service.consume"],
        "publisher": ["service.read", "service.publish"],
        "admin": ["service.*"],
        "root": ["*"],
    },
    "users": {
        "vera": {"roles": ["viewer"]},
        "carl": {"roles": ["consumer"], "attributes": {"tenant": "acme"}},
        "paula": {"roles": ["publisher"]},
        "ada": {"roles": ["admin"]},
        "rob": {"roles": ["root"]},
        "nobody": {"roles": []},
    },
    "services": {
        "svc-public": {"owner": "p1", "level": "public", "visibility": "public"},
        "svc-internal": {"owner": "p1", "level": "internal"},
        "svc-secret": {"owner": "p2", "level": "restricted", "visibility": "private"},
    },
    "approvals": {"carl": ["svc-public"], "ada": ["*"]},
    "routes": [
        {"method": "GET", "path": "/v1/services/{service_id}", "action": "read"},
        {"method": "POST", "path": "/v1/services/{service_id}/consume", "action": "consume"},
        {"method": "*", "path": "/v1/admin", "action": "publish", "service_id": "svc-internal"},
    ],
}


def policy(type: str, rule: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A raw policy document of ``type`` with ``rule``; ``fields`` override the defaults."""
    doc: dict[str, Any] = {"id": fields.pop("id", "p-" + type.replace("_", "-")),
                           "name": f"{type} policy", "type": type, "severity": "high",
                           "rule": rule}
    doc.update(fields)
    return doc


def compile_set(*raw: dict[str, Any], data: dict[str, Any] | None = None,
                revision: str = "rev-1") -> PolicySet:
    """Parse and compile raw policy documents with ``data`` (DATA by default)."""
    return compile_policy_set([parse_policy(doc) for doc in raw],
                              DATA if data is None else data, revision=revision)


def decide(policy_set: PolicySet, query: str, input: Any, **kwargs: Any) -> dict[str, Any]:
    """Evaluate a query at ``NOW`` with a fixed decision id."""
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("decision_id", "dec-1")
    return policy_set.evaluate(query, input, **kwargs)


def violated(decision: dict[str, Any]) -> set[str]:
    """The ids of the policies a decision reports as (deny) violations."""
    return {v["policy_id"] for v in decision["violations"]}


class DictCounter:
    """A tiny fixed-window RateCounter (the injected boundary; the runtime has the real one)."""

    def __init__(self) -> None:
        self.hits: dict[tuple[str, int, int], int] = {}
        self.calls: list[tuple[str, int]] = []

    def hit(self, key: str, window_seconds: int, now: float) -> int:
        """Count one request in the window containing ``now``."""
        self.calls.append((key, window_seconds))
        slot = (key, window_seconds, int(now // window_seconds))
        self.hits[slot] = self.hits.get(slot, 0) + 1
        return self.hits[slot]
