"""`pdp control` (run a control-plane replica) and `pdp control create-token` (DESIGN §8.5).

Exit codes: 0 success, 1 the database or the signing key refused (unreachable, unusable),
2 a usage error (missing or invalid option).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import typing
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _flag_type(annotation: Any) -> Any:
    """The argparse type of a settings field: float, int or str.

    Paths stay text for the settings to check: argparse's ``Path("")`` is ``.``, so an empty
    ``--bundle-dir ""`` could not be told from the current directory.
    """
    members = typing.get_args(annotation) or (annotation,)
    for kind in (float, int):
        if kind in members:
            return kind
    return str


def _help(description: str, default: Any) -> str:
    if default is None:
        return description
    return f"{description} (default {default})"


def register(subparsers: Any) -> None:
    """Add ``control`` and ``control create-token`` to the ``pdp`` parser."""
    from pdp.control.settings import ControlSettings

    parser = subparsers.add_parser(
        "control",
        help="run the control plane (PostgreSQL, admin API, bundle server)",
        description="Run a control-plane replica. Options come from --config FILE (YAML), then "
                    "PDP_<OPTION> environment variables (e.g. PDP_DATABASE_URL), then flags.",
    )
    # Every option of ControlSettings is a flag; its description is the help text.
    for name, field in ControlSettings.model_fields.items():
        metavar = "DSN" if name == "database_url" else None
        choices = typing.get_args(field.annotation) \
            if typing.get_origin(field.annotation) is typing.Literal else None
        parser.add_argument("--" + name.replace("_", "-"), dest=name, metavar=metavar,
                            type=_flag_type(field.annotation), choices=choices,
                            help=_help(field.description or name,
                                       None if field.is_required() else field.default))
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="YAML file of options (keys are option names with underscores; "
                             "default: $PDP_CONFIG, else none)")
    parser.set_defaults(func=run_control)
    commands = parser.add_subparsers(dest="control_command", metavar="COMMAND")
    create = commands.add_parser(
        "create-token", help="create an API token and print it once",
        description="Create a bearer token for the admin API or a sidecar. Applies pending "
                    "migrations first. The token is printed once; only its hash is stored.",
    )
    # SUPPRESS keeps a --database-url given before `create-token` from being reset to None.
    create.add_argument("--database-url", dest="database_url", metavar="DSN",
                        default=argparse.SUPPRESS,
                        help="PostgreSQL DSN (default: $PDP_DATABASE_URL)")
    create.add_argument("--role", required=True,
                        choices=("admin", "editor", "publisher", "viewer", "sidecar"))
    create.add_argument("--name", help="a label for the token (default: the role)")
    create.add_argument("--json", action="store_true", help="print the token record as JSON")
    create.set_defaults(func=create_token_command)


def _database_url(args: argparse.Namespace) -> str | None:
    url: str | None = args.database_url or os.environ.get("PDP_DATABASE_URL")
    return url


def run_control(args: argparse.Namespace) -> int:
    """`pdp control`: serve until SIGTERM/SIGINT."""
    from pdp.control.errors import ConfigurationError, ControlError
    from pdp.control.publish_pause import ENV_VAR, PublishPause
    from pdp.control.server import serve_until_signalled
    from pdp.control.settings import ControlSettings, load_control_settings
    from pdp.runtime import configure_process_logging

    flags = {name: getattr(args, name) for name in ControlSettings.model_fields}
    try:
        settings = load_control_settings(flags, args.config)
        seed_dir = _seed_dir(settings.seed_dir)
        if settings.bundle_dir is not None and settings.bundle_dir.exists() \
                and not settings.bundle_dir.is_dir():
            # Every write would fail and be retried at each re-check, an error logged every
            # few seconds for ever; a typo'd path is caught here instead.
            raise ConfigurationError(f"--bundle-dir {settings.bundle_dir}: not a directory")
        # Test-only fault injection (see pdp.control.publish_pause); never set in production.
        pause_text = os.environ.get(ENV_VAR)
        pause = PublishPause.parse(pause_text) if pause_text else None
    except ConfigurationError as exc:
        print(f"pdp control: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_process_logging(settings.log_level.upper())
    try:
        asyncio.run(serve_until_signalled(settings, seed_dir=seed_dir, publish_pause=pause))
    except ConfigurationError as exc:
        print(f"pdp control: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ControlError as exc:
        print(f"pdp control: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _seed_dir(given: Path | None) -> Path | None:
    from pdp.control.errors import ConfigurationError
    from pdp.sidecar.dev import builtin_bundle_source
    from pdp.sidecar.errors import StartupError

    if given is not None:
        if not (given / "policies").is_dir():
            raise ConfigurationError(f"--seed-dir {given}: not a bundle source (no policies/)")
        return given
    try:
        return builtin_bundle_source(os.environ)
    except StartupError as exc:
        print(f"pdp control: not seeding an empty database: {exc}", file=sys.stderr)
        return None


def create_token_command(args: argparse.Namespace) -> int:
    """`pdp control create-token`: print a new token once."""
    from pdp.control.auth import Role
    from pdp.control.errors import ConfigurationError, ControlError
    from pdp.control.plane import create_token

    url = _database_url(args)
    if not url:
        print("pdp control create-token: --database-url (or PDP_DATABASE_URL) is required",
              file=sys.stderr)
        return EXIT_USAGE
    role = Role(args.role)
    try:
        token, record = asyncio.run(create_token(url, role=role, name=args.name or role.value))
    except ConfigurationError as exc:
        print(f"pdp control create-token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ControlError as exc:
        print(f"pdp control create-token: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        import json

        print(json.dumps({**record.to_json(), "token": token}, indent=2))
    else:
        print(token)
        print(f"created token {record.id} ({record.name}, role {record.role}); it is shown only "
              "this once", file=sys.stderr)
    return EXIT_OK
