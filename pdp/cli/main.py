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

# Which module registers each command, so that a command loads its own group alone: `pdp run`
# must not pay for the control plane's settings or the admin client (DESIGN §12, start-up).
COMMAND_HOMES: dict[str, str] = {
    "keygen": "pdp.cli.offline",
    "bundle": "pdp.cli.offline",
    "test": "pdp.cli.offline",
    "eval": "pdp.cli.offline",
    "run": "pdp.cli.run",
    "control": "pdp.cli.control",
    "admin": "pdp.cli.admin",
}

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def modules_for(argv: Sequence[str] | None) -> tuple[str, ...]:
    """The command modules to load for ``argv``: the named command's alone, else all of them.

    The top-level options (``--help``, ``--version``) take no value, so the first argument not
    starting with ``-`` is the command; without one, or with an unknown one, every group loads so
    that the help and the "invalid choice" error list every command.
    """
    command = next((arg for arg in argv or () if not arg.startswith("-")), None)
    home = COMMAND_HOMES.get(command or "")
    return (home,) if home in COMMAND_MODULES else COMMAND_MODULES


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser from the command modules ``argv`` needs (all without argv)."""
    parser = argparse.ArgumentParser(
        prog="pdp",
        description="pdp: a policy decision point with signed bundles.",
    )
    parser.add_argument("--version", action="version", version=f"pdp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules_for(argv) if argv is not None else COMMAND_MODULES:
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
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
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
