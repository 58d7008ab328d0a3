"""The bundle layer's exceptions: one tree, every refusal carrying a machine reason code.

::

    BundleError                 .reason (short machine code), .file (bundle path or None)
    ├── UnsafeArchiveError      the archive or directory breaks a safety rule (links, `..`, limits)
    ├── SignatureError          .signatures.json is missing, malformed, or does not cover the files
    ├── KeyringError            a key file cannot be used, or the signing key is not trusted
    ├── ManifestError           .manifest is missing or invalid
    ├── ContentError            a policy, data or test file is invalid, or a bundle test fails
    ├── ExpiredBundleError      the bundle is past its expires_at
    └── RollbackError           the candidate's sequence would roll the active bundle back

``str(error)`` is written for a person: it names the file and the check that failed. Shells map
the whole tree to one status (a refused input); ``reason`` feeds metrics labels and status pages.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 4096
MAX_FILE_CHARS = 512


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


class BundleError(Exception):
    """A bundle, source tree or key was refused.

    ``reason`` is a short, stable machine code such as ``"hash_mismatch"``; ``file`` names the file
    inside the bundle (or on disk) the check failed on, when there is one.
    """

    def __init__(self, reason: str, message: str, *, file: str | None = None) -> None:
        # Messages quote what the bundle says (a key id, a member name), and a hostile bundle can
        # say megabytes: each refusal then wrote that much to the log, to /v1/status and into a
        # status report the control plane refused as too large.
        super().__init__(_bounded(message, MAX_MESSAGE_CHARS))
        self.reason = reason
        self.file = None if file is None else _bounded(file, MAX_FILE_CHARS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {str(self)!r})"


class UnsafeArchiveError(BundleError):
    """The archive or directory holds something a bundle may not: links, devices, `..`, too much."""


class SignatureError(BundleError):
    """The signature is missing or malformed, by an untrusted key, or does not match the files."""


class KeyringError(BundleError):
    """A key file is unreadable or unusable, or the key that signed a bundle is not trusted."""


class ManifestError(BundleError):
    """The ``.manifest`` file is missing, not JSON, or not a valid manifest."""


class ContentError(BundleError):
    """A policy, data or test file is invalid, the policies do not compile, or a test fails.

    ``errors`` lists ``(path, message)`` pairs for field-level problems (dotted field paths).
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        file: str | None = None,
        errors: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(reason, message, file=file)
        self.errors = errors


class ExpiredBundleError(BundleError):
    """The bundle's ``expires_at`` has passed."""


class RollbackError(BundleError):
    """The candidate would replace the active bundle with an older or conflicting one."""
