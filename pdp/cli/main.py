"""Entry point of the `pdp` command.

Each command group lives in its own module exposing ``register(subparsers)``; the module adds its
sub-commands and sets ``func`` on each parser. ``func(args)`` returns the exit code:
0 success, 1 a refused input (bad bundle, failed test), 2 a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pdp import __version__

# Imported lazily by name so that `pdp --help` stays fast and a command group's heavy
# dependencies (grpc, aiohttp, asyncpg) load only when that group runs.
COMMAND_MODULES: tuple[str, ...] = (
    "pdp.cli.offline",   # keygen, bundle build/verify/inspect, test, eval
    "pdp.cli.run",       # run (the sidecar)
    "pdp.cli.control",   # control, control create-token
    "pdp.cli.admin",     # admin (client of the control plane)
)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser from every available command module."""
    parser = argparse.ArgumentParser(
        prog="pdp",
        description="pdp: a policy decision point with signed bundles.",
    )
    parser.add_argument("--version", action="version", version=f"pdp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # the group is not part of this build yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `pdp` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
