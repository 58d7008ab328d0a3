"""Every option of `pdp control`, parsed once at the entry point and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pdp.control.errors import ConfigurationError
from pdp.sidecar.settings import ListenAddress, parse_listen_address

ONE_MIB = 1024 * 1024


class ControlSettings(BaseSettings):
    """Options of the control-plane process: a YAML file, then ``PDP_*`` environment variables,
    then flags (see :func:`load_control_settings`); the field descriptions are the `--help` text."""

    model_config = SettingsConfigDict(env_prefix="PDP_", extra="forbid", frozen=True)

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
    pool_size: int = Field(
        default=10, ge=2, le=100, description="PostgreSQL connections per replica"
    )

    @field_validator("http_addr", "grpc_addr")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        parse_listen_address(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_control_settings layers file, environment and flags itself; the model validates.
        return (init_settings,)

    @property
    def http_listen(self) -> ListenAddress:
        """The HTTP listen address."""
        return parse_listen_address(self.http_addr)

    @property
    def grpc_listen(self) -> ListenAddress:
        """The gRPC listen address."""
        return parse_listen_address(self.grpc_addr)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"config file {path} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f"config file {path} must map option names to values")
    unknown = sorted(str(key) for key in raw if key not in ControlSettings.model_fields)
    if unknown:
        raise ConfigurationError(f"config file {path}: unknown option(s): {', '.join(unknown)}")
    return {str(key): value for key, value in raw.items()}


def load_control_settings(flags: Mapping[str, Any],
                          config_file: Path | None = None) -> ControlSettings:
    """Settings from `config_file` (YAML), then ``PDP_*`` variables, then flags (None = not given);
    a later layer wins. ConfigurationError names each bad option."""
    layered = _read_config_file(config_file) if config_file is not None else {}
    layered.update(EnvSettingsSource(ControlSettings)())
    layered.update({name: value for name, value in flags.items() if value is not None})
    try:
        return ControlSettings(**layered)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(problems) from None
