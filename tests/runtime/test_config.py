"""`RuntimeConfig` and engine construction: a bad configuration is refused clearly, at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from pdp.runtime import ConfigurationError, Engine, RuntimeConfig


def test_verification_keys_are_required() -> None:
    """Without keys (and without the insecure flag) the configuration names what is missing."""
    with pytest.raises(ValidationError, match="verification_keys"):
        RuntimeConfig()


def test_insecure_mode_needs_no_keys() -> None:
    """insecure_skip_verification is the one way to run without keys."""
    assert RuntimeConfig(insecure_skip_verification=True).verification_keys == ()


def test_unknown_settings_are_refused() -> None:
    """A misspelt option is an error, not silently ignored."""
    with pytest.raises(ValidationError, match="stale_actoin"):
        RuntimeConfig(insecure_skip_verification=True, stale_actoin="serve")  # type: ignore[call-arg]


def test_stale_action_must_be_known() -> None:
    """stale_action accepts only serve, fail_closed and fail_open."""
    with pytest.raises(ValidationError, match="stale_action"):
        RuntimeConfig(insecure_skip_verification=True, stale_action="shrug")


def test_max_bundle_age_must_be_positive() -> None:
    """A zero or negative max_bundle_age is refused."""
    with pytest.raises(ValidationError, match="max_bundle_age_seconds"):
        RuntimeConfig(insecure_skip_verification=True, max_bundle_age_seconds=0)


def test_unusable_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A key file that is not a public key stops the engine from being built, naming the file."""
    bad = tmp_path / "broken.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigurationError, match=r"broken\.pem"):
        Engine(RuntimeConfig(verification_keys=(bad,)), registry=CollectorRegistry())


def test_missing_key_path_is_a_configuration_error(tmp_path: Path) -> None:
    """A verification key path that does not exist is reported at construction."""
    with pytest.raises(ConfigurationError, match="nowhere"):
        Engine(RuntimeConfig(verification_keys=(tmp_path / "nowhere",)),
               registry=CollectorRegistry())


def test_two_engines_share_no_metrics() -> None:
    """Metrics go to the injected registry, so two engines in one process never collide."""
    config = RuntimeConfig(insecure_skip_verification=True)
    first, second = CollectorRegistry(), CollectorRegistry()
    Engine(config, registry=first)
    Engine(config, registry=second)
    assert first.get_sample_value("policy_engine_active_policies") == 0
    assert second.get_sample_value("policy_engine_active_policies") == 0
