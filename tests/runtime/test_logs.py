"""JSON process logs: one event per line, structured fields, never a secret."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pdp.runtime import configure_logging
from pdp.runtime.logs import AcceptExhaustedFilter


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A pdp logger writing JSON into a buffer; restored afterwards."""
    stream = io.StringIO()
    handler = configure_logging(logging.INFO, stream, logger_name="pdp.test-logs")
    logger = logging.getLogger("pdp.test-logs")
    yield logger, stream
    logger.removeHandler(handler)


def test_each_record_is_one_json_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A record is one line of JSON with time, level, logger, message and its fields."""
    logger, stream = captured
    logger.info("bundle activated", extra={"revision": "42", "sequence": 42})
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["msg"] == "bundle activated"
    assert event["level"] == "info"
    assert event["logger"] == "pdp.test-logs"
    assert event["ts"].endswith("Z")
    assert (event["revision"], event["sequence"]) == ("42", 42)


def test_secret_looking_fields_are_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """Fields named like credentials never reach the log, even nested."""
    logger, stream = captured
    logger.info("request", extra={"bearer_token": "abc123", "headers": {
        "Authorization": "Bearer abc123", "accept": "json"}})
    text = stream.getvalue()
    assert "abc123" not in text
    event = json.loads(text)
    assert event["headers"]["accept"] == "json"


def test_multiline_messages_stay_on_one_line(
        captured: tuple[logging.Logger, io.StringIO]) -> None:
    """Exceptions and newlines are escaped, so one event is always one line."""
    logger, stream = captured
    try:
        raise ValueError("first\nsecond")
    except ValueError:
        logger.exception("failed\nbadly")
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert "ValueError" in event["exception"]
    assert event["msg"] == "failed\nbadly"


def test_unserialisable_fields_are_written_as_text(
        captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A field that is not JSON is logged as its text rather than breaking the line."""
    logger, stream = captured
    logger.info("odd", extra={"thing": object()})
    assert json.loads(stream.getvalue())["thing"].startswith("<object")


def test_a_process_logs_libraries_as_json_too() -> None:
    """Both entry points configure the process so that a library's warning (asyncpg's pool
    retrying, say, with a traceback) is one JSON line like pdp's own, not plain text."""
    program = (
        "import logging\n"
        "from pdp.runtime import configure_process_logging\n"
        "configure_process_logging('INFO')\n"
        "try:\n"
        "    raise ConnectionError('refused')\n"
        "except ConnectionError:\n"
        "    logging.getLogger('asyncpg.pool').warning('retrying', exc_info=True)\n"
        "logging.getLogger('pdp.x').info('ours')\n"
        "logging.getLogger('aiohttp.access').info('below warning: not shown')\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True)
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["logger"], e["msg"]) for e in events] == [("asyncpg.pool", "retrying"),
                                                        ("pdp.x", "ours")]


def test_a_process_logs_an_unparsable_request_as_one_warning_without_its_text() -> None:
    """Both servers' logs carry no header text from a request aiohttp could not parse (it may
    hold a token), and no traceback per hostile request: one warning naming peer and error."""
    program = (
        "import logging\n"
        "from aiohttp.http_exceptions import BadHttpMessage\n"
        "from pdp.runtime import configure_process_logging\n"
        "configure_process_logging('INFO')\n"
        "error = BadHttpMessage(\"b'Authorization: Bearer SECRET'\")\n"
        "logging.getLogger('aiohttp.server').exception(\n"
        "    'Error handling request from %s', '10.0.0.9', exc_info=error)\n"
        "logging.getLogger('aiohttp.server').error('other %s', 'kept')\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True)
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert "SECRET" not in result.stderr
    assert [(e["level"], e["msg"]) for e in events] == [
        ("warning", "refused a malformed HTTP request"), ("error", "other kept")]
    assert (events[0]["remote"], events[0]["error"]) == ("10.0.0.9", "BadHttpMessage")
    assert "exception" not in events[0]


def _accept_failure(logger: logging.Logger) -> None:
    """Log what asyncio's default exception handler logs when accept() finds no descriptor."""
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        logger.error("socket.accept() out of system resource\nsocket: <listener 127.0.0.1:8181>",
                     exc_info=True)


def test_a_listener_out_of_descriptors_is_logged_once_per_interval(
        captured: tuple[logging.Logger, io.StringIO]) -> None:
    """Out of file descriptors, the log gets one line per interval with a count, not a flood."""
    logger, stream = captured
    now = [100.0]
    logger.addFilter(AcceptExhaustedFilter(interval=10.0, clock=lambda: now[0]))
    for _ in range(1000):
        _accept_failure(logger)
    logger.error("another error")  # other records are untouched
    now[0] += 9.9
    _accept_failure(logger)
    now[0] += 0.1
    _accept_failure(logger)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["msg"], e.get("suppressed")) for e in events] == [
        ("cannot accept a connection: out of system resources", 0),
        ("another error", None),
        ("cannot accept a connection: out of system resources", 1000)]
    assert (events[0]["error"], events[0]["socket"]) == (
        "[Errno 24] Too many open files", "<listener 127.0.0.1:8181>")
    assert "exception" not in events[0]


def test_a_process_rate_limits_asyncio_accept_failures() -> None:
    """Both processes install the rate limit: asyncio's accept failures are one JSON line."""
    program = (
        "import asyncio\n"
        "from pdp.runtime import configure_process_logging\n"
        "configure_process_logging('INFO')\n"
        "async def main():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    context = {'message': 'socket.accept() out of system resource',\n"
        "               'exception': OSError(24, 'Too many open files')}\n"
        "    for _ in range(1000):\n"
        "        loop.call_exception_handler(context)\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True,
                            text=True, check=True)
    (event,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert (event["logger"], event["level"], event["error"]) == (
        "asyncio", "error", "[Errno 24] Too many open files")
