"""JSON logs for the pdp processes: one event per line on a stream, no secrets.

Loggers are used the standard way, with structured fields passed as ``extra``::

    logger.info("bundle activated", extra={"revision": "42", "sequence": 42})

→ ``{"ts": "...Z", "level": "info", "logger": "pdp.runtime.activation",
"msg": "bundle activated", "revision": "42", "sequence": 42}``

Fields whose names look like credentials (token, password, secret, authorization, key material)
are replaced by ``"[redacted]"``, so a careless ``extra`` cannot leak them. Decision inputs are
never logged here at info level; they belong to the decision log, where masking applies.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_SECRET_NAME = re.compile(
    r"(pass(word|wd)?|secret|token|authorization|api[_-]?key|private[_-]?key|credential)",
    re.IGNORECASE)

REDACTED = "[redacted]"


def _json_safe(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): REDACTED if _SECRET_NAME.search(str(k)) else _json_safe(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return str(value)


def public_url(url: str) -> str:
    """``url`` fit for messages: without query and fragment (where a signed URL carries its
    credential) and without user:password."""
    # Here rather than with the HTTP clients: settings name URLs too, and must not load aiohttp.
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class JsonFormatter(logging.Formatter):
    """Formats each record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (without the trailing newline)."""
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat().replace(
                "+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name in _RECORD_ATTRS or name in event:
                continue
            event[name] = REDACTED if _SECRET_NAME.search(name) else _json_safe(value)
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def configure_logging(level: int | str = logging.INFO, stream: TextIO | None = None,
                      *, logger_name: str = "pdp") -> logging.Handler:
    """Send ``logger_name``'s records to ``stream`` (default stderr) as JSON lines.

    Returns the installed handler so the caller (the process entry point) can remove it. Called
    once by the entry point, never at import time.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    target = logging.getLogger(logger_name)
    target.addHandler(handler)
    target.setLevel(level)
    # Our handler is the one output; a root handler configured elsewhere would print twice.
    target.propagate = False
    return handler


class MalformedRequestFilter(logging.Filter):
    """Rewrites aiohttp's record of a request it could not parse into a one-line warning.

    aiohttp logs each such request at error level with a traceback whose message quotes the
    offending line, which can be a header holding a bearer token (an ``Authorization`` line with
    a stray ``\\r``); and anyone who can connect could fill the log with tracebacks. What is kept
    is the peer and the kind of error, never the request's own text.
    """

    def __init__(self, malformed: type[BaseException]) -> None:
        super().__init__()
        self._malformed = malformed

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place if it reports a malformed request; keep every record."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, self._malformed):
            # aiohttp's message is "Error handling request from %s" with the peer address.
            args = record.args if isinstance(record.args, tuple) else ()
            record.remote = str(args[0]) if args else None
            record.error = type(error).__name__
            record.msg, record.args = "refused a malformed HTTP request", ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


ACCEPT_EXHAUSTED = "socket.accept() out of system resource"
"""How asyncio's record of a listener that cannot accept (no file descriptor, no memory) begins."""


class AcceptExhaustedFilter(logging.Filter):
    """Lets asyncio's "out of system resource" record through once per ``interval`` seconds.

    When file descriptors run out, asyncio logs that record with a traceback on every accept
    attempt of every listener, and reschedules each of them: tens of thousands of lines a second,
    filling the disk exactly when the process is short of resources. The first record is kept,
    as one line; the next one ``interval`` seconds later, with ``suppressed`` saying how many
    were dropped in between.
    """

    def __init__(self, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop ``record`` if it repeats the last one too soon; keep every other record."""
        if not (isinstance(record.msg, str) and record.msg.startswith(ACCEPT_EXHAUSTED)):
            return True
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._suppressed += 1
            return False
        error = record.exc_info[1] if record.exc_info else None
        # asyncio's message goes on with "socket: <the listener's repr>" on a line of its own.
        _, _, rest = record.msg.partition("\nsocket: ")
        record.msg, record.args = "cannot accept a connection: out of system resources", ()
        record.error = str(error) if error is not None else None
        record.socket = rest.partition("\n")[0] or None
        record.suppressed = self._suppressed
        record.exc_info, record.exc_text = None, None
        self._last, self._suppressed = now, 0
        return True


def configure_process_logging(level: int | str) -> None:
    """A process entry point's logging: pdp's records at ``level``, and every library's (aiohttp,
    asyncio, grpc, asyncpg) at warning and up, all as JSON lines on stderr. Without the second,
    a library's record falls through to Python's last-resort handler: plain text, tracebacks
    over many lines, which a log pipeline cannot parse. aiohttp's report of an unparsable request
    becomes one warning without the request's text (see :class:`MalformedRequestFilter`), and
    asyncio's report of a listener out of file descriptors is rate-limited
    (see :class:`AcceptExhaustedFilter`)."""
    # Imported here: both processes serve aiohttp, but this module is also used without it.
    from aiohttp.http_exceptions import BadHttpMessage

    configure_logging(level)
    configure_logging(logging.WARNING, logger_name="")
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(known, MalformedRequestFilter) for known in server.filters):
        server.addFilter(MalformedRequestFilter(BadHttpMessage))
    loop_logger = logging.getLogger("asyncio")
    if not any(isinstance(known, AcceptExhaustedFilter) for known in loop_logger.filters):
        loop_logger.addFilter(AcceptExhaustedFilter())
