"""Decisions through the engine: validated input, one snapshot, latency and metrics recorded."""

from __future__ import annotations

import itertools
import json
import uuid

import pytest
from prometheus_client import CollectorRegistry
from runtime_support import COMPLIANT_LISTING, EXAMPLES, EngineFactory, Signing, sample

from pdp.core import InputValidationError, UnknownQueryError
from pdp.runtime import BundleUpdate
from pdp.runtime.engine import DecisionIds


class SteppingClock:
    """A monotonic clock that advances by a fixed step at every reading."""

    def __init__(self, step: float) -> None:
        self._ticks = itertools.count()
        self._step = step

    def __call__(self) -> float:
        return next(self._ticks) * self._step


async def test_answer_carries_revision_and_injected_decision_id(
        make_engine: EngineFactory, signing: Signing) -> None:
    """Every answer names the bundle revision that made it and a decision id."""
    engine = make_engine(new_id=lambda: "decision-1")
    await engine.activate(BundleUpdate(signing.bundle(7), source="test"))
    answer = engine.decide("validate_service", COMPLIANT_LISTING)
    assert answer["compliant"] is True
    assert answer["bundle_revision"] == "r7"
    assert answer["policy_version"] == "r7"
    assert answer["decision_id"] == "decision-1"


async def test_validation_duration_comes_from_the_monotonic_clock(
        make_engine: EngineFactory, signing: Signing, registry: CollectorRegistry) -> None:
    """metadata.validation_duration_ms and the histogram are measured by the engine's clock."""
    engine = make_engine(monotonic=SteppingClock(0.003))
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    answer = engine.decide("validate_service", COMPLIANT_LISTING)
    assert answer["metadata"]["validation_duration_ms"] == 3.0
    assert sample(registry, "policy_engine_validation_duration_seconds_sum",
                  query="validate_service") == pytest.approx(0.003)


async def test_results_are_counted_by_query_and_outcome(
        make_engine: EngineFactory, signing: Signing, registry: CollectorRegistry) -> None:
    """policy_engine_validations_total counts allows and denies per query."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    engine.decide("validate_service", COMPLIANT_LISTING)
    breaking = json.loads((EXAMPLES / "listing-breaking-3-policies.json").read_text())
    engine.decide("validate_service", breaking)
    engine.decide("validate_service", breaking)
    assert sample(registry, "policy_engine_validations_total", query="validate_service",
                  result="allow") == 1
    assert sample(registry, "policy_engine_validations_total", query="validate_service",
                  result="deny") == 2


async def test_invalid_input_raises_the_core_error(make_engine: EngineFactory, signing: Signing,
                                                   registry: CollectorRegistry) -> None:
    """A wrongly typed field is refused with the field's path, and counted as invalid."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    with pytest.raises(InputValidationError) as refused:
        engine.decide("check_access", {"user_id": 5, "service_id": "svc-1", "action": "read"})
    assert any(error.path == "user_id" for error in refused.value.errors)
    assert sample(registry, "policy_engine_validations_total", query="check_access",
                  result="invalid") == 1


async def test_unknown_query_is_refused_without_a_new_label(
        make_engine: EngineFactory, signing: Signing, registry: CollectorRegistry) -> None:
    """An unknown query name is refused and counted under one fixed label."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    with pytest.raises(UnknownQueryError):
        engine.decide("drop_tables", {})
    assert sample(registry, "policy_engine_validations_total", query="<unknown>",
                  result="invalid") == 1
    assert sample(registry, "policy_engine_validations_total", query="drop_tables",
                  result="invalid") == 0


async def test_trusted_input_skips_the_schema_check(make_engine: EngineFactory,
                                                   signing: Signing) -> None:
    """A caller that vouches for its input (the gRPC shell) is decided without re-validation."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    unchecked = {**COMPLIANT_LISTING, "sla": {"availability": "99.99"}}  # a string: refused...
    with pytest.raises(InputValidationError):
        engine.decide("validate_service", unchecked)
    answer = engine.decide("validate_service", unchecked, trusted_input=True)  # ...unless trusted
    assert "compliant" in answer


async def test_trusted_input_that_is_not_an_object_is_still_checked(
        make_engine: EngineFactory, signing: Signing) -> None:
    """trusted_input never lets a non-object reach the core: it is refused as usual."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    with pytest.raises(InputValidationError):
        engine.decide("validate_service", ["not", "an", "object"], trusted_input=True)


async def test_explain_is_passed_to_the_core(make_engine: EngineFactory,
                                             signing: Signing) -> None:
    """explain=True returns the per-policy trace; without it there is none."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    assert "explain" in engine.decide("validate_service", COMPLIANT_LISTING, explain=True)
    assert "explain" not in engine.decide("validate_service", COMPLIANT_LISTING)



def test_decision_ids_are_unique_uuids() -> None:
    """Default decision ids parse as UUIDs and never repeat, across engines too."""
    first, second = DecisionIds(), DecisionIds()
    ids = [first() for _ in range(1000)] + [second() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_decision_ids_follow_the_injected_seed() -> None:
    """With the same seed the sequence is the same, so tests can predict ids."""
    assert DecisionIds(b"\x00" * 16)() == DecisionIds(b"\x00" * 16)()
