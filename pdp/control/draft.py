"""The draft: the editable, unpublished policies, data documents and bundle tests.

Every operation checks the caller's permission first, validates its input with the core before it
touches the database, and commits the change together with its history and audit rows — so a
refused request leaves no trace, and an accepted one leaves exactly one audit row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from pdp.control import audit
from pdp.control.auth import Permission, Principal
from pdp.control.database import check_storable
from pdp.control.document_store import DocumentStore, StoredDocument, nest_documents
from pdp.control.errors import NotFoundError, RequestError
from pdp.control.listing import PolicyQuery
from pdp.control.policy_store import PolicyRecord, PolicyStore, PolicyVersion
from pdp.core import (
    FieldError,
    PolicyDocument,
    PolicySet,
    PolicyValidationError,
    UnknownQueryError,
    compile_policy_set,
    parse_input,
    parse_policy,
    parse_tests,
)
from pdp.core import InputValidationError as CoreInputError

Clock = Callable[[], float]


def policy_spec(document: PolicyDocument) -> dict[str, Any]:
    """The stored JSON form of a validated policy document."""
    spec: dict[str, Any] = document.model_dump(mode="json", by_alias=True, exclude_none=True)
    return spec


def validate_policy(raw: object, *, data: dict[str, Any]) -> PolicyDocument:
    """Parse and compile one policy; RequestError naming each bad field if it is invalid."""
    check_storable(raw, what="the policy")
    policy_id = raw.get("id") if isinstance(raw, dict) else None
    try:
        document = parse_policy(raw, source=f"policy {policy_id!r}" if policy_id else "policy")
        compile_policy_set([document], data, revision="validate")
    except PolicyValidationError as exc:
        raise RequestError(f"invalid {exc}", exc.errors) from None
    return document


def check_data(data: dict[str, Any]) -> None:
    """RequestError naming each bad field if the core would refuse `data` as bundle data."""
    try:
        compile_policy_set((), data, revision="validate")
    except PolicyValidationError as exc:
        raise RequestError(f"invalid {exc}", exc.errors) from None


def parse_decision_input(query: str, raw_input: object) -> dict[str, Any]:
    """The core's checked input for `query`; RequestError / NotFoundError when it is refused."""
    try:
        return parse_input(query, raw_input)
    except CoreInputError as exc:
        raise RequestError(str(exc), [FieldError(f"input.{e.path}".rstrip("."), e.message)
                                      for e in exc.errors]) from None
    except UnknownQueryError as exc:
        raise NotFoundError(str(exc)) from None


