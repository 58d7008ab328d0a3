"""`pdp run`: the sidecar (DESIGN §8.5).

Every option of :class:`~pdp.sidecar.settings.RunSettings` is a flag here. Flags default to
"not given" so that a config file and ``PDP_*`` variables are overridden only by what the user
actually typed; ``--help`` still shows each option's effective default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pdp.cli.main import EXIT_USAGE

# Options given once per value (`--verification-key a.pem --verification-key keys/`).
_REPEATABLE = {"verification_key", "revoked_key_ids", "decision_log_mask", "labels"}
_METAVARS = {
    "bundle": "PATH",
    "bundle_url": "URL",
    "bundle_token_file": "FILE",
    "bundle_ca_file": "FILE",
    "verification_key": "PATH",
    "revoked_key_ids": "KID",
    "http_addr": "HOST:PORT",
    "grpc_addr": "HOST:PORT",
    "persist_dir": "DIR",
    "watch_debounce_ms": "MS",
    "max_bundle_age": "SECONDS",
    "decision_log": "SINK",
    "decision_log_mask": "POINTER",
    "max_body_bytes": "BYTES",
    "shutdown_grace": "SECONDS",
    "control_url": "URL",
    "status_interval": "SECONDS",
    "instance_id": "ID",
    "labels": "KEY=VALUE",
}
# Flags whose name is the singular of their field (given once per value).
_FLAG_NAMES = {"revoked_key_ids": "--revoked-key-id", "labels": "--label"}


def _flag_name(field: str) -> str:
    return _FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def _help_text(description: str, default: Any) -> str:
    shown = "none" if default in (None, [], {}, "") else default
    return f"{description} (default: {shown})"


def register(subparsers: Any) -> None:
    """Add the ``run`` command to the ``pdp`` parser."""
    # Imported here so `pdp --help` does not pay for the settings model.
    from pdp.sidecar.settings import RunSettings

    parser = subparsers.add_parser(
        "run",
        help="run the sidecar: HTTP and gRPC decisions from signed bundles",
        description=(
            "Serve decisions from a signed bundle over HTTP and gRPC. Options come from --config "
            "FILE (YAML, keys are the option names with underscores), then PDP_<OPTION> "
            "environment variables (e.g. PDP_HTTP_ADDR), then these flags."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="YAML file of options (default: $PDP_CONFIG, else none)",
    )
    for name, field in RunSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        help_text = _help_text(field.description or name, default)
        if name in _FLAG_NAMES:  # the flag is singular and repeated; the option is a list
            help_text += f"; {name} in a config file, PDP_{name.upper()} in the environment"
        if field.annotation is bool:  # a yes/no option is a switch: present means true
            parser.add_argument(
                _flag_name(name),
                dest=name,
                action="store_true",
                default=argparse.SUPPRESS,
                help=help_text,
            )
        elif get_origin(field.annotation) is Literal:
            parser.add_argument(
                _flag_name(name),
                dest=name,
                choices=get_args(field.annotation),
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(
                _flag_name(name),
                dest=name,
                metavar=_METAVARS.get(name, name.upper()),
                action="append" if name in _REPEATABLE else "store",
                default=argparse.SUPPRESS,
                help=help_text,
            )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Parse the layered settings once, then run the sidecar until it is told to stop."""
    from pdp.sidecar.errors import ConfigError, StartupError
    from pdp.sidecar.process import run_sidecar
    from pdp.sidecar.settings import load_settings

    flags = {k: v for k, v in vars(args).items() if k not in {"func", "command", "config"}}
    try:
        settings = load_settings(flags, getattr(args, "config", None))
    except ConfigError as exc:
        print(f"pdp run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run_sidecar(settings)
    except ConfigError as exc:
        print(f"pdp run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as exc:
        print(f"pdp run: {exc}", file=sys.stderr)
        return 1
