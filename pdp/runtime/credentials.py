"""What the sidecar presents and trusts when it talks to a bundle server or the control plane.

One reader of ``--bundle-token-file`` for the three clients (bundle source, status reports,
decision-log upload), so they refuse the same files with the same words. The file is read on
every request, so a rotated token (a re-mounted Kubernetes Secret) is used without a restart.

A token is checked before it goes near a header: a file holding a second line or a space would
otherwise make the HTTP library raise an error whose message *contains the header*, which would
then be logged. Messages here name the file, never its content.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

# RFC 6750 §2.1 b64token: what a Bearer credential may contain.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class TokenFileError(Exception):
    """The token file cannot give a token; ``reason`` is a short code for metrics and status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_bearer_token(token_file: Path) -> str:
    """The token in ``token_file`` (surrounding whitespace removed); TokenFileError if unusable."""
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TokenFileError("token_unreadable",
                             f"cannot read the token file {token_file}: {detail}") from None
    if not token:
        raise TokenFileError("token_empty", f"the token file {token_file} is empty")
    if not _BEARER_TOKEN.fullmatch(token):
        raise TokenFileError(
            "token_invalid",
            f"the token file {token_file} does not hold one bearer token (a second line, a "
            "space or a character RFC 6750 does not allow)")
    return token


def ssl_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """A TLS context trusting ``ca_file``; None leaves the client's default (system CAs).

    Raises OSError or ssl.SSLError for a file that cannot be read or holds no certificate.
    """
    if ca_file is None:
        return None
    return ssl.create_default_context(cafile=str(ca_file))
