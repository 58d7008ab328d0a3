"""Linear-time pattern matching (RE2) for admin-supplied patterns and the built-in detectors.

Admin-supplied regular expressions never run on Python's backtracking ``re``: a pattern such as
``(a+)+$`` would take exponential time there. google-re2 matches in time linear in the input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

MAX_PATTERN_LENGTH = 64 * 1024


def compile_re2(pattern: str, *, ignore_case: bool = False) -> Any:
    """Compile ``pattern`` with RE2; an invalid or unsupported pattern is a ``ValueError``."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"patterns are limited to {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    # RE2 logs every compile error to stderr by default; we report errors ourselves.
    options.log_errors = False
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"invalid RE2 pattern {pattern!r}: {reason}") from None


def utf8_safe(text: str) -> str:
    """``text``, with lone surrogates (valid in JSON, not in UTF-8) replaced so RE2 can read it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def matcher(pattern: str, *, ignore_case: bool = False) -> Callable[[str], bool]:
    """A linear-time "does ``pattern`` occur in the text" test that never raises on odd text."""
    search = compile_re2(pattern, ignore_case=ignore_case).search

    def matches(text: str) -> bool:
        try:
            return search(text) is not None
        except UnicodeEncodeError:
            return search(utf8_safe(text)) is not None

    return matches
