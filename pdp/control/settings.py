"""Every option of `pdp control`, parsed once at the entry point and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pdp.control.errors import ConfigurationError
from pdp.sidecar.options import gather_options
from pdp.sidecar.settings import ListenAddress, LogLevel, parse_listen_address

ONE_MIB = 1024 * 1024


DATABASE_TIMEOUT_SECONDS = 30.0
"""The default bound on one database statement (``database_timeout``)."""

class ControlSettings(BaseModel):
    """Options of the control-plane process: a YAML file, then ``PDP_*`` environment variables,
    then flags (see :func:`load_control_settings`); the field descriptions are the `--help` text."""

    # No inf or nan: every number here is a duration or size that must be finite (and an inf
    # would also reach the JSON logs, which cannot carry it).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    database_url: str = Field(description="PostgreSQL DSN, e.g. postgresql://user@host/db")
    signing_key: Path = Field(description="private key that signs published bundles")
    key_id: str = Field(description="key id written into each bundle's signature (kid)")
    http_addr: str = Field(default="127.0.0.1:8282", description="admin API and bundle server")
    grpc_addr: str = Field(default="127.0.0.1:50052", description="PolicyEngineService (gRPC)")
    bundle_dir: Path | None = Field(
        default=None, description="also write each published bundle atomically into this directory"
    )
    seed_dir: Path | None = Field(
        default=None,
        description="bundle source seeding an empty database (default: the built-in bundle)",
    )
    max_wait_seconds: float = Field(
        default=60.0, gt=0, le=600, description="longest `Prefer: wait=N` a bundle request is held"
    )
    recheck_seconds: float = Field(
        default=2.0, gt=0, description="how often each replica re-checks the latest bundle"
    )
    max_body_bytes: int = Field(
        default=ONE_MIB, ge=1024, description="largest accepted HTTP request body in bytes"
    )
    decision_log_retention_seconds: float = Field(
        default=7 * 24 * 3600, gt=0, description="how long uploaded decision events are kept"
    )
    sidecar_expiry: float = Field(
        default=300, gt=0,
        description="seconds after its last status report a sidecar is deleted from the fleet",
    )
    database_timeout: float = Field(
        default=DATABASE_TIMEOUT_SECONDS, gt=0, le=3600,
        description="seconds one database statement may take, lock waits included, before "
        "the request answers 503",
    )
    pool_size: int = Field(
        default=10, ge=2, le=100, description="PostgreSQL connections per replica"
    )
    log_level: LogLevel = Field(default="info", description="least severe log level written")

    @field_validator("signing_key", "bundle_dir", "seed_dir", mode="before")
    @classmethod
    def _non_empty_path(cls, value: object) -> object:
        # Path("") is the current directory: an empty PDP_BUNDLE_DIR (a template's unset
        # variable) silently wrote main.tar.gz wherever the process happened to run.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("http_addr", "grpc_addr")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        parse_listen_address(value)
        return value

    @property
    def http_listen(self) -> ListenAddress:
        """The HTTP listen address."""
        return parse_listen_address(self.http_addr)

    @property
    def grpc_listen(self) -> ListenAddress:
        """The gRPC listen address."""
        return parse_listen_address(self.grpc_addr)


def load_control_settings(flags: Mapping[str, Any],
                          config_file: Path | None = None) -> ControlSettings:
    """Settings from `config_file` (YAML; else the file named by ``PDP_CONFIG``, as for `pdp
    run`), then ``PDP_*`` variables, then flags (None = not given); a later layer wins.
    ConfigurationError names each bad option, and the variable or file it came from."""
    given = {name: value for name, value in flags.items() if value is not None}
    layered = gather_options(ControlSettings, given, config_file=config_file,
                             environ=os.environ, error=ConfigurationError)
    try:
        return ControlSettings(**layered.values)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, layered.sources)) from None


def _describe(error: ValidationError, sources: Mapping[str, str]) -> str:
    parts = []
    for err in error.errors():
        option = f"--{'.'.join(str(p) for p in err['loc']).replace('_', '-')}"
        # The flag's name alone sent operators looking for a flag nobody typed: a value from
        # PDP_* or the config file is named by where it came from.
        source = sources.get(str(err["loc"][0])) if err["loc"] else None
        if source is not None:
            option += f" (from {source})"
        parts.append(f"{option}: {err['msg']}")
    return "; ".join(parts)
