"""`HttpSource`: ``--bundle-url``, the control plane's bundle server, long-polled (DESIGN §7.1).

Each request carries ``If-None-Match`` with the ETag last delivered and ``Prefer: wait=N``, so the
server holds it until a newer bundle is published (or N seconds pass, then 304). A server that does
not honour the preference (no ``Preference-Applied`` on its 304) is polled instead, every
``poll_interval`` seconds with jitter. Failures are yielded as :class:`SourceError` values and
retried after an exponential backoff with jitter (100 ms, times 1.6 per failure, capped) so a
fleet does not reconnect in lock-step after an outage. The bearer token file is read again for every
request, so a rotated token is picked up without a restart. ``request_sync()`` interrupts a waiting
long-poll and fetches at once.

Messages name the URL without its query and fragment (:func:`public_url`): a signed URL
(``?X-Amz-Signature=...``) carries its credential there, and these messages reach the log, the
``/v1/status`` document and the control plane's fleet view. An error answer's JSON ``message``
(the control plane's ``{"code", "message"}``) is added to the error, bounded and cleaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import ssl
import unicodedata
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiohttp

from pdp.runtime.credentials import TokenFileError, read_bearer_token, ssl_context
from pdp.runtime.errors import SourceError
from pdp.runtime.logs import public_url as public_url  # re-exported for the other clients
from pdp.runtime.source import BundleUnchanged, BundleUpdate, SourceEvent

_T = TypeVar("_T")

# An error answer's body is read this far for its message; the message is shown this long.
_MAX_ERROR_BODY_BYTES = 4096
_MAX_ERROR_MESSAGE_CHARS = 200

# A URL's query or fragment inside free text, such as an aiohttp error quoting the URL it was
# fetching ("..., url='http://host/b?X-Amz-Signature=...'").
_URL_SECRETS = re.compile(r"(https?://[^\s?#'\"]*)[?#][^\s'\"]*")


def without_url_secrets(text: str) -> str:
    """``text`` with the query and fragment of every http(s) URL in it removed."""
    return _URL_SECRETS.sub(r"\1", text)


def error_message(body: bytes) -> str | None:
    """The ``message`` of a JSON error body, control characters removed and bounded, if any:
    a server's words are shown, never a terminal escape or a line break forging a log line."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested thousands deep
        return None
    message = document.get("message") if isinstance(document, dict) else None
    if not isinstance(message, str):
        return None
    cleaned = " ".join("".join(c if unicodedata.category(c)[0] != "C" else " "
                               for c in message).split())
    if len(cleaned) > _MAX_ERROR_MESSAGE_CHARS:
        cleaned = cleaned[:_MAX_ERROR_MESSAGE_CHARS - 3] + "..."
    return cleaned or None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: ``initial * factor^(n-1)``, capped, then jittered down to
    between half and all of it ("equal jitter")."""

    initial: float = 0.1
    factor: float = 1.6
    cap: float = 10.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the `failures`-th consecutive failure (1-based)."""
        ceiling = min(self.cap, self.initial * self.factor ** max(failures - 1, 0))
        return rng.uniform(ceiling / 2, ceiling)


class _Interrupted(Exception):
    """The wait was cut short by ``request_sync()`` or ``close()``."""


