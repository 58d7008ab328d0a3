"""Configuration of one sidecar process (`pdp run`), parsed once at the entry point.

Three layers, each overriding the one before it (DESIGN §2):

1. a YAML file (``--config FILE`` or ``PDP_CONFIG``), whose keys are the field names below;
2. environment variables ``PDP_<FIELD>`` (lists as JSON, e.g. ``PDP_VERIFICATION_KEY='["k.pem"]'``);
3. command-line flags that were actually given.

The result is one frozen :class:`RunSettings` passed down explicitly; nothing reads the environment
or the file again after :func:`load_settings` returns.

The layers are gathered by :mod:`pdp.sidecar.options` (shared with `pdp control`); validation is
pydantic's, on a plain model.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pdp.sidecar.errors import ConfigError
from pdp.sidecar.options import gather_options

StaleAction = Literal["serve", "fail_closed", "fail_open"]
LogLevel = Literal["debug", "info", "warning", "error"]

ONE_MIB = 1024 * 1024


class ListenAddress(NamedTuple):
    """A host and TCP port to bind; port 0 asks the kernel for a free one."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` for IPv6); raise ValueError naming what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.removeprefix("[").removesuffix("]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port must be an integer in 0..65535, got {port_text!r}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host must be an IP address or 'localhost', got {host!r}") from None
    return ListenAddress(host, int(port_text))


