"""`RateCounter`: fixed windows per key, bounded memory (DESIGN §4.3)."""

from __future__ import annotations

import threading

import pytest

from pdp.runtime import RateCounter


def test_hits_in_one_window_are_counted() -> None:
    """Each hit in the same window returns the running count including it."""
    counter = RateCounter()
    assert [counter.hit("alice", 60, 1000.0 + i) for i in range(3)] == [1, 2, 3]


def test_a_new_window_starts_from_one() -> None:
    """Crossing the window boundary resets the count."""
    counter = RateCounter()
    counter.hit("alice", 60, 1019.0)
    counter.hit("alice", 60, 1019.5)
    assert counter.hit("alice", 60, 1020.0) == 1  # 1020 is a multiple of 60: a new window


def test_windows_are_aligned_to_their_length() -> None:
    """Windows are fixed (aligned to multiples of their length), not sliding."""
    counter = RateCounter()
    assert counter.hit("alice", 60, 1079.0) == 1
    assert counter.hit("alice", 60, 1079.9) == 2


def test_keys_and_window_lengths_count_separately() -> None:
    """Different consumers, and a minute versus an hour window, never share a count."""
    counter = RateCounter()
    counter.hit("alice", 60, 1000.0)
    assert counter.hit("bob", 60, 1000.0) == 1
    assert counter.hit("alice", 3600, 1000.0) == 1
    assert counter.hit("alice", 60, 1000.0) == 2


def test_a_clock_step_back_does_not_reset_the_window() -> None:
    """A wall clock stepping back stays in the newer window instead of granting a fresh one."""
    counter = RateCounter()
    counter.hit("alice", 60, 1100.0)
    assert counter.hit("alice", 60, 1030.0) == 2


def test_the_number_of_keys_is_bounded_least_recently_used_first() -> None:
    """Beyond max_keys the least recently used counter is forgotten, the busy ones kept."""
    counter = RateCounter(max_keys=2)
    counter.hit("a", 60, 0.0)
    counter.hit("b", 60, 0.0)
    counter.hit("a", 60, 1.0)          # a is now the most recently used
    counter.hit("c", 60, 2.0)          # evicts b
    assert len(counter) == 2
    assert counter.hit("a", 60, 3.0) == 3
    assert counter.hit("b", 60, 3.0) == 1


def test_concurrent_hits_are_all_counted() -> None:
    """Hits from many threads at once are neither lost nor double counted."""
    counter = RateCounter()

    def hammer() -> None:
        for _ in range(1000):
            counter.hit("shared", 3600, 10.0)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.hit("shared", 3600, 10.0) == 8001


@pytest.mark.parametrize("bad", [0, -60])
def test_a_window_must_be_positive(bad: int) -> None:
    """A zero or negative window is a programming error, reported clearly."""
    with pytest.raises(ValueError, match="window_seconds"):
        RateCounter().hit("alice", bad, 0.0)
