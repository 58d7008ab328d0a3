"""Printing for the commands: refusals people can act on, summaries, JSON, a closed stdout."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    # Annotation only: `pdp admin` uses this module too and must not load the bundle layer.
    from pdp.bundle import BundleError

# The status a shell reports for a command killed by SIGPIPE (128 + 13), as `cat` or `git log`
# get when the reader of their output (`| head -1`) exits first. Not 1: nothing was refused.
EXIT_STDOUT_CLOSED = 141


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


def ending_quietly_if_stdout_closes(command: Callable[[], int]) -> int:
    """Run ``command`` and return its exit code, or :data:`EXIT_STDOUT_CLOSED`, with no message,
    when the reader of stdout went away first (``pdp bundle inspect B --json | head -1``).

    The offline and admin commands (those whose output people pipe) all run through here, so a
    closed pipe is handled in this one place: it is not a refused input, and a traceback or
    "Broken pipe" message would only be noise. As the Python docs' note on SIGPIPE advises,
    SIGPIPE keeps Python's handling (restoring the default would also kill the admin client on a
    reset connection), stdout is flushed inside the ``try`` so a late failure is caught here too,
    and stdout is then pointed at /dev/null so the interpreter's own flush at exit does not fail
    again.
    """
    try:
        code = command()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_STDOUT_CLOSED
    return code
