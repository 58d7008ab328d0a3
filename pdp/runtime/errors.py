"""The runtime layer's exceptions: one tree, mapped to status codes by each shell in one place.

::

    EngineError
    ├── NotReadyError        no usable policy set: 503 / UNAVAILABLE
    ├── ActivationError      a candidate bundle was refused; the active one keeps serving
    ├── SourceError          a bundle source could not deliver (missing file, network error)
    └── ConfigurationError   the runtime cannot be built from its configuration

Errors of the core that a caller caused (``pdp.core.InputValidationError``,
``pdp.core.UnknownQueryError``) pass through :meth:`pdp.runtime.Engine.decide` unchanged.
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of the runtime layer's exceptions."""


class NotReadyError(EngineError):
    """No policy set may answer: none is active yet, or the active one is stale with fail_closed.

    ``state`` is the health state that refused the decision (``starting`` or ``stale``).
    """

    def __init__(self, message: str, *, state: str) -> None:
        super().__init__(message)
        self.state = state


class ActivationError(EngineError):
    """A candidate bundle was refused; nothing about the active bundle changed.

    ``reason`` is a short machine code, taken from the bundle layer when it refused the candidate
    (``hash_mismatch``, ``rollback``...); ``source`` names where the candidate came from.
    """

    def __init__(self, message: str, *, reason: str, source: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.source = source


class SourceError(EngineError):
    """A bundle source could not deliver a bundle (the file is missing, the server is down...).

    Sources yield these as values (the way OPA's downloader hands an error to its callback), so
    one failed fetch never stops the source.
    """

    def __init__(self, message: str, *, reason: str, source: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.source = source


class ConfigurationError(EngineError):
    """The runtime cannot start with this configuration (an unreadable key file, a bad pointer)."""
