"""TEST ONLY: make a publish sleep at a named point, so a test can kill the process right there.

The fault-injection tests (tests/fleet/test_crash.py) SIGKILL a control plane in the middle of a
publish and prove that no partial bundle is ever served. To hit "the middle" deterministically,
``pdp control`` reads ``PDP_TEST_PUBLISH_PAUSE=POINT:SECONDS`` from its environment (and only
there: it is not a setting, and nothing else reads it) and the publisher sleeps at that point:

- ``after_lock``: the publish lock is held and the next sequence chosen; nothing is written yet;
- ``draft_read``: the policies are read, the data and tests not yet (inside the draft snapshot);
- ``before_commit``: the bundle row and its NOTIFY are written, the transaction is still open;
- ``after_commit``: committed (the NOTIFY is delivered), the answer not yet sent.

Never set it in production: a paused publish holds the publish lock, blocking every other
publisher for the pause.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pdp.control.errors import ConfigurationError

ENV_VAR = "PDP_TEST_PUBLISH_PAUSE"
POINTS = ("after_lock", "draft_read", "before_commit", "after_commit")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishPause:
    """Sleep `seconds` when a publish reaches `point` (one of :data:`POINTS`)."""

    point: str
    seconds: float

    @classmethod
    def parse(cls, text: str) -> PublishPause:
        """``POINT:SECONDS``, e.g. ``before_commit:30``; ConfigurationError names what is wrong."""
        point, _, seconds = text.partition(":")
        if point not in POINTS:
            raise ConfigurationError(
                f"{ENV_VAR}={text!r}: the point must be one of {', '.join(POINTS)}")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not 0 < value <= 3600:
            raise ConfigurationError(
                f"{ENV_VAR}={text!r}: expected POINT:SECONDS with 0 < SECONDS <= 3600")
        return cls(point, value)

    async def reached(self, point: str, sequence: int) -> None:
        """Called by the publisher at each point; sleeps at the configured one."""
        if point != self.point:
            return
        # Tests wait for this exact line before they kill the process.
        log.warning("test publish pause", extra={"point": point, "sequence": sequence,
                                                 "seconds": self.seconds})
        await asyncio.sleep(self.seconds)
