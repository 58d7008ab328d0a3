"""Drive the Rego sources in this directory through regorus, the Rust Rego engine, from Python.

Two ways of calling regorus are measured and both are reported, so the comparison is with the
fastest one: the RVM (the policy compiled to a register VM program; input and output cross the
boundary as JSON text) and the tree-walking ``Engine`` (input converted from Python values by the
binding). Each call starts from the caller's Python dict and ends with a Python value the caller can
read, so converting the input (and, for the RVM, parsing the JSON answer) is part of the cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import regorus  # type: ignore[import-untyped]  # a Rust extension shipped without type stubs

HERE = Path(__file__).resolve().parent
VALIDATE_RULE = "data.marketplace.validate_service.result"
ACCESS_RULE = "data.marketplace.check_access.allow"


def rego_data(access_data: Mapping[str, Any], blocked_user_ids: Sequence[str]) -> dict[str, Any]:
    """Bundle data as check_access.rego reads it: the block list becomes a keyed object.

    A keyed object is the idiomatic (constant-time) membership test in Rego; it is built once at
    load time, like pdp's own compiled policy, so it is not billed per request.
    """
    return {"roles": access_data["roles"],
            "users": {uid: {"roles": user["roles"]} for uid, user in access_data["users"].items()},
            "blocked_users": dict.fromkeys(blocked_user_ids, True)}


class RegoVmContender:
    """Rego through regorus's RVM: compiled programs, JSON text in and out."""

    name = "rego (regorus RVM)"

    def __init__(self, access_data: Mapping[str, Any], blocked_user_ids: Sequence[str]) -> None:
        self._validate_vm = _load_vm("validate_service.rego", VALIDATE_RULE, {})
        self._access_vm = _load_vm("check_access.rego", ACCESS_RULE,
                                   rego_data(access_data, blocked_user_ids))
        self.conversions: Mapping[str, Callable[[Mapping[str, Any]], object]] = {
            "validate_service": json.dumps, "check_access": json.dumps}

    def validate_service(self, listing: Mapping[str, Any]) -> object:
        """The decision object of validate_service.rego for one listing."""
        self._validate_vm.set_input_json(json.dumps(listing))
        return json.loads(self._validate_vm.execute())

    def check_access(self, request: Mapping[str, Any]) -> object:
        """The boolean ``allow`` of check_access.rego for one request."""
        self._access_vm.set_input_json(json.dumps(request))
        return json.loads(self._access_vm.execute())

    @staticmethod
    def violations(decision: object) -> frozenset[str]:
        """Policy ids of the violations in a validate_service decision."""
        return _violations(decision)

    @staticmethod
    def allowed(decision: object) -> bool:
        """Whether a check_access decision allows the request."""
        return decision is True


class RegoEngineContender:
    """Rego through regorus's tree-walking Engine: Python values in and out."""

    name = "rego (regorus Engine)"

    def __init__(self, access_data: Mapping[str, Any], blocked_user_ids: Sequence[str]) -> None:
        self._validate_engine = regorus.Engine()
        self._validate_engine.add_policy_from_file(str(HERE / "validate_service.rego"))
        self._access_engine = regorus.Engine()
        self._access_engine.add_policy_from_file(str(HERE / "check_access.rego"))
        self._access_engine.add_data(rego_data(access_data, blocked_user_ids))
        # Converting a dict to a Rego value happens inside set_input; time it on a spare engine.
        spare = regorus.Engine()
        self.conversions: Mapping[str, Callable[[Mapping[str, Any]], object]] = {
            "validate_service": spare.set_input, "check_access": spare.set_input}

    def validate_service(self, listing: Mapping[str, Any]) -> object:
        """The decision object of validate_service.rego for one listing."""
        self._validate_engine.set_input(listing)
        return self._validate_engine.eval_rule(VALIDATE_RULE)

    def check_access(self, request: Mapping[str, Any]) -> object:
        """The boolean ``allow`` of check_access.rego for one request."""
        self._access_engine.set_input(request)
        return self._access_engine.eval_rule(ACCESS_RULE)

    @staticmethod
    def violations(decision: object) -> frozenset[str]:
        """Policy ids of the violations in a validate_service decision."""
        return _violations(decision)

    @staticmethod
    def allowed(decision: object) -> bool:
        """Whether a check_access decision allows the request."""
        return decision is True


def _load_vm(source: str, entry_point: str, data: Mapping[str, Any]) -> Any:
    program = regorus.Program.compile_from_modules(
        "{}", [(source, (HERE / source).read_text())], [entry_point])
    vm = regorus.Rvm()
    vm.load_program(program)
    vm.set_data_json(json.dumps(data))
    return vm


def _violations(decision: object) -> frozenset[str]:
    if not isinstance(decision, dict) or not isinstance(decision.get("violations"), list):
        raise ValueError(f"validate_service.rego gave an unexpected result: {decision!r}")
    return frozenset(decision["violations"])
