"""`pdp run` when something is wrong: bad settings, a failed start, hostile requests.

Real ``python -m pdp run`` processes (the ``spawn`` fixture) and real sockets; what is checked is
what an operator sees: the exit code, the message, the JSON log lines on stderr.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_process_support import SidecarProcess

from pdp.sidecar.errors import ConfigError
from pdp.sidecar.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PDP_* variable of the caller's shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("PDP_"):
            monkeypatch.delenv(name)


def test_a_bad_environment_value_names_its_variable(tmp_path: Path) -> None:
    """`PDP_MAX_BUNDLE_AGE=abc pdp run` says which variable to fix, and exits 2."""
    result = subprocess.run(
        [sys.executable, "-m", "pdp", "run", "--dev"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, env={**os.environ, "PDP_MAX_BUNDLE_AGE": "abc"})
    assert result.returncode == 2
    assert result.stderr.startswith(
        "pdp run: invalid configuration: max_bundle_age (from PDP_MAX_BUNDLE_AGE): ")


def test_a_bad_config_file_value_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value from the config file is reported with the file it came from."""
    config = tmp_path / "pdp.yaml"
    config.write_text("dev: true\nmax_bundle_age: abc\n")
    with pytest.raises(ConfigError, match=f"max_bundle_age \\(from config file {config}\\): "):
        load_settings({}, config)


def test_the_environment_is_named_over_the_file_it_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source named is the layer whose value was used, spelled as the operator wrote it."""
    monkeypatch.setenv("pdp_shutdown_grace", "-1")
    config = tmp_path / "pdp.yaml"
    config.write_text("dev: true\nshutdown_grace: 5\n")
    with pytest.raises(ConfigError, match="shutdown_grace \\(from pdp_shutdown_grace\\): "):
        load_settings({}, config)


def test_a_bad_flag_is_named_without_a_source() -> None:
    """A flag is named like its option: the message stays `option: problem`."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"dev": True, "max_bundle_age": "abc"})
    assert str(caught.value).startswith("invalid configuration: max_bundle_age: Input should be")


def test_a_failed_start_does_not_log_sidecar_stopped(spawn: Any, tmp_path: Path) -> None:
    """A sidecar that never listened does not claim to have stopped; the error is the last word."""
    sidecar: SidecarProcess = spawn("--bundle", str(tmp_path / "b.tar.gz"),
                                    "--verification-key", str(tmp_path / "missing.pem"))
    assert sidecar.proc.wait(timeout=60) == 2
    sidecar.kill()  # already exited: this only waits for the log reader to finish
    assert "missing.pem" in sidecar.stderr()
    assert "sidecar stopped" not in sidecar.stderr()


async def test_a_malformed_request_is_logged_without_its_text(
    spawn: Any, http: aiohttp.ClientSession
) -> None:
    """A header line aiohttp cannot parse (a token with a stray CR) is one warning, token-free."""
    sidecar: SidecarProcess = spawn("--dev")
    await sidecar.wait_ready(http)
    request = (b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: Bearer SECRET\r\x01\r\n\r\n")
    with socket.create_connection(("127.0.0.1", sidecar.http_port), timeout=10) as conn:
        conn.sendall(request)
        assert conn.recv(4096).startswith(b"HTTP/1.0 400")
    # aiohttp logs before it answers; stopping and joining the log reader collects the line.
    assert await asyncio.to_thread(sidecar.stop) == 0
    sidecar.kill()
    (event,) = [e for e in sidecar.logs if e["logger"] == "aiohttp.server"]
    assert (event["level"], event["msg"], event["remote"], event["error"]) == (
        "warning", "refused a malformed HTTP request", "127.0.0.1", "BadHttpMessage")
    assert "SECRET" not in sidecar.stderr()


async def test_a_loopback_sidecar_refuses_a_rebound_host(
    spawn: Any, http: aiohttp.ClientSession
) -> None:
    """`pdp run` on 127.0.0.1 answers 403 to a page whose name was rebound to it."""
    sidecar: SidecarProcess = spawn("--dev")
    await sidecar.wait_ready(http)
    async with http.get(sidecar.url("/v1/policies"),
                        headers={"Host": "attacker.example"}) as answer:
        assert answer.status == 403
    async with http.get(sidecar.url("/v1/policies")) as answer:
        assert answer.status == 200


async def test_an_all_interfaces_sidecar_accepts_any_host(
    spawn: Any, http: aiohttp.ClientSession
) -> None:
    """`pdp run --http-addr 0.0.0.0:PORT` is reached under the names its operator gives it."""
    sidecar: SidecarProcess = spawn("--dev", "--http-addr", "0.0.0.0:0")
    await sidecar.wait_ready(http)
    async with http.get(sidecar.url("/v1/policies"),
                        headers={"Host": "pdp.internal:8181"}) as answer:
        assert answer.status == 200


async def test_a_client_gone_mid_body_is_no_error(
    spawn: Any, http: aiohttp.ClientSession
) -> None:
    """A client that hangs up before its body is sent is counted as 499, not logged as a 500."""
    sidecar: SidecarProcess = spawn("--dev")
    await sidecar.wait_ready(http)
    request = (b"POST /v1/data/policyengine/check_access HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Length: 500\r\n\r\n{\"input\":")
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", sidecar.http_port), timeout=10) as conn:
            conn.sendall(request)
    counted = 'pdp_http_requests_total{code="499",route="/v1/data/{path}"} 20.0'
    async with asyncio.timeout(10):
        while True:
            async with http.get(sidecar.url("/metrics")) as answer:
                metrics = await answer.text()
            if counted in metrics:
                break
            await asyncio.sleep(0.05)
    assert 'code="500"' not in metrics
    assert await asyncio.to_thread(sidecar.stop) == 0
    sidecar.kill()
    assert [e for e in sidecar.logs if e["level"] == "error"] == []
