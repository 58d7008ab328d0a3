"""Linear-time pattern matching (RE2) for admin-supplied patterns and the built-in detectors.

The detectors of ``data_classification`` (DESIGN §4.3) are RE2 scans for candidates plus a cheap
confirmation where the format allows one (Luhn for card numbers, reserved ranges for SSNs,
``ipaddress`` for addresses). Levels: email, phone and ip_address are ``internal``; credit_card,
ssn and secret are ``restricted``. Only whether a kind was found is returned, never the text.

Admin-supplied regular expressions never run on Python's backtracking ``re``: a pattern such as
``(a+)+$`` would take exponential time there. google-re2 matches in time linear in the input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import re2

MAX_PATTERN_LENGTH = 64 * 1024


def compile_re2(pattern: str, *, ignore_case: bool = False, longest_match: bool = False) -> Any:
    """Compile ``pattern`` with RE2; an invalid or unsupported pattern is a ``ValueError``."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"patterns are limited to {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    # RE2 logs every compile error to stderr by default; we report errors ourselves.
    options.log_errors = False
    options.case_sensitive = not ignore_case
    options.longest_match = longest_match
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


DETECTOR_LEVELS: dict[str, str] = {
    "email": "internal", "phone": "internal", "ip_address": "internal",
    "credit_card": "restricted", "ssn": "restricted", "secret": "restricted",
}

_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "phone": r"(?:\+\d{7,15}\b|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b)",
    "credit_card": r"\b\d(?:[ -]?\d){12,18}\b",
    "ssn": r"\b(\d{3})-(\d{2})-(\d{4})\b",
    "ip_address": r"(?:\b(?:\d{1,3}\.){3}\d{1,3}\b|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})",
    "secret": "|".join((
        r"\bAKIA[0-9A-Z]{16}\b",                                   # AWS access key id
        r"\bAIza[0-9A-Za-z_-]{35}",                                # Google API key
        r"\bsk-[A-Za-z0-9_-]{20,}",                                # OpenAI/Stripe-style keys
        r"\bgh[pousr]_[A-Za-z0-9]{36,}",                           # GitHub tokens
        r"\bxox[abprs]-[A-Za-z0-9-]{10,}",                         # Slack tokens
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"(?i:\b(?:api[_-]?key|secret|token|password|passwd)\b\s*[:=]\s*['\"]?"
        r"[A-Za-z0-9_/+=.-]{8,})",
    )),
}


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (13-19 of them for card numbers)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: Any) -> bool:
    digits = match.group(0).replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _ssn(match: Any) -> bool:
    area, group, serial = match.group(1), match.group(2), match.group(3)
    return (area not in ("000", "666") and not area.startswith("9") and group != "00"
            and serial != "0000")


def _ip(match: Any) -> bool:
    text = match.group(0)
    if not any(char.isalnum() for char in text):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_CONFIRM: dict[str, Callable[[Any], bool]] = {"credit_card": _card, "ssn": _ssn,
                                              "ip_address": _ip}


class Detectors:
    """The compiled detectors; build one per policy set (compiling RE2 takes milliseconds)."""

    __slots__ = ("_patterns",)

    def __init__(self) -> None:
        self._patterns = {name: compile_re2(pattern) for name, pattern in _PATTERNS.items()}

    def found(self, name: str, text: str) -> bool:
        """Whether ``text`` contains data of kind ``name``."""
        confirm = _CONFIRM.get(name)
        pattern = self._patterns[name]
        if confirm is None:
            return pattern.search(text) is not None
        return any(confirm(match) for match in pattern.finditer(text))


def term_finder(terms: tuple[str, ...]) -> Callable[[str], list[str]]:
    """Which of ``terms`` occur in a text, case-insensitively, in one linear RE2 pass.

    One alternation instead of a substring search per term: the cost stays linear in the text
    however many terms a policy blocks. Returns the terms found, lowercased, first seen first;
    where terms overlap (``drop`` and ``drop table``) the longest one at a position is named.
    """
    finditer = compile_re2("|".join(re2.escape(term) for term in terms), ignore_case=True,
                           longest_match=True).finditer

    def find(text: str) -> list[str]:
        try:
            found = [match.group(0) for match in finditer(text)]
        except UnicodeEncodeError:
            found = [match.group(0) for match in finditer(utf8_safe(text))]
        return list(dict.fromkeys(term.lower() for term in found))

    return find
