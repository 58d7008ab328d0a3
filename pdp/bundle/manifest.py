"""The ``.manifest`` file: which revision a bundle is, its sequence, and when it was made."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from pdp.bundle.errors import ManifestError

MANIFEST_FILE = ".manifest"
DEFAULT_ROOTS: tuple[str, ...] = ("policyengine",)
# The largest sequence: a PostgreSQL bigint, the control plane's column and the bound of every
# number its API reads. A larger one, built offline, was served by the sidecar while the control
# plane refused each of its status reports (400), so the fleet showed it "starting" for ever.
MAX_SEQUENCE = 2**63 - 1


class Manifest(BaseModel):
    """A bundle's manifest (DESIGN §6). Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    revision: str = Field(min_length=1, max_length=128)
    """Human-facing revision label, reported as ``policy_version`` / ``bundle_revision``."""
    sequence: int = Field(ge=1, le=MAX_SEQUENCE)
    """Positive integer the publisher increments; the anti-rollback check compares it."""
    roots: tuple[str, ...] = DEFAULT_ROOTS
    """Data roots the bundle owns (OPA's notion); ours is always ``policyengine``."""
    created_at: AwareDatetime
    """When the bundle was built (from the source or SOURCE_DATE_EPOCH for reproducibility)."""
    expires_at: AwareDatetime | None = None
    """After this instant the bundle is stale and, as a new candidate, refused."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form JSON the publisher attaches (who published, notes...)."""

    def to_json_bytes(self) -> bytes:
        """The canonical bytes of the ``.manifest`` file: sorted keys, UTC ``Z`` timestamps."""
        doc: dict[str, Any] = {
            "revision": self.revision,
            "sequence": self.sequence,
            "roots": list(self.roots),
            "created_at": format_timestamp(self.created_at),
            "metadata": self.metadata,
        }
        if self.expires_at is not None:
            doc["expires_at"] = format_timestamp(self.expires_at)
        return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix and whole seconds unless fractions are present."""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def timestamp(seconds: float) -> datetime:
    """A UTC datetime from Unix seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def new_manifest(
    *,
    revision: str,
    sequence: int,
    created_at: float,
    expires_at: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Manifest:
    """A manifest from a builder's arguments (times in Unix seconds), or a ManifestError.

    The arguments come from a person (``--revision``, ``SOURCE_DATE_EPOCH``...), so a bad one is
    refused like a bad ``.manifest`` file, naming the field and the value given.
    """
    try:
        return Manifest(
            revision=revision,
            sequence=sequence,
            roots=DEFAULT_ROOTS,
            created_at=_checked_timestamp("created_at", created_at),
            expires_at=(
                _checked_timestamp("expires_at", expires_at) if expires_at is not None else None
            ),
            metadata=dict(metadata or {}),
        )
    except ValidationError as exc:
        raise ManifestError(
            "manifest_invalid", f"{MANIFEST_FILE}: {_problems(exc, show_input=True)}",
            file=MANIFEST_FILE,
        ) from exc


def _checked_timestamp(field: str, seconds: float) -> datetime:
    try:
        return timestamp(seconds)
    except (ValueError, OverflowError, OSError) as exc:
        # datetime holds years 1-9999 only; the platform may refuse less (OSError).
        shown = f"{seconds:.0f}" if float(seconds).is_integer() else repr(seconds)
        raise ManifestError(
            "manifest_invalid",
            f"{MANIFEST_FILE}: {field}: {shown} seconds since 1970 is not a usable date ({exc})",
            file=MANIFEST_FILE,
        ) from exc


def _problems(exc: ValidationError, *, show_input: bool = False) -> str:
    """One line listing each invalid field with pydantic's message (and the value, if asked)."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        problem = f"{where}: {err['msg']}"
        if show_input:
            problem += f" (got {_shorten(repr(err['input']))})"
        problems.append(problem)
    return "; ".join(problems)


def _shorten(text: str, limit: int = 80) -> str:
    # Enough to recognise the value; a message stays one readable line whatever was passed.
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_manifest(raw: bytes, *, file: str = MANIFEST_FILE) -> Manifest:
    """Parse and validate the bytes of a ``.manifest`` file."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(
            "manifest_invalid", f"{file}: not valid JSON ({exc})", file=file
        ) from exc
    if not isinstance(doc, dict):
        raise ManifestError("manifest_invalid", f"{file}: must be a JSON object", file=file)
    try:
        # JSON-mode strict validation: timestamps come as RFC 3339 strings, but "2" or true is
        # never taken for a sequence number.
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise ManifestError("manifest_invalid", f"{file}: {_problems(exc)}", file=file) from exc
