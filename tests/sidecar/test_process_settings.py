"""How `pdp run` is configured: YAML file, then PDP_* variables, then flags; clear refusals."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_process_support import SigningKey

from pdp.runtime.config import DecisionLogConfig
from pdp.sidecar.errors import ConfigError
from pdp.sidecar.process import check_decision_log_file
from pdp.sidecar.settings import ListenAddress, load_settings, parse_listen_address


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PDP_* variable of the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("PDP_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, text: str) -> Path:
    """A YAML config file with ``text``."""
    path = tmp_path / "pdp.yaml"
    path.write_text(text)
    return path


def test_defaults_bind_localhost() -> None:
    """Without options the listeners stay on 127.0.0.1 with the documented ports."""
    settings = load_settings({"bundle": "b.tar.gz", "verification_key": ["k.pem"]})
    assert settings.http_listen == ListenAddress("127.0.0.1", 8181)
    assert settings.grpc_listen == ListenAddress("127.0.0.1", 50051)
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.stale_action == "serve"


def test_config_file_supplies_options(tmp_path: Path) -> None:
    """Options in the YAML file are used when neither environment nor flags set them."""
    path = write_config(tmp_path, "bundle: /srv/b.tar.gz\nverification_key: [/k.pem]\n"
                                  "http_addr: 127.0.0.1:9000\n")
    settings = load_settings({}, path)
    assert settings.bundle == Path("/srv/b.tar.gz")
    assert settings.http_addr == "127.0.0.1:9000"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PDP_* variable wins over the config file."""
    path = write_config(tmp_path, "bundle: b\nverification_key: [k]\nhttp_addr: 127.0.0.1:9000\n")
    monkeypatch.setenv("PDP_HTTP_ADDR", "127.0.0.1:9001")
    assert load_settings({}, path).http_addr == "127.0.0.1:9001"


def test_flags_override_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flag the user typed wins over both the environment and the file."""
    path = write_config(tmp_path, "bundle: b\nverification_key: [k]\nhttp_addr: 127.0.0.1:9000\n")
    monkeypatch.setenv("PDP_HTTP_ADDR", "127.0.0.1:9001")
    assert load_settings({"http_addr": "127.0.0.1:9002"}, path).http_addr == "127.0.0.1:9002"


def test_pdp_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PDP_CONFIG points at the config file when --config is not given."""
    path = write_config(tmp_path, "dev: true\nlog_level: debug\n")
    monkeypatch.setenv("PDP_CONFIG", str(path))
    assert load_settings({}).log_level == "debug"