class Draft:
    """Operations on the unpublished policy set, each authorised, validated and audited."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Clock) -> None:
        self._pool = pool
        self._clock = clock
        self.policies = PolicyStore(pool)
        self.data = DocumentStore(pool, "data_documents", nested=True)
        self.tests = DocumentStore(pool, "bundle_tests", nested=False)

    # -- policies ----------------------------------------------------------------------------

    async def list_policies(self, actor: Principal,
                            query: PolicyQuery) -> tuple[list[PolicyRecord], int]:
        """A page of live policies and the total count."""
        actor.require(Permission.READ)
        return await self.policies.find(query)

    async def get_policy(self, actor: Principal, policy_id: str) -> PolicyRecord:
        """One live policy."""
        actor.require(Permission.READ)
        return await self.policies.get(policy_id)

    async def policy_history(self, actor: Principal, policy_id: str) -> list[PolicyVersion]:
        """Every version of a policy, newest first."""
        actor.require(Permission.READ)
        return await self.policies.history(policy_id)

    async def validate_policy(self, actor: Principal, raw: object) -> PolicyDocument:
        """Validate a policy without saving it."""
        actor.require(Permission.EVALUATE)
        return validate_policy(raw, data=await self._current_data())

    async def create_policy(self, actor: Principal, raw: object) -> PolicyRecord:
        """Create a policy at version 1 (any ``version`` in `raw` is ignored)."""
        actor.require(Permission.EDIT)
        document = validate_policy(raw, data=await self._current_data())
        async with self._pool.acquire() as conn, conn.transaction():
            record = await self.policies.create(conn, policy_spec(document), actor.actor)
            await audit.record(conn, actor=actor.actor, action="policy.create",
                               target=record.id, details={"version": record.version})
        return record

    async def update_policy(self, actor: Principal, policy_id: str, raw: object,
                            expected_version: int | None) -> PolicyRecord:
        """Replace a policy; a stale `expected_version` raises VersionConflictError."""
        actor.require(Permission.EDIT)
        if isinstance(raw, dict):
            if raw.get("id", policy_id) != policy_id:
                message = f"the body's id {raw.get('id')!r} differs from the URL's {policy_id!r}"
                raise RequestError(message, [FieldError("id", message)])
            raw = {**raw, "id": policy_id}
        document = validate_policy(raw, data=await self._current_data())
        async with self._pool.acquire() as conn, conn.transaction():
            record, changed = await self.policies.update(
                conn, policy_spec(document), expected_version, actor.actor)
            if changed:
                await audit.record(conn, actor=actor.actor, action="policy.update",
                                   target=record.id, details={"version": record.version})
        return record

    async def delete_policy(self, actor: Principal, policy_id: str,
                            expected_version: int | None) -> datetime:
        """Delete a policy (kept in history); return when."""
        actor.require(Permission.EDIT)
        async with self._pool.acquire() as conn, conn.transaction():
            deleted_at = await self.policies.delete(conn, policy_id, expected_version, actor.actor)
            await audit.record(conn, actor=actor.actor, action="policy.delete", target=policy_id)
        return deleted_at

    # -- data documents and bundle tests -----------------------------------------------------

    def _documents(self, kind: str) -> DocumentStore:
        return self.data if kind == "data" else self.tests

    async def list_documents(self, actor: Principal, kind: str) -> list[StoredDocument]:
        """Every data document (`kind` "data") or bundle test file (`kind` "tests")."""
        actor.require(Permission.READ)
        return await self._documents(kind).all()

    async def get_document(self, actor: Principal, kind: str, path: str) -> StoredDocument:
        """One data document or test file."""
        actor.require(Permission.READ)
        store = self._documents(kind)
        return await store.get(store.check_path(path))

    async def put_document(self, actor: Principal, kind: str, path: str, document: Any,
                           expected_version: int | None) -> StoredDocument:
        """Create or replace a data document or test file after validating it."""
        actor.require(Permission.EDIT)
        store = self._documents(kind)
        store.check_path(path)
        check_storable(document, what="the document")
        if kind == "tests":
            self._check_tests(path, document)
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await store.put(conn, path, document, expected_version, actor.actor)
            if kind == "data":
                # Checked as the bundle will hold it, inside the transaction: data the core
                # refuses would otherwise surface later as every policy edit's error.
                check_data(nest_documents(await store.all_documents(conn)))
            await audit.record(conn, actor=actor.actor, action=f"{kind}.put", target=path,
                               details={"version": stored.version})
        return stored

    async def delete_document(self, actor: Principal, kind: str, path: str,
                              expected_version: int | None = None) -> None:
        """Delete a data document or test file; a stale `expected_version` raises
        VersionConflictError."""
        actor.require(Permission.EDIT)
        store = self._documents(kind)
        store.check_path(path)
        async with self._pool.acquire() as conn, conn.transaction():
            await store.delete(conn, path, expected_version)
            if kind == "data":
                # What is left must still be data the core takes: deleting `roles` under users
                # holding them broke every later policy edit, evaluate and publish.
                try:
                    check_data(nest_documents(await store.all_documents(conn)))
                except RequestError as exc:
                    raise RequestError(f"cannot delete {path!r}, the rest would be {exc}",
                                       exc.errors) from None
            await audit.record(conn, actor=actor.actor, action=f"{kind}.delete", target=path)

    @staticmethod
    def _check_tests(path: str, document: Any) -> None:
        try:
            parse_tests(document, source=f"tests/{path}.json")
        except PolicyValidationError as exc:
            raise RequestError(f"invalid bundle test file: {exc}", exc.errors) from None

    # -- evaluation --------------------------------------------------------------------------

    async def evaluate(self, actor: Principal, query: str, raw_input: object, *,
                       explain: bool = False) -> dict[str, Any]:
        """Run `query` on `raw_input` against the draft, as if it were published now."""
        actor.require(Permission.EVALUATE)
        parsed = parse_decision_input(query, raw_input)
        policy_set = await self.compile()
        return policy_set.evaluate(query, parsed, now=self._clock(),
                                   decision_id=str(uuid.uuid4()), explain=explain)

    async def compile(self) -> PolicySet:
        """Compile the whole draft; RequestError if it does not compile as a set."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            specs = await self.policies.live_specs(conn)
            data = nest_documents(await self.data.all_documents(conn))
        try:
            documents = [parse_policy(spec, source=f"policy {spec.get('id')}") for spec in specs]
            return compile_policy_set(documents, data, revision="draft")
        except PolicyValidationError as exc:
            raise RequestError(f"the draft does not compile: {exc}", exc.errors) from None

    async def _current_data(self) -> dict[str, Any]:
        async with self._pool.acquire() as conn:
            return nest_documents(await self.data.all_documents(conn))
