"""`pdp control` options: a YAML file, then PDP_* variables, then flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdp.control.errors import ConfigurationError
from pdp.control.settings import load_control_settings

REQUIRED = {"database_url": "postgresql://db/x", "signing_key": "k.key", "key_id": "k"}


def test_flags_beat_environment_beats_the_file(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each layer overrides the one before it, option by option."""
    config = tmp_path / "control.yaml"
    config.write_text("http_addr: 127.0.0.1:1001\ngrpc_addr: 127.0.0.1:1002\n"
                      "max_wait_seconds: 5\n")
    monkeypatch.setenv("PDP_GRPC_ADDR", "127.0.0.1:2002")
    monkeypatch.setenv("PDP_MAX_WAIT_SECONDS", "7")
    settings = load_control_settings({**REQUIRED, "max_wait_seconds": 9.0}, config)
    assert settings.http_addr == "127.0.0.1:1001"
    assert settings.grpc_addr == "127.0.0.1:2002"
    assert settings.max_wait_seconds == 9.0


def test_an_unknown_option_in_the_file_is_named(tmp_path: Path) -> None:
    """Typos in the file are refused, not ignored."""
    config = tmp_path / "control.yaml"
    config.write_text("htp_addr: 127.0.0.1:1\n")
    with pytest.raises(ConfigurationError, match="htp_addr"):
        load_control_settings(REQUIRED, config)


def test_a_missing_required_option_is_named_as_a_flag() -> None:
    """The message says which flag to add."""
    with pytest.raises(ConfigurationError, match="--signing-key"):
        load_control_settings({"database_url": "postgresql://db/x", "key_id": "k"})


def test_a_bad_address_is_refused() -> None:
    """Listen addresses are HOST:PORT."""
    with pytest.raises(ConfigurationError, match="--http-addr"):
        load_control_settings({**REQUIRED, "http_addr": "everywhere"})


def test_durations_must_be_finite() -> None:
    """`inf` is refused naming the flag, as any other bad number is."""
    with pytest.raises(ConfigurationError, match="--sidecar-expiry: Input should be a finite"):
        load_control_settings({**REQUIRED, "sidecar_expiry": "inf"})


def test_an_empty_bundle_dir_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty PDP_BUNDLE_DIR (a template's unset variable) is refused, not taken as the
    current directory."""
    monkeypatch.setenv("PDP_BUNDLE_DIR", "")
    with pytest.raises(ConfigurationError,
                       match=r"--bundle-dir \(from PDP_BUNDLE_DIR\): .*must not be empty"):
        load_control_settings(REQUIRED)


def test_a_bad_value_from_the_environment_names_its_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator who never typed --max-wait-seconds is told which variable to fix."""
    monkeypatch.setenv("PDP_MAX_WAIT_SECONDS", "abc")
    with pytest.raises(ConfigurationError,
                       match=r"--max-wait-seconds \(from PDP_MAX_WAIT_SECONDS\): Input should"):
        load_control_settings(REQUIRED)


def test_a_bad_value_from_the_file_names_the_file(tmp_path: Path) -> None:
    """A value from the config file is reported as coming from it."""
    config = tmp_path / "control.yaml"
    config.write_text("pool_size: many\n")
    with pytest.raises(ConfigurationError, match=rf"--pool-size \(from config file {config}\)"):
        load_control_settings(REQUIRED, config)


def test_the_log_level_is_an_option_like_the_others(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """log_level is accepted in the config file and from PDP_LOG_LEVEL, as for `pdp run`."""
    config = tmp_path / "control.yaml"
    config.write_text("log_level: debug\n")
    assert load_control_settings(REQUIRED, config).log_level == "debug"
    monkeypatch.setenv("PDP_LOG_LEVEL", "warning")
    assert load_control_settings(REQUIRED, config).log_level == "warning"


def test_pdp_config_names_the_config_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """PDP_CONFIG is read when --config is not given, as for `pdp run`; --config wins."""
    (tmp_path / "env.yaml").write_text("http_addr: 127.0.0.1:1001\n")
    (tmp_path / "flag.yaml").write_text("http_addr: 127.0.0.1:1002\n")
    monkeypatch.setenv("PDP_CONFIG", str(tmp_path / "env.yaml"))
    assert load_control_settings(REQUIRED).http_addr == "127.0.0.1:1001"
    assert load_control_settings(REQUIRED, tmp_path / "flag.yaml").http_addr == "127.0.0.1:1002"
