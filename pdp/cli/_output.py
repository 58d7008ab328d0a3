"""Printing for the offline commands: refusals people can act on, summaries, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from pdp.bundle import BundleError


class Refused(Exception):
    """An input the command itself refuses (unreadable --input, bad SOURCE_DATE_EPOCH...)."""


def refusal(command: str, error: BundleError, *, stream: TextIO | None = None) -> None:
    """Print why ``command`` refused its input: the message (file and check) and reason code."""
    out = stream if stream is not None else sys.stderr
    print(f"pdp {command}: refused: {error} [{error.reason}]", file=out)


def failure(command: str, message: str, *, stream: TextIO | None = None) -> None:
    """Print a refusal that did not come from the bundle layer (bad input file, bad JSON)."""
    print(f"pdp {command}: refused: {message}", file=stream if stream is not None else sys.stderr)


def print_json(value: object, *, stream: TextIO | None = None) -> None:
    """Print ``value`` as indented JSON (the same document the HTTP API returns)."""
    out = stream if stream is not None else sys.stdout
    json.dump(value, out, indent=2, ensure_ascii=False)
    out.write("\n")


def print_fields(rows: Sequence[tuple[str, object]], *, stream: TextIO | None = None) -> None:
    """Print ``label: value`` lines with the values aligned."""
    out = stream if stream is not None else sys.stdout
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        print(f"  {label + ':':<{width + 1}} {value}", file=out)


def print_files(files: Sequence[Mapping[str, Any]], *, stream: TextIO | None = None) -> None:
    """Print a bundle's file table: size, SHA-256 prefix, name."""
    out = stream if stream is not None else sys.stdout
    for entry in files:
        print(f"  {entry['size']:>10}  {entry['sha256'][:16]}  {entry['name']}", file=out)
