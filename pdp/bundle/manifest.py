"""The ``.manifest`` file: which revision a bundle is, its sequence, and when it was made."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from pdp.bundle.errors import ManifestError

MANIFEST_FILE = ".manifest"
DEFAULT_ROOTS: tuple[str, ...] = ("policyengine",)


class Manifest(BaseModel):
    """A bundle's manifest (DESIGN §6). Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    revision: str = Field(min_length=1, max_length=128)
    """Human-facing revision label, reported as ``policy_version`` / ``bundle_revision``."""
    sequence: int = Field(ge=1)
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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ManifestError("manifest_invalid", f"{file}: {problems}", file=file) from exc
