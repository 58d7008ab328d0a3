"""Dotted field paths into JSON documents, read without ever raising.

``make_getter(("compliance", "level"))`` returns a function that walks dicts by key and lists by
index and yields ``MISSING`` as soon as a step does not exist or has the wrong type. Getters for
the common one- and two-segment paths are specialised because they run on every decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

Getter = Callable[[Any], Any]


class _Missing:
    """The type of ``MISSING``: a field that is absent from the input."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


def split_path(field: str) -> tuple[str, ...]:
    """Split ``a.b.0`` into its segments; an empty segment is a ``ValueError``."""
    segments = tuple(field.split("."))
    if any(not segment for segment in segments):
        raise ValueError(f"field path {field!r} has an empty segment")
    return segments


def make_getter(path: tuple[str, ...]) -> Getter:
    """Return a function reading ``path`` from a document, or ``MISSING``."""
    if len(path) == 0:
        return lambda doc: doc
    if len(path) == 1:
        (key,) = path
        return lambda doc: doc.get(key, MISSING) if type(doc) is dict else MISSING
    if len(path) == 2 and not any(segment.isdigit() for segment in path):
        first, second = path

        def get_two(doc: Any) -> Any:
            if type(doc) is not dict:
                return MISSING
            inner = doc.get(first)
            return inner.get(second, MISSING) if type(inner) is dict else MISSING

        return get_two

    steps = tuple((segment, int(segment) if segment.isdigit() else None) for segment in path)

    def get(doc: Any) -> Any:
        current = doc
        for key, index in steps:
            if type(current) is dict:
                current = current.get(key, MISSING)
                if current is MISSING:
                    return MISSING
            elif type(current) is list and index is not None and index < len(current):
                current = current[index]
            else:
                return MISSING
        return current

    return get
