"""`RateCounter`: bounded in-memory fixed-window counters for the core's rate_limiting policies.

Counters are per sidecar (DESIGN §4.3). Each (key, window length) pair holds the start of its
current window and a count; a request in a later window starts a new count. The number of pairs
is bounded: beyond ``max_keys`` the least recently used pair is forgotten, so a flood of distinct
consumers costs bounded memory (a forgotten consumer simply starts a fresh window).
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class RateCounter:
    """Fixed-window request counters with an LRU bound on keys; safe to share between threads.

    Implements the ``pdp.core.RateCounter`` protocol.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        # (key, window_seconds) -> [window_start, count]; a list so a hit updates in place.
        self._windows: OrderedDict[tuple[str, int], list[float]] = OrderedDict()
        # One short lock: gRPC worker threads and the event loop may decide at the same time.
        self._lock = threading.Lock()

    def hit(self, key: str, window_seconds: int, now: float) -> int:
        """Count one request in the window containing ``now``; return the count including it."""
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        start = float(int(now // window_seconds) * window_seconds)
        slot = (key, window_seconds)
        with self._lock:
            entry = self._windows.get(slot)
            if entry is None:
                entry = self._windows[slot] = [start, 0.0]
                if len(self._windows) > self._max_keys:
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(slot)
                # A clock that steps back stays in the newer window rather than resetting it.
                if start > entry[0]:
                    entry[0], entry[1] = start, 0.0
            entry[1] += 1
            return int(entry[1])

    def __len__(self) -> int:
        """How many (key, window) counters are held."""
        return len(self._windows)
