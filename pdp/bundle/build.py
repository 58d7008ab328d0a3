"""Building a signed bundle: reproducible gzip tar bytes from contents and a signer.

Reproducible means the same contents, manifest and key give the same bytes: entries sorted by
name, every header with mtime 0, uid/gid 0, empty owner names and mode 0644, the gzip header with
mtime 0 and no file name, and a fixed compression level. (EdDSA and RS256 signatures are
deterministic; ES256 and PS256 ones are randomised by design, so only their ``.signatures.json``
differs between two builds.)
"""

from __future__ import annotations

import enum
import gzip
import io
import tarfile
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pdp.bundle.contents import BundleContents, content_hash
from pdp.bundle.manifest import MANIFEST_FILE
from pdp.bundle.signing import SIGNATURES_FILE, Signer, sign_files
from pdp.bundle.source import read_source_dir


class _Keep(enum.Enum):
    """Marks a manifest field left as it is (``None`` is a value: "never expires")."""

    KEEP = "keep"


KEEP = _Keep.KEEP


def write_archive(files: Mapping[str, bytes]) -> bytes:
    """Pack ``files`` (name → bytes) into reproducible .tar.gz bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    # Level 6 (gzip's default): on 10,000 policies level 9 costs 3x the time for ~8 % fewer bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, compresslevel=6, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def signed_files(contents: BundleContents, signer: Signer) -> dict[str, bytes]:
    """The bundle's files plus the ``.signatures.json`` that signs them."""
    files = dict(contents.files)
    files.pop(SIGNATURES_FILE, None)
    iat = int(contents.manifest.created_at.timestamp())
    files[SIGNATURES_FILE] = sign_files(files, signer, iat=iat)
    return files


def build_bundle(
    source: BundleContents | Path,
    *,
    signer: Signer,
    revision: str | None = None,
    sequence: int | None = None,
    created_at: datetime | None = None,
    expires_at: datetime | _Keep | None = KEEP,
    metadata: Mapping[str, Any] | None = None,
) -> bytes:
    """Sign ``source`` and pack it into .tar.gz bytes; the given manifest fields replace its own.

    ``source`` is parsed contents or a source directory (read with :func:`read_source_dir`).
    """
    contents = read_source_dir(source) if isinstance(source, Path) else source
    contents = with_manifest(
        contents,
        revision=revision,
        sequence=sequence,
        created_at=created_at,
        expires_at=expires_at,
        metadata=metadata,
    )
    return write_archive(signed_files(contents, signer))


def with_manifest(
    contents: BundleContents,
    *,
    revision: str | None = None,
    sequence: int | None = None,
    created_at: datetime | None = None,
    expires_at: datetime | _Keep | None = KEEP,
    metadata: Mapping[str, Any] | None = None,
) -> BundleContents:
    """``contents`` with some manifest fields replaced (validated), re-parsed and re-hashed."""
    update: dict[str, Any] = {}
    if revision is not None:
        update["revision"] = revision
    if sequence is not None:
        update["sequence"] = sequence
    if created_at is not None:
        update["created_at"] = created_at
    if expires_at is not KEEP:
        update["expires_at"] = expires_at
    if metadata is not None:
        update["metadata"] = dict(metadata)
    if not update:
        return contents
    # Validate through the model (model_copy would skip validation of the new values).
    manifest = type(contents.manifest).model_validate(
        {**contents.manifest.model_dump(), **update}
    )
    files = dict(contents.files)
    files[MANIFEST_FILE] = manifest.to_json_bytes()
    # Only the manifest changed: the policies, data and tests already parsed stay valid.
    return replace(
        contents,
        manifest=manifest,
        files=MappingProxyType(files),
        content_hash=content_hash(files),
    )
