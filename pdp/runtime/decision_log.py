"""The decision log (DESIGN §7.4): one event per decision, masked, buffered, written in batches.

The decision path only appends a small dict to a bounded deque. A background task drains it,
removes the configured JSON pointers (RFC 6901) from each event, encodes JSON lines and hands them
to a sink in a worker thread. When the buffer is full the *oldest* event is dropped and counted in
``pdp_decision_logs_dropped_total{reason="buffer_full"}``; an event that cannot be masked with
certainty is dropped (``reason="mask_error"``), never written unmasked. Masking applies to the log
only: the answer the caller got is never touched, because masking copies along the masked path.

Credentials are erased by default, on top of the configured pointers: the values of the request
headers ``authorization``, ``cookie``, ``proxy-authorization`` and ``x-api-key`` (in any case)
under ``/input/headers``, where ``authorize_http`` (ext_authz and HTTP) and
``validate_consumption`` carry them. They are end users' secrets, and the log is written to files
and uploaded to the control plane, where every viewer reads it. Each is listed under ``erased``
like a configured mask.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from pdp.runtime.config import DecisionLogConfig
from pdp.runtime.health import iso
from pdp.runtime.metrics import RuntimeMetrics

logger = logging.getLogger(__name__)

_JSON_SCALARS = (str, int, float, bool, type(None))

# A sink that keeps failing (a full disk, a read-only directory) fails at every drain, five times
# a second under load; its traceback is logged once, then at most this often.
FAILURE_LOG_SECONDS = 60.0


CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
"""Request headers (lowercase) whose values are never logged: see the module docstring."""


class MaskingError(ValueError):
    """A pointer ran into a value the masker cannot prove it masked (not JSON data)."""


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 JSON pointer (``"/a/b~1c"`` → ``("a", "b/c")``)."""
    if pointer == "":
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


# A mask as a tree of reference tokens; a leaf (None) is a value to remove.
_Mask = dict[str, Any]


def _mask_tree(pointers: Sequence[tuple[str, ...]]) -> _Mask:
    tree: _Mask = {}
    for tokens in pointers:
        if not tokens:
            raise MaskingError("the empty pointer would erase the whole event")
        node = tree
        for token in tokens[:-1]:
            below = node.setdefault(token, {})
            if below is None:
                break  # an ancestor is erased already: nothing below it is left to mask
            node = below
        else:
            node[tokens[-1]] = None
    return tree


def _pruned(doc: Any, mask: _Mask, path: tuple[str, ...], erased: set[tuple[str, ...]]) -> Any:
    """``doc`` without what ``mask`` marks, every pointer read against ``doc`` as given (removing
    list item 0 must not make item 1 the next pointer's item 0); copies only along the paths."""
    if isinstance(doc, dict):
        changed: dict[str, Any] | None = None
        for token, below in mask.items():
            if token not in doc:
                continue
            if below is None:
                changed = dict(doc) if changed is None else changed
                del changed[token]
                erased.add((*path, token))
            elif (child := _pruned(doc[token], below, (*path, token), erased)) is not doc[token]:
                changed = dict(doc) if changed is None else changed
                changed[token] = child
        return doc if changed is None else changed
    if isinstance(doc, list):
        dropped: set[int] = set()
        replaced: dict[int, Any] = {}
        for token, below in mask.items():
            if not token.isdigit() or int(token) >= len(doc):
                continue
            index = int(token)
            if below is None:
                dropped.add(index)
                erased.add((*path, token))
            elif (child := _pruned(doc[index], below, (*path, token), erased)) is not doc[index]:
                replaced[index] = child
        if not dropped and not replaced:
            return doc
        return [replaced.get(i, item) for i, item in enumerate(doc) if i not in dropped]
    if isinstance(doc, _JSON_SCALARS):
        return doc  # the path ends inside a scalar: there is nothing to mask
    raise MaskingError(f"cannot mask inside a {type(doc).__name__}")


def credential_pointers(event: dict[str, Any]) -> list[tuple[str, ...]]:
    """The pointers of the credential headers in ``event``'s input (header names match in any
    case, so they are found in the event rather than configured)."""
    request = event.get("input")
    headers = request.get("headers") if isinstance(request, dict) else None
    if not isinstance(headers, dict):
        return []
    return [("input", "headers", name) for name in headers
            if isinstance(name, str) and name.lower() in CREDENTIAL_HEADERS]