def test_list_options_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeatable options are JSON lists in PDP_* variables."""
    monkeypatch.setenv("PDP_VERIFICATION_KEY", '["a.pem", "keys/"]')
    settings = load_settings({"bundle": "b"})
    assert settings.verification_key == [Path("a.pem"), Path("keys")]


def test_unknown_option_in_the_file_is_refused(tmp_path: Path) -> None:
    """A typo in the config file is an error naming the key, not silently ignored."""
    path = write_config(tmp_path, "bundel: b\n")
    with pytest.raises(ConfigError, match="bundel"):
        load_settings({}, path)


def test_unreadable_yaml_is_refused(tmp_path: Path) -> None:
    """A file that is not YAML is refused with the file's name."""
    path = write_config(tmp_path, "bundle: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings({}, path)


def test_a_bundle_source_is_required() -> None:
    """Exactly one of bundle, bundle_url, dev must be given."""
    with pytest.raises(ConfigError, match="exactly one of bundle, bundle_url, dev"):
        load_settings({"verification_key": ["k.pem"]})


def test_verification_key_is_required_outside_dev() -> None:
    """Verification is mandatory: a bundle without keys is a configuration error."""
    with pytest.raises(ConfigError, match="verification_key is required"):
        load_settings({"bundle": "b.tar.gz"})


def test_bad_value_names_the_option() -> None:
    """A value of the wrong shape is refused with the option's name."""
    with pytest.raises(ConfigError, match="stale_action"):
        load_settings({"dev": True, "stale_action": "sometimes"})


@pytest.mark.parametrize("text", ["8181", "localhost:", "example.com:80", "127.0.0.1:99999"])
def test_bad_listen_addresses_are_refused(text: str) -> None:
    """Listen addresses must be IP:PORT (or localhost:PORT) with a valid port."""
    with pytest.raises(ValueError):
        parse_listen_address(text)


def test_ipv6_listen_address() -> None:
    """IPv6 addresses are written in brackets."""
    assert parse_listen_address("[::1]:8181") == ListenAddress("::1", 8181)


def run_pdp(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m pdp run ARGS` to completion."""
    return subprocess.run([sys.executable, "-m", "pdp", "run", *args], capture_output=True,
                          text=True, timeout=60)


def test_usage_error_exits_2_with_the_reason() -> None:
    """`pdp run` without a bundle source exits 2 and says what is missing."""
    result = run_pdp("--verification-key", "k.pem")
    assert result.returncode == 2
    assert "exactly one of bundle, bundle_url, dev" in result.stderr


def test_bundle_url_must_be_http() -> None:
    """--bundle-url takes an http(s) URL; anything else is refused up front, naming the option."""
    with pytest.raises(ConfigError, match="bundle_url"):
        load_settings({"bundle_url": "ftp://example/b", "verification_key": ["k.pem"]})


def test_token_file_needs_bundle_url() -> None:
    """--bundle-token-file without --bundle-url is a mistake, not silently ignored."""
    with pytest.raises(ConfigError, match="bundle_token_file"):
        load_settings({"bundle": "b", "verification_key": ["k"], "bundle_token_file": "t"})


def test_missing_verification_key_file_exits_2(tmp_path: Path) -> None:
    """A verification key that cannot be read stops `pdp run` with exit code 2 and its path."""
    missing = tmp_path / "nope.pem"
    result = run_pdp("--bundle", str(tmp_path / "b.tar.gz"), "--verification-key", str(missing),
                     "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0")
    assert result.returncode == 2
    assert "nope.pem" in result.stderr


def test_help_documents_every_option_with_its_default() -> None:
    """`pdp run --help` lists each option and its default."""
    result = run_pdp("--help")
    assert result.returncode == 0
    for flag in ("--bundle ", "--bundle-url", "--verification-key", "--http-addr",
                 "--grpc-addr", "--persist-dir", "--config", "--max-bundle-age",
                 "--stale-action", "--allow-downgrade", "--insecure-skip-verification",
                 "--decision-log", "--decision-log-mask", "--log-level", "--max-body-bytes",
                 "--dev"):
        assert flag in result.stdout
    assert "(default: 127.0.0.1:8181)" in result.stdout


def test_port_in_use_exits_1_naming_the_address(tmp_path: Path) -> None:
    """A taken HTTP port stops `pdp run` at once with exit code 1 and the address it wanted."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pdp", "run", "--dev", "--http-addr", f"127.0.0.1:{port}",
             "--grpc-addr", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )
    assert result.returncode == 1
    assert f"cannot listen for HTTP on 127.0.0.1:{port}" in result.stderr


def test_status_reports_go_to_the_bundle_servers_origin_by_default() -> None:
    """With --bundle-url, status and logs go to its control plane unless --control-url says else."""
    base = {"bundle_url": "https://cp.example:8282/bundles/main", "verification_key": ["k"]}
    assert load_settings(base).control_base_url == "https://cp.example:8282"
    explicit = load_settings({**base, "control_url": "http://other:9000/"})
    assert explicit.control_base_url == "http://other:9000"
    assert load_settings({"bundle": "b", "verification_key": ["k"]}).control_base_url is None


def test_labels_come_from_repeated_flags_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """--label KEY=VALUE (repeatable) and PDP_LABELS (JSON) set the labels reported to the fleet."""
    base = {"bundle": "b", "verification_key": ["k"]}
    settings = load_settings({**base, "labels": ["app=api", "zone=eu-1"]})
    assert settings.labels == {"app": "api", "zone": "eu-1"}
    monkeypatch.setenv("PDP_LABELS", '{"pod": "api-7"}')
    assert load_settings(base).labels == {"pod": "api-7"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_settings({**base, "labels": ["no-equals-sign"]})


def test_decision_log_upload_needs_a_control_plane() -> None:
    """--decision-log upload without a control plane URL is a usage error, not a silent no-op."""
    with pytest.raises(ConfigError, match="control_url"):
        load_settings({"bundle": "b", "verification_key": ["k"], "decision_log": "upload"})


def test_environment_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    """pdp_http_addr works like PDP_HTTP_ADDR: variable names are case-insensitive."""
    monkeypatch.setenv("pdp_http_addr", "127.0.0.1:9003")
    assert load_settings({"dev": True}).http_addr == "127.0.0.1:9003"


def test_malformed_json_in_a_list_variable_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A list option given as PDP_* text that is not JSON is refused naming the variable."""
    monkeypatch.setenv("PDP_VERIFICATION_KEY", "a.pem,b.pem")
    with pytest.raises(ConfigError, match="PDP_VERIFICATION_KEY must be JSON"):
        load_settings({"dev": True})


def test_a_bad_environment_value_is_validated_like_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PDP_* value of the wrong type is refused naming the option, as a flag would be."""
    monkeypatch.setenv("PDP_MAX_BODY_BYTES", "lots")
    with pytest.raises(ConfigError, match="max_body_bytes"):
        load_settings({"dev": True})


def test_non_option_pdp_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """PDP_* variables that are not options (PDP_BUILTIN_BUNDLE, ...) are not errors."""
    monkeypatch.setenv("PDP_BUILTIN_BUNDLE", "/somewhere")
    assert load_settings({"dev": True}).dev is True


def test_a_config_file_nested_too_deeply_is_refused_naming_it(tmp_path: Path) -> None:
    """YAML nested deeper than the parser can follow stops `pdp run` with exit 2 and one line
    naming the file, not a RecursionError traceback."""
    path = write_config(tmp_path, "labels: " + "[" * 20_000 + "]" * 20_000 + "\n")
    result = run_pdp("--config", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"config file {path}" in result.stderr and "nested too deeply" in result.stderr


def test_a_variable_an_s_away_from_an_option_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flag is --revoked-key-id, the option revoked_key_ids: PDP_REVOKED_KEY_ID is a typo,
    and ignoring it would leave trusted a key its operator meant to revoke."""
    monkeypatch.setenv("PDP_REVOKED_KEY_ID", '["k1"]')
    with pytest.raises(ConfigError, match="PDP_REVOKED_KEY_ID is not an option; "
                                          "did you mean PDP_REVOKED_KEY_IDS"):
        load_settings({"dev": True})


def test_help_names_the_option_behind_a_singular_flag() -> None:
    """--revoked-key-id and --label tell which key and variable set them elsewhere."""
    result = run_pdp("--help")
    text = " ".join(result.stdout.split())
    assert "revoked_key_ids in a config file, PDP_REVOKED_KEY_IDS in the environment" in text
    assert "labels in a config file, PDP_LABELS in the environment" in text


def test_a_config_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 stop `pdp run` with exit 2 and one line, not a traceback."""
    path = tmp_path / "pdp.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    result = run_pdp("--config", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"config file {path} is not UTF-8 text" in result.stderr


@pytest.mark.parametrize("option", ["shutdown_grace", "status_interval", "max_bundle_age"])
@pytest.mark.parametrize("value", ["inf", "nan"])
def test_durations_must_be_finite(option: str, value: str) -> None:
    """An infinite grace or interval is refused naming the option (it also cannot be logged
    as JSON)."""
    with pytest.raises(ConfigError, match=f"{option}: Input should be a finite number"):
        load_settings({"dev": True, option: value})


def test_a_mask_that_is_not_a_json_pointer_is_refused_like_any_option() -> None:
    """The decision-log mask is checked with the other options, in one readable line."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"dev": True, "decision_log_mask": ["notapointer"]})
    assert str(caught.value) == ("invalid configuration: decision_log_mask: "
                                 "JSON pointer 'notapointer' must start with '/'")


def test_credentials_in_a_control_plane_url_are_refused_without_echoing_them() -> None:
    """user:password@ in a URL would be printed wherever the URL is (logs, status): refused,
    pointing at the token file, and the password is not repeated in the error."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"bundle_url": "https://bot:hunter2@cp.example/bundles/main",
                       "verification_key": ["k.pem"]})
    assert "must not hold credentials" in str(caught.value)
    assert "bundle_token_file" in str(caught.value) and "hunter2" not in str(caught.value)


@pytest.mark.parametrize(("option", "value", "shown"), [
    ("bundle_url", "ftp://bot:hunter2@cp.example/b?X-Amz-Signature=hunter2#hunter2",
     "URL, got 'ftp://cp.example/b'"),
    ("control_url", "cp.example:8282/b?token=hunter2", "URL, got 'cp.example:8282/b'"),
    ("control_url", "bot:hunter2@cp.example/b", "URL"),
])
def test_a_url_that_is_not_http_is_named_without_its_credentials(
        option: str, value: str, shown: str) -> None:
    """A mistyped control-plane URL is refused naming what was given, but a signed query,
    fragment or user:password in it is not repeated on the terminal or in the pod's log."""
    settings = {option: value, "verification_key": ["k.pem"]}
    if option == "control_url":
        settings["dev"] = True
    with pytest.raises(ConfigError) as caught:
        load_settings(settings)
    assert str(caught.value).endswith(f"{option}: must be an http:// or https:// {shown}")
    assert "hunter2" not in str(caught.value)


def test_a_ca_file_that_cannot_be_loaded_is_a_configuration_error(tmp_path: Path) -> None:
    """A missing or garbage --bundle-ca-file is named at start, not found out by a sidecar
    that never reaches its bundle server."""
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    for path in (tmp_path / "missing.pem", garbage):
        with pytest.raises(ConfigError, match=f"bundle_ca_file: cannot load {path}"):
            load_settings({"bundle_url": "https://cp.example/bundles/main",
                           "verification_key": ["k.pem"], "bundle_ca_file": str(path)})


def test_a_decision_log_file_that_cannot_be_opened_exits_2(
        tmp_path: Path, signing_key: SigningKey) -> None:
    """A decision-log file in a missing or read-only directory stops `pdp run` at start with
    exit code 2 naming the option, instead of a sidecar that drops every event once in service."""
    target = tmp_path / "missing-dir" / "decisions.log"
    result = subprocess.run(
        [sys.executable, "-m", "pdp", "run", "--bundle", str(tmp_path / "b.tar.gz"),
         "--verification-key", str(signing_key.public), "--decision-log", str(target),
         "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert f"decision_log: cannot open {target} for appending" in result.stderr


def test_the_decision_log_file_is_created_private_whatever_the_umask(tmp_path: Path) -> None:
    """The start-up check creates the decision-log file 0600 even under umask 000: the logged
    inputs are not every local user's to read."""
    target = tmp_path / "decisions.log"
    previous = os.umask(0)
    try:
        check_decision_log_file(DecisionLogConfig(sink="file", path=target))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