class HttpSource:
    """The bundle server at `url`, yielding one event per fetch outcome until closed."""

    def __init__(self, url: str, *, token_file: Path | None = None, ca_file: Path | None = None,
                 wait_seconds: float = 30.0, poll_interval: float = 10.0,
                 backoff: Backoff = Backoff(),
                 max_bundle_bytes: int = 256 * 1024 * 1024, rng: random.Random | None = None,
                 name: str = "http") -> None:
        self.url = url
        self.name = name
        self._token_file = token_file
        self._ca_file = ca_file
        self._wait_seconds = wait_seconds
        self._poll_interval = poll_interval
        self._backoff = backoff
        self._max_bundle_bytes = max_bundle_bytes
        self._rng = rng or random.Random()
        self._interrupt = asyncio.Event()
        self._sync_requested = False
        self._closed = False

    def request_sync(self) -> None:
        """Fetch now: cut a waiting long-poll or backoff short; never blocks."""
        self._sync_requested = True
        self._interrupt.set()

    async def close(self) -> None:
        """Stop fetching; :meth:`updates` then ends (an in-flight request is cancelled)."""
        self._closed = True
        self._interrupt.set()

    async def updates(self) -> AsyncGenerator[SourceEvent, None]:
        """Fetch the bundle now, then long-poll for newer ones until closed."""
        etag: str | None = None
        failures = 0
        wait = 0.0  # the first request asks for whatever is current, at once
        session: aiohttp.ClientSession | None = None
        try:
            while not self._closed:
                # A sync asked for while the consumer was busy (or during a pause) counts too.
                if self._sync_requested:
                    # The whole bundle, not "anything newer than what I have": the last one
                    # delivered may have been refused (say, signed by a key the keyring has
                    # gained since), and only a full answer lets activation try it again.
                    wait, etag = 0.0, None
                self._sync_requested = False
                self._interrupt.clear()
                event: SourceEvent
                held = False
                if session is None:
                    opened = self._open_session()
                    if isinstance(opened, SourceError):
                        event = opened
                    else:
                        session = opened
                if session is not None:
                    try:
                        event, held = await self._interruptible(self._fetch(session, etag, wait))
                    except _Interrupted:
                        continue
                yield event
                if isinstance(event, SourceError):
                    failures += 1
                    pause = self._backoff.delay(failures, self._rng)
                else:
                    failures = 0
                    if isinstance(event, BundleUpdate):
                        etag = event.etag
                    # An answer the server did not hold means it ignores `Prefer: wait`: poll
                    # instead. A 200 counts too: a plain file server without ETags sends the
                    # whole bundle again at once, every time.
                    unheld = wait > 0 and not held
                    pause = self._rng.uniform(0.8, 1.2) * self._poll_interval if unheld else 0.0
                # After a failure, ask at once whether the bundle is still current: a long poll
                # would leave the sidecar "last known good" for the whole wait (30 s) although
                # its bundle may be confirmed by the first answer.
                wait = 0.0 if isinstance(event, SourceError) else self._wait_seconds
                if pause > 0:
                    with contextlib.suppress(_Interrupted):
                        await self._interruptible(asyncio.sleep(pause))
        finally:
            if session is not None:
                await session.close()

    def _open_session(self) -> aiohttp.ClientSession | SourceError:
        """A session trusting the CA file, or why there is none. A CA file missing or broken now
        may be fixed later: it is reported and tried again like a failed fetch, rather than
        ending the source for the process's life."""
        try:
            connector = self._connector()
        except (OSError, ssl.SSLError) as exc:
            return SourceError(f"{public_url(self.url)}: cannot load the CA file "
                               f"{self._ca_file}: {exc}", reason="ca_unreadable",
                               source=self.name)
        return aiohttp.ClientSession(connector=connector)

    def _connector(self) -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(ssl=ssl_context(self._ca_file) or True)

    async def _interruptible(self, work: Awaitable[_T]) -> _T:
        task = asyncio.ensure_future(work)
        interrupt = asyncio.ensure_future(self._interrupt.wait())
        try:
            await asyncio.wait({task, interrupt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Also when the consumer's task is cancelled: never leave a request running behind.
            interrupt.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            raise _Interrupted
        return task.result()

    def _error(self, message: str, reason: str) -> tuple[SourceEvent, bool]:
        return (SourceError(f"{public_url(self.url)}: {without_url_secrets(message)}",
                            reason=reason, source=self.name), False)

    async def _fetch(self, session: aiohttp.ClientSession, etag: str | None,
                     wait: float) -> tuple[SourceEvent, bool]:
        headers = {"Accept": "application/vnd.openpolicyagent.bundles, application/gzip"}
        if self._token_file is not None:
            try:
                token = await asyncio.to_thread(read_bearer_token, self._token_file)
            except TokenFileError as exc:
                return self._error(str(exc), exc.reason)
            headers["Authorization"] = f"Bearer {token}"
        if etag is not None:
            headers["If-None-Match"] = etag
        if wait > 0:
            headers["Prefer"] = f"wait={int(wait)}"
        timeout = aiohttp.ClientTimeout(total=wait + 30.0, connect=10.0)
        try:
            async with session.get(self.url, headers=headers, timeout=timeout) as response:
                held = "Preference-Applied" in response.headers
                if response.status == 304:
                    return BundleUnchanged(etag=etag, source=self.name), held
                if response.status != 200:
                    problem = f"HTTP {response.status} {response.reason}"
                    if said := error_message(await _head(response, _MAX_ERROR_BODY_BYTES)):
                        problem = f"{problem}: {said}"
                    return self._error(problem, _reason_for_status(response.status))
                if (response.content_length or 0) > self._max_bundle_bytes:
                    return self._error(f"bundle of {response.content_length} bytes exceeds "
                                       f"{self._max_bundle_bytes}", "too_large")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > self._max_bundle_bytes:
                        return self._error(f"bundle exceeds {self._max_bundle_bytes} bytes",
                                           "too_large")
                return BundleUpdate(data=bytes(body), etag=response.headers.get("ETag"),
                                    source=self.name), held
        except TimeoutError:
            return self._error("request timed out", "timeout")
        except aiohttp.ClientError as exc:
            return self._error(f"request failed: {exc}", "unreachable")
        except ValueError as exc:
            # aiohttp refuses some requests before sending them (a header it cannot encode, a
            # URL's user:password beside a token). Its message may quote the header: not shown.
            return self._error(f"the HTTP client refused the request ({type(exc).__name__})",
                               "request_invalid")


async def _head(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body: enough for an error message, never a flood."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(limit):
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


def _reason_for_status(status: int) -> str:
    if status == 401:
        return "unauthorized"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not_found"
    return "server_error" if status >= 500 else "http_error"
