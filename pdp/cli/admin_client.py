"""The admin API's client for `pdp admin`: JSON over HTTP, refusals and answers checked.

An answer is accepted only if it is JSON with the fields the command reads, so pointing
``--server`` at something else (a sidecar, a gRPC port) is reported as such, not as a traceback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

# Longer than one statement may take on the control plane (--database-timeout, 30 s): a publish
# waits for the publish lock, then builds, and a shorter wait gave up on publishes that then
# committed.
TIMEOUT_SECONDS = 90.0

# The fields the commands read from each kind of answer: an answer without them comes from a
# server that is not the control plane (a sidecar answers GET /v1/policies too, differently).
POLICY_FIELDS = ("policy", "version", "updated_at")
BUNDLE_FIELDS = ("sequence", "revision", "sha256", "key_id")
FLEET_FIELDS = ("total", "summary", "sidecars")


class AdminError(Exception):
    """A request the control plane refused, or could not be reached for; ``str()`` is for people."""

    def __init__(self, message: str, *, status: int = 0,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class AdminClient:
    """Minimal JSON-over-HTTP client of the admin API."""

    def __init__(self, server: str, token: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self._server = server.rstrip("/")
        self._token = token
        self._timeout = timeout

    def call(self, method: str, path: str, body: object = None,
             headers: dict[str, str] | None = None, *,
             expect: Sequence[str] = ()) -> dict[str, Any]:
        """Send one request; return the JSON answer, which has the fields ``expect`` names, or
        raise AdminError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self._server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (TimeoutError, http.client.RemoteDisconnected) as exc:
            # Raised bare (not as URLError) only once the request was sent: the control plane
            # may have acted on it, and "cannot reach" made people repeat a publish that was done.
            what = (f"no answer from the control plane at {self._server} within "
                    f"{self._timeout:g} s" if isinstance(exc, TimeoutError) else
                    f"the control plane at {self._server} closed the connection without "
                    "answering")
            done = "" if method == "GET" else (
                f"; the {method} {path.split('?')[0]} may still have been applied: check before "
                "repeating it")
            raise AdminError(what + done) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminError(
                f"cannot reach the control plane at {self._server}: {reason}") from None
        except http.client.HTTPException as exc:
            # Something listens but does not speak HTTP/1.1: a gRPC (HTTP/2) port, for one.
            raise self._not_the_api(f"not an HTTP/1.1 answer: {type(exc).__name__}") from None
        return self._checked(raw, expect)

    def _checked(self, raw: bytes, expect: Sequence[str]) -> dict[str, Any]:
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            raise self._not_the_api("the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise self._not_the_api("the answer is not a JSON object")
        missing = [name for name in expect if name not in answer]
        if missing:
            raise self._not_the_api(f"no {', '.join(map(repr, missing))} in the answer")
        return answer

    def _not_the_api(self, reason: str) -> AdminError:
        return AdminError(
            f"{self._server}: the answer is not the pdp control plane's API ({reason})")


def _refusal(exc: urllib.error.HTTPError) -> AdminError:
    try:
        body = json.loads(exc.read())
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return AdminError(f"HTTP {exc.code}: {message or exc.reason}", status=exc.code,
                      body=body if isinstance(body, dict) else {})


def server_url(text: str) -> str:
    """``--server``: an http(s) URL with a host (and a valid port, if any); else a usage error."""
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - read for its check: a port that is not a number or > 65535
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL such as http://127.0.0.1:8282, got {text!r}")
    if any(char.isspace() or not char.isprintable() for char in text):
        raise argparse.ArgumentTypeError(f"{text!r} contains spaces or control characters")
    return text