class RunSettings(BaseModel):
    """Every option of `pdp run`; the field descriptions are the `--help` text."""

    # No inf or nan: every number here is a duration or size that must be finite (and an inf
    # would also reach the JSON logs, which cannot carry it).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    bundle: Path | None = Field(
        default=None, description="bundle to serve: a .tar.gz or a directory, watched for changes"
    )
    bundle_url: str | None = Field(
        default=None, description="bundle server URL of the control plane (long-polled)"
    )
    bundle_token_file: Path | None = Field(
        default=None,
        description="bearer token file for the control plane (bundles, status, logs), re-read",
    )
    bundle_ca_file: Path | None = Field(
        default=None, description="CA certificate file for an https --bundle-url"
    )
    verification_key: list[Path] = Field(
        default_factory=list,
        description="public key file (key id = file stem) or directory of *.pem/*.jwk; repeatable",
    )
    revoked_key_ids: list[str] = Field(
        default_factory=list, description="key ids never to trust, even if their key is present"
    )
    http_addr: str = Field(default="127.0.0.1:8181", description="HTTP listen address")
    grpc_addr: str = Field(default="127.0.0.1:50051", description="gRPC listen address")
    reuse_port: bool = Field(
        default=False,
        description="let several pdp run workers share the HTTP and gRPC ports (SO_REUSEPORT)",
    )
    watch_debounce_ms: int = Field(
        default=200, ge=1, description="milliseconds file changes are gathered before a reload"
    )
    persist_dir: Path | None = Field(
        default=None, description="directory for the last-known-good bundle (cold start offline)"
    )
    max_bundle_age: float | None = Field(
        default=None,
        gt=0,
        description="seconds a bundle stays fresh without its source confirming it",
    )
    stale_action: StaleAction = Field(
        default="serve", description="what a stale bundle does to decisions and readiness"
    )
    allow_downgrade: bool = Field(
        default=False, description="accept a bundle whose sequence is lower than the active one"
    )
    insecure_skip_verification: bool = Field(
        default=False, description="INSECURE: load bundles without checking signatures"
    )
    decision_log: str = Field(
        default="none",
        description="decision log sink: none, stdout, upload (to the control plane) or a file",
    )
    decision_log_mask: list[str] = Field(
        default_factory=list,
        description="JSON pointers masked in logged decisions (e.g. /input/request_payload)",
    )
    control_url: str | None = Field(
        default=None,
        description="control plane URL for status reports and log upload; "
        "none means the origin of --bundle-url",
    )
    status_interval: float = Field(
        default=10.0, gt=0, description="seconds between status reports when nothing changes"
    )
    instance_id: str = Field(
        default="", description="this sidecar's name in the fleet view; none means HOSTNAME-PID"
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="KEY=VALUE labels reported with the status (pod, namespace...); repeatable",
    )
    log_level: LogLevel = Field(default="info", description="least severe log level written")
    max_body_bytes: int = Field(
        default=ONE_MIB, ge=1024, description="largest accepted HTTP request body in bytes"
    )
    shutdown_grace: float = Field(
        default=10.0, gt=0, description="seconds in-flight requests get to finish on SIGTERM"
    )
    dev: bool = Field(
        default=False, description="serve the built-in bundle signed with a local development key"
    )

    @field_validator("http_addr", "grpc_addr")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        parse_listen_address(value)
        return value

    @field_validator("decision_log_mask")
    @classmethod
    def _valid_pointers(cls, value: list[str]) -> list[str]:
        # Checked here, not first when the decision log is built, so a typo is named like
        # every other bad option before anything starts.
        from pdp.runtime.config import check_pointer

        return [check_pointer(pointer) for pointer in value]

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: object) -> object:
        # Flags give a list of KEY=VALUE; the config file and PDP_LABELS give a mapping.
        if not isinstance(value, list):
            return value
        labels: dict[str, str] = {}
        for item in value:
            key, sep, text = str(item).partition("=")
            if not sep or not key:
                raise ValueError(f"expected KEY=VALUE, got {item!r}")
            labels[key] = text
        return labels

    @field_validator("bundle_url", "control_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            # Imported on this error path only: the runtime package is heavy to load for settings.
            from pdp.runtime.logs import public_url

            # Shown without query, fragment or user:password, which may hold a credential; a
            # value too mangled for that (an '@' left, or one urlsplit refuses) is not shown.
            try:
                shown: str | None = public_url(value)
            except ValueError:
                shown = None
            if shown is None or "@" in shown:
                raise ValueError("must be an http:// or https:// URL")
            raise ValueError(f"must be an http:// or https:// URL, got {shown!r}")
        if "@" in urlsplit(value).netloc:
            # Credentials in a URL end up in every message that names the URL (logs, status);
            # the value is not echoed here for the same reason.
            raise ValueError("must not hold credentials (user:password@); give a token with "
                             "bundle_token_file")
        return value

    @field_validator("bundle_ca_file")
    @classmethod
    def _loadable_ca(cls, value: Path | None) -> Path | None:
        # Checked once here, so a typo is a usage error naming the option, not a sidecar that
        # starts and never reaches its bundle server.
        if value is not None:
            try:
                ssl.create_default_context(cafile=str(value))
            except (OSError, ssl.SSLError) as exc:
                detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ValueError(f"cannot load {value} as CA certificates: {detail}") from None
        return value

    @model_validator(mode="after")
    def _one_bundle_source(self) -> RunSettings:
        sources = [
            name
            for name, given in (
                ("bundle", self.bundle is not None),
                ("bundle_url", self.bundle_url is not None),
                ("dev", self.dev),
            )
            if given
        ]
        if len(sources) != 1:
            found = ", ".join(sources) or "none"
            raise ValueError(f"exactly one of bundle, bundle_url, dev is required (got {found})")
        if not self.dev and not self.verification_key and not self.insecure_skip_verification:
            raise ValueError(
                "verification_key is required (or insecure_skip_verification, never in production)"
            )
        if self.bundle_token_file is not None and self.control_base_url is None:
            raise ValueError("bundle_token_file only applies with bundle_url or control_url")
        if self.decision_log == "upload" and self.control_base_url is None:
            raise ValueError("decision_log upload needs control_url or bundle_url")
        return self

    @property
    def control_base_url(self) -> str | None:
        """Where status reports and decision logs go: control_url, else bundle_url's origin."""
        if self.control_url is not None:
            return self.control_url.rstrip("/")
        if self.bundle_url is None:
            return None
        parts = urlsplit(self.bundle_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def http_listen(self) -> ListenAddress:
        """The parsed HTTP listen address."""
        return parse_listen_address(self.http_addr)

    @property
    def grpc_listen(self) -> ListenAddress:
        """The parsed gRPC listen address."""
        return parse_listen_address(self.grpc_addr)


def _describe(error: ValidationError, sources: Mapping[str, str]) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        # The same option can come from three places; the operator must know which one to fix.
        source = sources.get(str(item["loc"][0])) if item["loc"] else None
        if source is not None:
            field += f" (from {source})"
        # Our validators' own messages, without pydantic's "Value error, " in front.
        cause = item.get("ctx", {}).get("error") if item["type"] == "value_error" else None
        parts.append(f"{field}: {cause if cause is not None else item['msg']}")
    return "; ".join(parts)


def load_settings(flags: Mapping[str, Any], config_file: Path | None = None) -> RunSettings:
    """Merge config file, ``PDP_*`` environment and given flags (in that order) and validate.

    ``flags`` holds only options the user actually typed. Raises :class:`ConfigError` with a
    message naming the offending option.
    """
    layered = gather_options(RunSettings, flags, config_file=config_file, environ=os.environ,
                             error=ConfigError)
    try:
        return RunSettings(**layered.values)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_describe(exc, layered.sources)}") from None
