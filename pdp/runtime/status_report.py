"""`StatusReporter`: the sidecar tells the control plane how it is doing (DESIGN §7.4, §8.2 fleet).

A background task on the event loop reads :meth:`pdp.runtime.Engine.status` every
``check_interval`` seconds and compares a small key of it (state, readiness, revision, sequence,
last error). It POSTs the whole status document as JSON to the control plane's ``/v1/status``
when that key changed and, in any case, every ``interval`` seconds, so the fleet view follows an
activation within a fraction of a second and still learns that a quiet sidecar is alive.

Polling the key rather than hooking activation is deliberate: ``stale`` is reached by the clock
alone, with no event to hook, and one ``status()`` call every 200 ms costs microseconds.

Delivery is bounded: a report is tried at most ``max_attempts`` times with exponential backoff and
jitter, each attempt re-reading the status (the newest wins) and the bearer token file (a rotated
token is picked up without a restart). Then the reporter waits for the next change or period.
Nothing here runs on the decision path; a failure is counted in
``pdp_status_reports_total{result}`` and logged at most once a minute as a warning
(:class:`FailureLog`).

The token reading, the failure classification and :class:`FailureLog` are shared with
:mod:`pdp.runtime.log_upload`, the other client of the control plane's intake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from pdp.runtime.credentials import TokenFileError, read_bearer_token, ssl_context
from pdp.runtime.health import iso
from pdp.runtime.http_source import Backoff, public_url, without_url_secrets

logger = logging.getLogger(__name__)

FailureKind = Literal["transient", "auth", "rejected"]
"""How a failed POST may be retried: ``transient`` (network, timeout, 408/429/5xx) at once after
a backoff; ``auth`` (401/403) only later, once the token file may have been fixed; ``rejected``
(any other 4xx) never with the same body."""

REPORT_BACKOFF = Backoff(initial=0.5, factor=2.0, cap=5.0)
"""Pauses between the attempts at one report: short, since a newer report supersedes it."""

# Status codes a server uses for "not now": worth the same request again after a pause.
_TRANSIENT_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class PostFailure:
    """Why one POST to the control plane did not succeed."""

    reason: str
    """Short machine code, also the metric label (``timeout``, ``unreachable``, ``forbidden``)."""
    message: str
    """For people: names the URL (without its query: :func:`public_url`) or file and what went
    wrong."""
    kind: FailureKind


def bearer_headers(token_file: Path | None) -> dict[str, str] | PostFailure:
    """The ``Authorization`` header from ``token_file`` (read now), none without a file."""
    if token_file is None:
        return {}
    try:
        return {"Authorization": f"Bearer {read_bearer_token(token_file)}"}
    except TokenFileError as exc:
        return PostFailure(exc.reason, str(exc), "auth")


def failure_for_status(url: str, status: int, reason: str) -> PostFailure:
    """The failure an HTTP answer other than 2xx means, classified for retrying."""
    message = f"{public_url(url)}: HTTP {status} {reason}".rstrip()
    if 300 <= status < 400:
        return PostFailure("redirected", f"{message}; redirects are not followed, configure "
                           "the URL they point to", "rejected")
    if status == 401:
        return PostFailure("unauthorized", message, "auth")
    if status == 403:
        return PostFailure("forbidden", message, "auth")
    if status >= 500 or status in _TRANSIENT_STATUSES:
        return PostFailure("server_error" if status >= 500 else "throttled", message, "transient")
    return PostFailure("rejected", message, "rejected")


def intake_url(url: str) -> SplitResult:
    """``url`` split, if it is an absolute http(s) URL; ``ValueError`` naming it otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("control plane URL must be http:// or https://, got "
                         f"{public_url(url)!r}")
    return parts


