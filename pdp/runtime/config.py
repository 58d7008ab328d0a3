"""`RuntimeConfig`: everything the sidecar engine needs, parsed once by the shell and passed down.

The sidecar shell builds this from its settings (file, ``PDP_*`` environment, flags); nothing in
the runtime reads the environment or a global.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

StaleAction = Literal["serve", "fail_closed", "fail_open"]
"""What a stale bundle does to decisions (DESIGN §7.3)."""


def check_pointer(pointer: str) -> str:
    """`pointer` if it is an RFC 6901 JSON pointer other than "", else ValueError saying why."""
    # RFC 6901: "" is the whole document, otherwise "/"-separated tokens; "~" must be "~0"/"~1".
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} must start with '/'")
    for token in pointer[1:].split("/"):
        rest = token.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise ValueError(f"JSON pointer {pointer!r} has an invalid escape (use ~0 or ~1)")
    return pointer


class DecisionLogConfig(BaseModel):
    """Where decision events go and what is masked in them (DESIGN §7.4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sink: Literal["none", "stdout", "file"] = "none"
    """``none`` keeps decision logging off (like OPA's console logger, it is opt-in)."""
    path: Path | None = None
    """The JSON-lines file for ``sink="file"``; appended to."""
    buffer_size: int = Field(default=10_000, ge=1)
    """Events held before the oldest are dropped (and counted)."""
    mask: tuple[str, ...] = ()
    """JSON pointers removed from each event before it is written, e.g. ``/input/password``."""
    flush_interval_seconds: float = Field(default=0.2, gt=0)
    """How often the writer drains the buffer."""
    flush_deadline_seconds: float = Field(default=5.0, ge=0)
    """How long shutdown waits for the buffer to be written."""

    @field_validator("mask")
    @classmethod
    def _pointers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_pointer(p) for p in value)

    @model_validator(mode="after")
    def _file_needs_path(self) -> DecisionLogConfig:
        if self.sink == "file" and self.path is None:
            raise ValueError("decision log sink 'file' needs a path")
        return self


class RuntimeConfig(BaseModel):
    """Configuration of one sidecar engine (bundle source, keys, persistence, health, logging)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle_path: Path | None = None
    """``--bundle PATH``: a .tar.gz file or a bundle directory, watched for changes."""
    verification_keys: tuple[Path, ...] = ()
    """Public-key files or directories of them (``*.pem``, ``*.jwk``); key id = file stem."""
    revoked_key_ids: tuple[str, ...] = ()
    """Key ids never trusted, even when their key file is present."""
    insecure_skip_verification: bool = False
    """Accept unsigned bundles. Logged loudly at every load; for development only."""
    allow_downgrade: bool = False
    """Accept a bundle whose sequence is lower than the active one (anti-rollback off)."""
    persist_dir: Path | None = None
    """Where each activated bundle is kept for a cold start without a source."""
    max_bundle_age_seconds: float | None = Field(default=None, gt=0)
    """A bundle not confirmed by its source for this long is stale; None: never by age."""
    stale_action: StaleAction = "serve"
    """What a stale bundle does to decisions and readiness."""
    watch_debounce_ms: int = Field(default=200, ge=1)
    """How long file changes are gathered before the bundle is read again."""
    rate_counter_max_keys: int = Field(default=100_000, ge=1)
    """Rate-limit counters kept in memory; the least recently used are forgotten beyond it."""
    instance_id: str = ""
    """This sidecar's id in status reports; empty: one is generated at start."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Free-form labels reported with the status (pod, namespace, app...)."""
    decision_log: DecisionLogConfig = Field(default_factory=DecisionLogConfig)

    @model_validator(mode="after")
    def _verification_needs_keys(self) -> RuntimeConfig:
        # Verification is mandatory (DESIGN §6): without keys every bundle would be refused, which
        # is a configuration mistake better reported at start than at the first load.
        if not self.verification_keys and not self.insecure_skip_verification:
            raise ValueError(
                "verification_keys is empty: give --verification-key "
                "(or --insecure-skip-verification for development)"
            )
        return self
