"""`pdp eval` against a running `pdp run` on the same bundle (DESIGN §8.5: the same JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_kit import MARKETPLACE, Pdp

EXAMPLES = MARKETPLACE / "examples"
# Fields that differ between any two decisions, whoever makes them.
PER_DECISION = {"decision_id", "validated_at", "validation_duration_ms"}


class Sidecar:
    """`pdp run` on 127.0.0.1 with kernel-chosen ports, read from its "listening" log line."""

    def __init__(self, bundle: Path, key: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pdp", "run", "--bundle", str(bundle),
             "--verification-key", str(key), "--http-addr", "127.0.0.1:0",
             "--grpc-addr", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.http = ""
        self.lines: list[str] = []
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("msg") == "sidecar listening":
                self.http = str(event["http"])
                self._listening.set()

    def wait_ready(self) -> None:
        """Wait for the listening log line, then for readiness: the sidecar listens before its
        bundle is active (and answers 503 until then)."""
        assert self._listening.wait(30), "".join(self.lines)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.http}/health/ready", timeout=5):
                    return
            except urllib.error.HTTPError as error:
                error.close()
                assert time.monotonic() < deadline, "".join(self.lines)
                time.sleep(0.05)

    def decide(self, query: str, raw_input: str) -> tuple[int, Any]:
        """POST the OPA envelope around ``raw_input`` (JSON text, sent as it is)."""
        body = ('{"input": ' + raw_input + "}").encode()
        request = urllib.request.Request(f"http://{self.http}/v1/data/policyengine/{query}",
                                         data=body, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)  # it reads stderr to its end, then the pipe can be closed
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture(scope="module")
def sidecar(marketplace_bundle: Path, key_dir: Path) -> Iterator[Sidecar]:
    """A sidecar serving the marketplace bundle that the `eval` calls below read too."""
    process = Sidecar(marketplace_bundle, key_dir / "k1.pem")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in PER_DECISION}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    return value


LISTING = (EXAMPLES / "listing-breaking-3-policies.json").read_text()
CONSUMPTION = (EXAMPLES / "consumption.json").read_text()


@pytest.mark.parametrize(("query", "raw_input"), [
    pytest.param("validate_service", LISTING, id="listing"),
    pytest.param("check_access", (EXAMPLES / "access-check.json").read_text(), id="access"),
    pytest.param("validate_consumption", CONSUMPTION, id="consumption"),
    pytest.param("validate_service", '{"sla": {"max_latency": 100000000000000000000}}',
                 id="integer-past-64-bits"),
    pytest.param("check_access", '{"user_id": "user-456", "service_id": "svc-1", '
                 '"action": "read", "context": {"score": NaN}}', id="nan"),
    pytest.param("validate_consumption", '{"consumer_id": "user-456", "service_id": "svc-1", '
                 '"context": {"metadata": {"max_tokens": 1e400}}}', id="overflowing-number"),
])
def test_eval_answers_as_the_sidecar_does(
    pdp: Pdp, sidecar: Sidecar, marketplace_bundle: Path, key_dir: Path, query: str,
    raw_input: str,
) -> None:
    """`pdp eval` prints the sidecar's HTTP `result` for the same input, and refuses (exit 1)
    exactly the inputs the sidecar refuses with a 400, so a decision tried offline holds."""
    status, body = sidecar.decide(query, raw_input)
    result = pdp("eval", "--bundle", marketplace_bundle, "--verification-key",
                 key_dir / "k1.pem", query, "--input", "-", stdin=raw_input)
    if status == 400:
        assert result.returncode == 1, result.stdout
        assert result.stdout == ""
        return
    assert status == 200, body
    assert result.returncode == 0, result.stderr
    assert _stable(json.loads(result.stdout)) == _stable(body["result"])