def mask_event(event: dict[str, Any], pointers: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    """A copy of ``event`` without the values at ``pointers``; lists them under ``erased``."""
    removed: set[tuple[str, ...]] = set()
    masked = dict(_pruned(event, _mask_tree(pointers), (), removed))
    erased = list(dict.fromkeys(
        "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens)
        for tokens in pointers if tuple(tokens) in removed))
    if erased:
        masked["erased"] = erased
    return masked


class DecisionSink(Protocol):
    """Where encoded decision events go; called from a worker thread, one batch at a time."""

    def write(self, lines: Sequence[str]) -> None:
        """Write JSON lines (each without its newline)."""
        ...

    def close(self) -> None:
        """Release the sink's resources."""
        ...


class StreamSink:
    """JSON lines to a text stream (standard output by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, lines: Sequence[str]) -> None:
        """Write and flush the batch."""
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write("".join(line + "\n" for line in lines))
        stream.flush()

    def close(self) -> None:
        """Flush; the stream belongs to the caller and stays open."""
        stream = self._stream if self._stream is not None else sys.stdout
        stream.flush()


def create_private(path: Path) -> int:
    """A descriptor of ``path`` opened for appending, created 0600 if missing: the events hold
    callers' inputs, which are not every local user's to read (the umask would give 0644)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


class FileSink:
    """JSON lines appended to a file, opened on first write and again whenever the path no
    longer names the open file (moved by logrotate, deleted), as logging's WatchedFileHandler
    does: writing on into a deleted file would lose every event without a word."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: TextIO | None = None

    def write(self, lines: Sequence[str]) -> None:
        """Append and flush the batch; an OSError (say, the directory is gone) is the caller's
        to count, and the next batch tries the path again."""
        if self._file is not None and not self._still_at_path(self._file):
            self.close()
        if self._file is None:
            # Kept open across batches (closed in close()), so no context manager.
            self._file = open(create_private(self._path), "a", encoding="utf-8")  # noqa: SIM115
        self._file.write("".join(line + "\n" for line in lines))
        self._file.flush()

    def _still_at_path(self, file: TextIO) -> bool:
        try:
            named = os.stat(self._path)
        except FileNotFoundError:
            return False
        opened = os.fstat(file.fileno())
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


def sink_for(config: DecisionLogConfig, stream: TextIO | None = None) -> DecisionSink | None:
    """The sink a configuration names, or None when decision logging is off."""
    if config.sink == "stdout":
        return StreamSink(stream)
    if config.sink == "file" and config.path is not None:
        return FileSink(config.path)
    return None


class DecisionLog:
    """A bounded buffer of decision events and the task that writes them to a sink."""

    def __init__(self, config: DecisionLogConfig, *, sink: DecisionSink,
                 metrics: RuntimeMetrics,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._monotonic = monotonic
        self._sink = sink
        self._metrics = metrics
        self._pointers = tuple(parse_pointer(p) for p in config.mask)
        self._buffer: deque[dict[str, Any]] = deque()
        self._capacity = config.buffer_size
        # Held only for the length check and append, so drop counting is exact across threads.
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    def record(self, event: dict[str, Any]) -> None:
        """Queue one event (the decision path): O(1), never blocks on I/O."""
        dropped = False
        with self._lock:
            if len(self._buffer) >= self._capacity:
                self._buffer.popleft()
                dropped = True
            self._buffer.append(event)
        if dropped:
            self._metrics.decision_logs_dropped.labels("buffer_full").inc()

    def __len__(self) -> int:
        """Events waiting to be written."""
        return len(self._buffer)

    def start(self) -> None:
        """Start the background writer on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="decision-log")

    async def _run(self) -> None:
        logged_at: float | None = None  # when the last failure was logged; None: writing works
        suppressed = 0
        while True:
            await asyncio.sleep(self._config.flush_interval_seconds)
            pending = len(self._buffer)
            try:
                await self.flush()
            except Exception:
                # A sink error (disk full...) must not stop logging for good; the batch is lost
                # and counted in _write_batch, the next one may succeed.
                now = self._monotonic()
                if logged_at is None or now - logged_at >= FAILURE_LOG_SECONDS:
                    logger.exception("decision log write failed; events are dropped and counted "
                                     "in pdp_decision_logs_dropped_total",
                                     extra={"suppressed": suppressed})
                    logged_at, suppressed = now, 0
                else:
                    suppressed += 1
                continue
            if logged_at is not None and pending:
                logger.info("decision log writes again", extra={"suppressed": suppressed})
                logged_at, suppressed = None, 0

    async def flush(self) -> None:
        """Write everything buffered now."""
        async with self._write_lock:
            while self._buffer:
                await asyncio.to_thread(self._write_batch)

    def _write_batch(self, limit: int = 1000) -> None:
        events: list[dict[str, Any]] = []
        with self._lock:
            while self._buffer and len(events) < limit:
                events.append(self._buffer.popleft())
        lines: list[str] = []
        for event in events:
            line = self._encode(event)
            if line is not None:
                lines.append(line)
        if not lines:
            return
        try:
            self._sink.write(lines)
        except Exception:
            self._metrics.decision_logs_dropped.labels("sink_error").inc(len(lines))
            raise

    def _encode(self, event: dict[str, Any]) -> str | None:
        try:
            masked = mask_event(event, (*self._pointers, *credential_pointers(event)))
        except Exception:
            self._metrics.decision_logs_dropped.labels("mask_error").inc()
            return None
        masked["timestamp"] = iso(masked.get("timestamp"))
        try:
            return json.dumps(masked, separators=(",", ":"), allow_nan=False, default=_refuse)
        except (TypeError, ValueError):
            self._metrics.decision_logs_dropped.labels("encode_error").inc()
            return None

    async def close(self) -> None:
        """Stop the writer and flush within the configured deadline; count what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await asyncio.wait_for(self.flush(), self._config.flush_deadline_seconds)
        except TimeoutError:
            logger.warning("decision log flush deadline passed",
                           extra={"dropped": len(self._buffer)})
        except Exception:
            logger.exception("decision log flush failed")
        left = len(self._buffer)
        if left:
            self._buffer.clear()
            self._metrics.decision_logs_dropped.labels("shutdown").inc(left)
        await asyncio.to_thread(self._sink.close)


def _refuse(value: object) -> Any:
    raise TypeError(f"not JSON data: {type(value).__name__}")