class FailureLog:
    """Logs failures to reach the control plane without flooding the log.

    The first failure after a success is a warning, then at most one warning per ``every``
    seconds (the others go to debug); the first success after failures says so at info.
    A control plane down for an hour thus costs sixty lines per sidecar, not thousands.
    """

    def __init__(self, what: str, *, every: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._every = every
        self._monotonic = monotonic
        self._failing = False
        self._last_warning: float | None = None
        self._suppressed = 0

    def failed(self, failure: PostFailure) -> None:
        """Record one failure; warn if none was warned about recently."""
        now = self._monotonic()
        extra = {"reason": failure.reason, "suppressed": self._suppressed}
        if self._last_warning is None or now - self._last_warning >= self._every:
            logger.warning("%s failed: %s", self._what, failure.message, extra=extra)
            self._last_warning = now
            self._suppressed = 0
        else:
            logger.debug("%s failed: %s", self._what, failure.message, extra=extra)
            self._suppressed += 1
        self._failing = True

    def succeeded(self) -> None:
        """Record a success; says so once after a run of failures."""
        if self._failing:
            logger.info("%s succeeded again", self._what)
        self._failing = False
        self._last_warning = None
        self._suppressed = 0


def change_key(status: dict[str, Any]) -> tuple[object, ...]:
    """What makes a status worth reporting at once: state, readiness, bundle, last error.

    Ages and timestamps move on their own and are left to the periodic report.
    """
    error = status.get("last_error") or {}
    return (status.get("state"), status.get("ready"), status.get("revision"),
            status.get("sequence"), error.get("reason"), error.get("at"))


class StatusReporter:
    """POSTs ``status()`` to ``url`` on every change and every ``interval`` seconds.

    ``status`` is normally ``engine.status``; ``registry`` receives
    ``pdp_status_reports_total{result}`` (``success`` or a failure reason, per attempt).
    Call :meth:`start` on the running loop and ``await`` :meth:`stop` on shutdown. Raises
    ``ValueError`` for a URL that is not http(s) or a non-positive period, timeout or attempts.
    """

    def __init__(self, url: str, status: Callable[[], dict[str, Any]], *,
                 registry: CollectorRegistry, token_file: Path | None = None,
                 ca_file: Path | None = None, interval: float = 10.0,
                 check_interval: float = 0.2, timeout: float = 2.0, max_attempts: int = 3,
                 backoff: Backoff = REPORT_BACKOFF,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        intake_url(url)
        if interval <= 0 or check_interval <= 0 or timeout <= 0 or max_attempts < 1:
            raise ValueError("interval, check_interval and timeout must be positive and "
                             "max_attempts at least 1")
        self.url = url
        self._status = status
        self._token_file = token_file
        self._ca_file = ca_file
        self._interval = interval
        self._check_interval = check_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._reports = Counter("pdp_status_reports", "Status report POSTs by result "
                                "(success or the failure reason).", ["result"],
                                registry=registry)
        self._failures = FailureLog("status report", monotonic=monotonic)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reporting in the background on the running loop (the first report goes now)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="status-report")

    async def stop(self) -> None:
        """Stop reporting; a report in flight is abandoned (its timeout is short anyway)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        reported: tuple[object, ...] | None = None
        due = self._monotonic()
        connector = aiohttp.TCPConnector(ssl=ssl_context(self._ca_file) or True)
        async with aiohttp.ClientSession(connector=connector, timeout=self._timeout) as session:
            while not self._stopping.is_set():
                try:
                    key = change_key(self._status())
                    if key != reported or self._monotonic() >= due:
                        # Remembered whether or not delivery worked: a down control plane is
                        # tried again at the next change or period, not hammered every check.
                        reported = await self._deliver(session)
                        due = self._monotonic() + self._interval
                except Exception:
                    # A bug in one round must not end status reporting for the process's life,
                    # nor log a traceback at every check: the next try is a period away.
                    logger.exception("status reporting round failed")
                    due = self._monotonic() + self._interval
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self._interval)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._check_interval)

    async def _deliver(self, session: aiohttp.ClientSession) -> tuple[object, ...]:
        """Try the latest status up to ``max_attempts`` times; the key of the last one sent."""
        attempt = 0
        while True:
            attempt += 1
            status = self._status()
            failure = await self._post(session, status)
            if failure is None:
                self._reports.labels("success").inc()
                self._failures.succeeded()
                return change_key(status)
            self._reports.labels(failure.reason).inc()
            self._failures.failed(failure)
            if failure.kind != "transient" or attempt >= self._max_attempts:
                return change_key(status)
            await asyncio.sleep(self._backoff.delay(attempt, self._rng))

    async def _post(self, session: aiohttp.ClientSession,
                    status: dict[str, Any]) -> PostFailure | None:
        headers = await asyncio.to_thread(bearer_headers, self._token_file)
        if isinstance(headers, PostFailure):
            return headers
        report = {**status, "reported_at": iso(self._clock())}
        try:
            # A redirect would turn the POST into a GET elsewhere: report the 3xx instead.
            async with session.post(self.url, json=report, headers=headers,
                                    allow_redirects=False) as response:
                if 200 <= response.status < 300:
                    return None
                return failure_for_status(self.url, response.status, response.reason or "")
        except TimeoutError:
            return PostFailure("timeout", f"{public_url(self.url)}: no answer within "
                               f"{self._timeout.total} s", "transient")
        except aiohttp.ClientError as exc:
            return PostFailure("unreachable",
                               f"{public_url(self.url)}: {without_url_secrets(str(exc))}",
                               "transient")
