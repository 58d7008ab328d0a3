"""Health states (DESIGN §7.3): starting, fresh, last_known_good, stale and each stale_action."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from runtime_support import COMPLIANT_LISTING, EngineFactory, FakeClock, Signing, sample

from pdp.runtime import BundleUnchanged, BundleUpdate, NotReadyError, SourceError

LISTING_WITH_HTTP = {**COMPLIANT_LISTING,
                     "endpoint": {**COMPLIANT_LISTING["endpoint"], "url": "http://plain.example"}}


async def test_starting_fails_closed(make_engine: EngineFactory,
                                     registry: CollectorRegistry) -> None:
    """Before any bundle, decisions are refused as not ready and readiness is false."""
    engine = make_engine()
    assert engine.status()["state"] == "starting"
    assert engine.ready() is False
    with pytest.raises(NotReadyError) as refused:
        engine.decide("validate_service", COMPLIANT_LISTING)
    assert refused.value.state == "starting"
    assert sample(registry, "policy_engine_validations_total", query="validate_service",
                  result="unavailable") == 1


async def test_activation_makes_it_fresh_and_ready(make_engine: EngineFactory,
                                                   signing: Signing) -> None:
    """A bundle from a source makes the sidecar fresh and ready."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    assert engine.status()["state"] == "fresh"
    assert engine.ready() is True


async def test_source_failure_makes_it_last_known_good(make_engine: EngineFactory,
                                                       signing: Signing) -> None:
    """When the source fails after a good bundle, that bundle keeps serving as last-known-good."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    await engine.activator.handle(SourceError("connection refused", reason="unreachable",
                                              source="test"))
    status = engine.status()
    assert status["state"] == "last_known_good"
    assert status["ready"] is True
    assert status["last_error"]["reason"] == "unreachable"
    assert engine.decide("validate_service", COMPLIANT_LISTING)["bundle_revision"] == "r1"


async def test_confirmation_after_failure_makes_it_fresh_again(
        make_engine: EngineFactory, signing: Signing) -> None:
    """A 304 from the source after a failure means the bundle is current again."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    await engine.activator.handle(SourceError("timeout", reason="unreachable", source="test"))
    await engine.activator.handle(BundleUnchanged(source="test"))
    assert engine.status()["state"] == "fresh"


async def test_a_304_for_a_refused_bundle_does_not_confirm_the_active_one(
        make_engine: EngineFactory, signing: Signing, clock: FakeClock) -> None:
    """An HTTP source's ETag is the last bundle it delivered; if that one was refused, its 304s
    are about the refused bundle: the active one stays last-known-good and ages to stale."""
    engine = make_engine(max_bundle_age_seconds=60)
    await engine.activator.handle(BundleUpdate(signing.bundle(1), etag='"a"', source="test"))
    await engine.activator.handle(BundleUpdate(b"not a bundle", etag='"b"', source="test"))
    clock.advance(61)
    await engine.activator.handle(BundleUnchanged(etag='"b"', source="test"))
    assert engine.status()["state"] == "stale"
    assert engine.active is not None and engine.active.etag == '"a"'
    await engine.activator.handle(BundleUnchanged(etag='"a"', source="test"))
    assert engine.status()["state"] == "fresh"


@pytest.mark.parametrize("action", ["serve", "fail_closed", "fail_open"])
async def test_max_bundle_age_makes_it_stale(make_engine: EngineFactory, signing: Signing,
                                             clock: FakeClock, action: str) -> None:
    """A bundle not confirmed within max_bundle_age is stale, whatever the stale action."""
    engine = make_engine(max_bundle_age_seconds=60, stale_action=action)
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    clock.advance(59)
    assert engine.status()["state"] == "fresh"
    clock.advance(1)
    assert engine.status()["state"] == "stale"


async def test_confirmation_keeps_an_old_bundle_fresh(make_engine: EngineFactory,
                                                      signing: Signing, clock: FakeClock) -> None:
    """Age counts from the source's last confirmation: an unchanged policy set is not stale."""
    engine = make_engine(max_bundle_age_seconds=60)
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    clock.advance(50)
    await engine.activator.handle(BundleUnchanged(source="test"))
    clock.advance(50)
    assert engine.status()["state"] == "fresh"
    assert engine.status()["age_seconds"] == 50


async def test_expires_at_makes_it_stale(make_engine: EngineFactory, signing: Signing,
                                         clock: FakeClock) -> None:
    """Past the manifest's expires_at the bundle is stale even if the source confirms it."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1, expires_at=clock.now + 30),
                                       source="test"))
    clock.advance(31)
    await engine.activator.handle(BundleUnchanged(source="test"))
    assert engine.status()["state"] == "stale"


async def test_stale_with_serve_keeps_answering(make_engine: EngineFactory, signing: Signing,
                                                clock: FakeClock) -> None:
    """stale_action=serve: a stale bundle still decides normally and the sidecar stays ready."""
    engine = make_engine(max_bundle_age_seconds=10, stale_action="serve")
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    clock.advance(11)
    assert engine.ready() is True
    answer = engine.decide("validate_service", LISTING_WITH_HTTP)
    assert answer["compliant"] is False
    assert "fail_open" not in answer


async def test_stale_with_fail_closed_refuses(make_engine: EngineFactory, signing: Signing,
                                              clock: FakeClock) -> None:
    """stale_action=fail_closed: decisions are refused as not ready and readiness drops."""
    engine = make_engine(max_bundle_age_seconds=10, stale_action="fail_closed")
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    clock.advance(11)
    assert engine.ready() is False
    with pytest.raises(NotReadyError) as refused:
        engine.decide("validate_service", COMPLIANT_LISTING)
    assert refused.value.state == "stale"
    assert "r1" in str(refused.value)


async def test_stale_with_fail_open_allows_and_says_so(make_engine: EngineFactory,
                                                       signing: Signing,
                                                       clock: FakeClock) -> None:
    """stale_action=fail_open: answers are allows flagged fail_open; the findings stay visible."""
    engine = make_engine(max_bundle_age_seconds=10, stale_action="fail_open")
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    clock.advance(11)
    assert engine.ready() is True
    answer = engine.decide("validate_service", LISTING_WITH_HTTP)
    assert answer["compliant"] is True
    assert answer["fail_open"] is True
    assert any(v["policy_id"] == "https-required" for v in answer["violations"])
    access = engine.decide("check_access", {"user_id": "nobody", "service_id": "svc-1",
                                            "action": "consume"})
    assert access["allowed"] is True
    assert "fail_open" in access["reason"]


async def test_fresh_bundle_is_not_failed_open(make_engine: EngineFactory,
                                               signing: Signing) -> None:
    """fail_open only changes answers while the bundle is stale."""
    engine = make_engine(max_bundle_age_seconds=10, stale_action="fail_open")
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    answer = engine.decide("validate_service", LISTING_WITH_HTTP)
    assert answer["compliant"] is False
    assert "fail_open" not in answer


async def test_bundle_age_metric_follows_the_clock(make_engine: EngineFactory, signing: Signing,
                                                   clock: FakeClock,
                                                   registry: CollectorRegistry) -> None:
    """pdp_bundle_age_seconds is read from the injected clock at scrape time."""
    engine = make_engine()
    await engine.activate(BundleUpdate(signing.bundle(1), source="test"))
    clock.advance(42)
    assert sample(registry, "pdp_bundle_age_seconds") == 42
    assert sample(registry, "pdp_bundle_last_success_timestamp") == clock.now - 42
