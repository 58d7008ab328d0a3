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
from collections import deque
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
    # Whole runs of digit groups: the card may be any span of groups inside one (see _card).
    "credit_card": r"\b\d(?:[ -]?\d){12,}\b",
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


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a digit's Luhn value when doubled


def _card(match: Any) -> bool:
    """Whether a run of digit groups holds a card: a span of whole groups with 13-19 digits that
    passes Luhn. A card sits next to other numbers ("4111 1111 1111 1111 12/25", "qty 2 4111..."),
    so every such span counts, not just the whole run; spans never split a group, or any long
    number would hold a Luhn-valid stretch by chance."""
    run = match.group(0)
    digits = run.replace(" ", "").replace("-", "")
    if len(digits) <= 19 and luhn_valid(digits):
        return True
    return len(digits) != len(run) and _card_in_groups(run)


def _card_in_groups(run: str) -> bool:
    # One pass, O(1) per digit and per group boundary, so a megabyte of digit groups stays fast.
    # ``even`` and ``odd`` are running sums of the Luhn values with the even-indexed, respectively
    # odd-indexed, digits doubled. A span's last digit is never doubled, so the checksum of the
    # span between boundaries s and e is a difference of the sums of e's parity, and it passes
    # when both ends leave the same remainder mod 10. For each remainder, ``latest_*`` holds the
    # latest boundary at least 13 digits back; the span from it is the shortest candidate, so it
    # is within 19 digits if any is.
    pending: deque[tuple[int, int, int]] = deque([(0, 0, 0)])  # (digits before, even, odd)
    latest_even: dict[int, int] = {}
    latest_odd: dict[int, int] = {}
    count = even = odd = 0
    for char in run + " ":
        if char != " " and char != "-":
            value = ord(char) - 48
            if count & 1:
                even, odd = even + value, odd + _DOUBLED[value]
            else:
                even, odd = even + _DOUBLED[value], odd + value
            count += 1
            continue
        while pending and pending[0][0] <= count - 13:
            offset, even_then, odd_then = pending.popleft()
            latest_even[even_then % 10] = offset
            latest_odd[odd_then % 10] = offset
        start = latest_odd.get(odd % 10) if count & 1 else latest_even.get(even % 10)
        if start is not None and start >= count - 19:
            return True
        pending.append((count, even, odd))
    return False


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


# Blocked terms treat i, I, U+0130 (dotted capital I) and U+0131 (dotless small i) as one
# letter. Turkish pairs them as i/U+0130 and U+0131/I, other languages as i/I, and RE2's case
# folding knows only i/I: Unicode folds U+0130 to "i" + U+0307 (two characters, which RE2 never
# matches against one) and U+0131 to nothing. So "İstanbul" would match only itself, and
# lowercasing it first (Python writes "i" + U+0307) almost nothing. A blocklist had better match
# every spelling, so each becomes this class, followed by the combining dot that lower() and
# NFD write after an i.
_ANY_I = r"[iIİı]\x{307}?"


def _term_pattern(term: str) -> str:
    """``term`` as a literal RE2 pattern, with every form of the letter i made one class."""
    escaped = re2.escape(term)  # escapes ASCII punctuation only, and no escape holds an i
    escaped = escaped.replace("i\u0307", "i").replace("I\u0307", "i")
    return "".join(_ANY_I if char in "iIİı" else char for char in escaped)


def _fold(text: str) -> str:
    """A key under which a term and every text its pattern matches agree."""
    return text.casefold().replace("i\u0307", "i").replace("ı", "i")


def _term_name(term: str) -> str:
    """How a violation names a term: lowercased, with İ read as i (not i + U+0307)."""
    return term.lower().replace("i\u0307", "i")


def term_finder(terms: tuple[str, ...]) -> Callable[[str], list[str]]:
    """Which of ``terms`` occur in a text, case-insensitively, in one linear RE2 pass.

    One alternation instead of a substring search per term: the cost stays linear in the text
    however many terms a policy blocks. Terms are not lowercased first but left to RE2's (?i),
    which folds both sides alike. Returns the terms found, lowercased, first seen first; where
    terms overlap (``drop`` and ``drop table``) the longest one at a position is named.
    """
    names: dict[str, str] = {}
    for term in terms:
        names.setdefault(_fold(term), _term_name(term))
    finditer = compile_re2("|".join(_term_pattern(term) for term in terms), ignore_case=True,
                           longest_match=True).finditer

    def find(text: str) -> list[str]:
        try:
            found = [match.group(0) for match in finditer(text)]
        except UnicodeEncodeError:
            found = [match.group(0) for match in finditer(utf8_safe(text))]
        return list(dict.fromkeys(names.get(_fold(hit)) or _term_name(hit) for hit in found))

    return find
