"""Errors raised by the sidecar shell itself (configuration, start-up, HTTP request framing).

Errors of the layers below (``pdp.core``, ``pdp.bundle``, ``pdp.runtime``) keep their own trees;
``pdp.sidecar.http_errors`` is the one place that turns any of them into an HTTP answer.

::

    SidecarError
    ├── ConfigError            bad option, file or combination (exit code 2)
    ├── StartupError           the process could not start (a port in use, no dev bundle source)
    └── RequestError           a request the HTTP API refuses before any decision (→ 4xx)
        ├── MalformedBodyError     not JSON, not UTF-8, NaN, or not an object (→ 400)
        ├── NestingTooDeepError    JSON nested deeper than the limit (→ 400)
        └── BodyTooLargeError      body over ``max_body_bytes`` (→ 413)
"""

from __future__ import annotations


class SidecarError(Exception):
    """Root of the sidecar shell's errors."""


class ConfigError(SidecarError):
    """The configuration (file, environment or flags) is invalid; the message names the option."""


class StartupError(SidecarError):
    """The sidecar could not start, for a reason the operator can fix (named in the message)."""


class RequestError(SidecarError):
    """An HTTP request refused before evaluation; ``code`` is a short machine-readable reason."""

    code = "invalid_request"


class MalformedBodyError(RequestError):
    """The body is not a JSON object (the message carries the parser's position and reason)."""

    code = "invalid_json"


class NestingTooDeepError(RequestError):
    """The JSON body nests arrays/objects deeper than the limit (DESIGN §10: 64 levels)."""

    code = "nesting_too_deep"


class BodyTooLargeError(RequestError):
    """The request body exceeds the configured limit (DESIGN §10: 1 MiB by default)."""

    code = "body_too_large"
