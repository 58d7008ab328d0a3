"""The control plane's exceptions: one tree, mapped to HTTP codes in ``http_errors`` and to gRPC
codes in ``grpc_errors`` — nowhere else.

::

    ControlError
    ├── AuthenticationError      missing, unknown or revoked token        401 / UNAUTHENTICATED
    ├── PermissionDeniedError    the token's role may not do this         403 / PERMISSION_DENIED
    ├── RequestError             bad input, with the offending fields      400 / INVALID_ARGUMENT
    │   └── BodyTooLargeError    the request body is over the size limit   413 / INVALID_ARGUMENT
    ├── ClientGoneError          the client hung up before its answer      499, never sent (HTTP)
    ├── NotFoundError            no such policy, document, bundle, token   404 / NOT_FOUND
    ├── AlreadyExistsError       a policy with this id exists              409 / ALREADY_EXISTS
    ├── VersionConflictError     If-Match names a stale version            409 / ABORTED
    ├── NotPublishedError        nothing has been published yet            404 / FAILED_PRECONDITION
    ├── PublishRefusedError      the draft does not build or a test fails  422 / FAILED_PRECONDITION
    ├── StoreUnavailableError    PostgreSQL cannot be reached              503 / UNAVAILABLE
    └── ConfigurationError       `pdp control` cannot start with these options (exit code 2)
"""

from __future__ import annotations

from collections.abc import Sequence

from pdp.core import FieldError


class ControlError(Exception):
    """Root of the control plane's exceptions; ``str()`` is written for people."""


class AuthenticationError(ControlError):
    """The request carries no bearer token, or one that is unknown or revoked."""


class PermissionDeniedError(ControlError):
    """The caller is authenticated, but its role does not allow the operation."""


class RequestError(ControlError):
    """The request is malformed; ``errors`` names each offending field by its dotted path."""

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors: list[FieldError] = list(errors)


class BodyTooLargeError(RequestError):
    """The request body is larger than the configured limit (1 MiB by default)."""


class ClientGoneError(ControlError):
    """The HTTP client closed its connection before it was answered: while its body was being
    read, or during a long poll.

    Nobody is left to answer; it is the client's doing, not the database's (the
    ``ConnectionResetError`` behind a mid-body hang-up is an ``OSError``, like a lost PostgreSQL
    connection).
    """


class NotFoundError(ControlError):
    """The policy, data document, bundle or token named by the request does not exist."""


class AlreadyExistsError(ControlError):
    """A create names an id that is already taken."""


class VersionConflictError(ControlError):
    """An update or delete was based on a version that is no longer the current one."""

    def __init__(self, message: str, current_version: int) -> None:
        super().__init__(message)
        self.current_version = current_version


class NotPublishedError(ControlError):
    """A bundle or a decision on the published policies was asked for before the first publish."""


class PublishRefusedError(ControlError):
    """The draft cannot be published: it does not build, or a bundle test fails."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class StoreUnavailableError(ControlError):
    """PostgreSQL cannot be reached or refused the operation for reasons outside the request."""


class ConfigurationError(ControlError):
    """The control plane cannot start with these options; ``str()`` names each bad option."""
