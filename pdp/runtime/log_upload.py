"""`UploadSink`: decision-log events uploaded in gzip batches to the control plane (DESIGN §7.4).

A :class:`~pdp.runtime.decision_log.DecisionSink` like the stdout and file sinks, so the
:class:`~pdp.runtime.decision_log.DecisionLog` keeps doing the masking and encoding; this sink
only ships the lines. The body is OPA's decision-log upload: one JSON array of events, sent with
``Content-Encoding: gzip`` and a bearer token read from its file for every request.

Why a thread of its own: the sink protocol is synchronous (the decision log calls ``write`` from a
worker thread), and uploads must not follow the decision log's 200 ms drain cadence — that would
be five small POSTs a second per sidecar. ``write`` only appends to a bounded buffer; one daemon
thread uploads a batch every ``upload_interval`` seconds, or as soon as a full batch is waiting.

Failures: a batch that could not be delivered (network, timeout, 5xx, 401/403) goes back to the
front of the buffer and is retried after an exponential backoff with jitter, so nothing is lost
while the buffer has room. When it overflows, the *oldest* events are dropped and counted in
``pdp_decision_logs_dropped_total{reason="upload_buffer_full"}``; a batch the server refuses for
good (another 4xx) is counted as ``upload_rejected``. On :meth:`UploadSink.close` everything
buffered is uploaded within ``flush_deadline`` seconds; what is still unconfirmed then is counted
as ``shutdown``. Every POST is counted in ``pdp_decision_log_uploads_total{result}``.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import Counter

from pdp.runtime.credentials import ssl_context
from pdp.runtime.http_source import Backoff, public_url, without_url_secrets
from pdp.runtime.metrics import RuntimeMetrics
from pdp.runtime.status_report import (
    FailureLog,
    PostFailure,
    bearer_headers,
    failure_for_status,
    intake_url,
)

logger = logging.getLogger(__name__)

UPLOAD_BACKOFF = Backoff(initial=0.5, factor=2.0, cap=30.0)
"""Pauses between failed uploads: 0.5 s doubling to 30 s; events wait in the buffer meanwhile."""

# Enough of an answer to see its status; the intake's body says nothing the sink acts on.
_MAX_ANSWER_BYTES = 64 * 1024


class UploadSink:
    """Uploads decision events to ``url`` (the control plane's ``/v1/logs``) in gzip batches.

    ``metrics`` is the engine's :class:`RuntimeMetrics`: drops are counted in its
    ``pdp_decision_logs_dropped_total`` and uploads on its registry. Raises ``ValueError`` for a
    URL that is not http(s) or a non-positive size or time.
    """

    def __init__(self, url: str, *, metrics: RuntimeMetrics, token_file: Path | None = None,
                 ca_file: Path | None = None, buffer_size: int = 10_000,
                 batch_max_events: int = 1_000, batch_max_bytes: int = 512 * 1024,
                 upload_interval: float = 5.0, timeout: float = 5.0,
                 flush_deadline: float = 5.0,
                 backoff: Backoff = UPLOAD_BACKOFF,
                 rng: random.Random | None = None) -> None:
        parts = intake_url(url)
        if min(buffer_size, batch_max_events, batch_max_bytes) < 1:
            raise ValueError("buffer_size, batch_max_events and batch_max_bytes must be >= 1")
        if upload_interval <= 0 or timeout <= 0 or flush_deadline < 0:
            raise ValueError("upload_interval and timeout must be positive, flush_deadline >= 0")
        self.url = url
        self._parts = parts
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._token_file = token_file
        self._ssl = ssl_context(ca_file) if parts.scheme == "https" else None
        self._capacity = buffer_size
        self._batch_events = batch_max_events
        self._batch_bytes = batch_max_bytes
        self._interval = upload_interval
        self._timeout = timeout
        self._flush_deadline = flush_deadline
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._dropped = metrics.decision_logs_dropped
        self._uploads = Counter("pdp_decision_log_uploads", "Decision-log upload POSTs by "
                                "result (success or the failure reason).", ["result"],
                                registry=metrics.registry)
        self._failures = FailureLog("decision log upload")
        # One condition guards the buffer and the flags below; the uploader sleeps on it.
        self._cond = threading.Condition()
        self._buffer: deque[bytes] = deque()
        self._in_flight = 0
        self._backing_off = False
        self._closing = False
        self._abandoned = False
        self._close_by = 0.0
        self._thread: threading.Thread | None = None

    def write(self, lines: Sequence[str]) -> None:
        """Queue encoded events; drop (and count) the oldest beyond ``buffer_size``. Never waits
        on the network."""
        encoded = [line.encode("utf-8") for line in lines]
        overflow = 0
        with self._cond:
            if self._closing:
                self._dropped.labels("shutdown").inc(len(encoded))
                return
            self._buffer.extend(encoded)
            while len(self._buffer) > self._capacity:
                self._buffer.popleft()
                overflow += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="decision-log-upload",
                                                daemon=True)
                self._thread.start()
            elif len(self._buffer) >= self._batch_events and not self._backing_off:
                self._cond.notify_all()
        if overflow:
            self._dropped.labels("upload_buffer_full").inc(overflow)

    def __len__(self) -> int:
        """Events waiting to be uploaded (not counting a batch in flight)."""
        return len(self._buffer)

    def close(self) -> None:
        """Upload what is buffered within ``flush_deadline`` seconds, then stop.

        Events still unconfirmed at the deadline are counted as dropped (``shutdown``); the
        uploader is a daemon thread, so a hanging server cannot keep the process alive.
        """
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._close_by = time.monotonic() + self._flush_deadline
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(self._flush_deadline)
        with self._cond:
            self._abandoned = True
            left = len(self._buffer) + self._in_flight
            self._buffer.clear()
            self._cond.notify_all()
        if left:
            self._dropped.labels("shutdown").inc(left)
            logger.warning("decision log upload deadline passed; events dropped",
                           extra={"dropped": left, "url": public_url(self.url)})

    # -- the uploader thread ---------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        closing_seen = False
        while True:
            with self._cond:
                if failures:
                    self._pause(self._backoff.delay(failures, self._rng),
                                cut_by_close=not closing_seen)
                else:
                    self._cond.wait_for(self._work_waiting, self._interval)
                if self._abandoned or (self._closing and not self._buffer):
                    return
                closing_seen = self._closing
            try:
                failure = self._upload_buffered()
            except Exception:
                # A bug must not end uploading silently; the batch went back to the buffer.
                logger.exception("decision log upload failed unexpectedly")
                failure = PostFailure("internal_error", "unexpected error", "transient")
            failures = 0 if failure is None else failures + 1

    def _work_waiting(self) -> bool:
        return self._closing or self._abandoned or len(self._buffer) >= self._batch_events

    def _pause(self, seconds: float, *, cut_by_close: bool) -> None:
        """Back off (the condition held): a full batch does not cut it short, since the server
        is failing; the shutdown flush does, once, so it starts without waiting."""
        self._backing_off = True
        self._cond.wait_for(lambda: self._abandoned or (self._closing and cut_by_close),
                            seconds)
        self._backing_off = False

    def _upload_buffered(self) -> PostFailure | None:
        """Upload batches until the buffer is empty (None) or one fails (its failure)."""
        while True:
            batch = self._take_batch()
            if not batch:
                return None
            try:
                failure = self._upload(batch)
            except BaseException:
                self._give_back(batch)
                raise
            if failure is None:
                self._uploads.labels("success").inc()
                self._failures.succeeded()
                self._settle(len(batch))
                continue
            self._uploads.labels(failure.reason).inc()
            self._failures.failed(failure)
            if failure.kind == "rejected":
                # The same body would be refused again: retrying would block every later event.
                self._settle(len(batch))
                self._dropped.labels("upload_rejected").inc(len(batch))
                continue
            self._give_back(batch)
            return failure

    def _take_batch(self) -> list[bytes]:
        batch: list[bytes] = []
        size = 2  # the brackets of the JSON array
        with self._cond:
            while self._buffer and len(batch) < self._batch_events:
                line = self._buffer[0]
                if batch and size + len(line) + 1 > self._batch_bytes:
                    break  # an event larger than the limit still goes, alone
                batch.append(self._buffer.popleft())
                size += len(line) + 1
            self._in_flight = len(batch)
        return batch

    def _settle(self, count: int) -> None:
        with self._cond:
            if not self._abandoned:
                self._in_flight -= count

    def _give_back(self, batch: list[bytes]) -> None:
        """Put an undelivered batch back in front; the oldest beyond capacity are dropped."""
        overflow = 0
        with self._cond:
            if self._abandoned:
                return  # close() has counted the batch as dropped
            self._in_flight = 0
            self._buffer.extendleft(reversed(batch))
            while len(self._buffer) > self._capacity:
                self._buffer.popleft()
                overflow += 1
        if overflow:
            self._dropped.labels("upload_buffer_full").inc(overflow)

    def _upload(self, batch: list[bytes]) -> PostFailure | None:
        headers = bearer_headers(self._token_file)
        if isinstance(headers, PostFailure):
            return headers
        body = gzip.compress(b"[" + b",".join(batch) + b"]", compresslevel=6)
        headers.update({"Content-Type": "application/json", "Content-Encoding": "gzip"})
        timeout = self._timeout
        with self._cond:
            if self._closing:
                # The shutdown flush may not outlive its deadline by a whole request timeout.
                timeout = max(0.05, min(timeout, self._close_by - time.monotonic()))
        return self._post(body, headers, timeout)

    def _post(self, body: bytes, headers: dict[str, str], timeout: float) -> PostFailure | None:
        host, port = self._parts.hostname or "", self._parts.port
        connection = (http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl)
                      if self._parts.scheme == "https"
                      else http.client.HTTPConnection(host, port, timeout=timeout))
        try:
            connection.request("POST", self._target, body=body, headers=headers)
            response = connection.getresponse()
            response.read(_MAX_ANSWER_BYTES)
            if 200 <= response.status < 300:
                return None
            return failure_for_status(self.url, response.status, response.reason)
        except TimeoutError:
            return PostFailure("timeout",
                               f"{public_url(self.url)}: no answer within {timeout:.1f} s",
                               "transient")
        except (OSError, http.client.HTTPException) as exc:
            return PostFailure("unreachable",
                               f"{public_url(self.url)}: {without_url_secrets(str(exc))}",
                               "transient")
        finally:
            connection.close()
