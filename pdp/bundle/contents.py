"""What a bundle holds, parsed: manifest, policies, data and tests, plus its content hash.

Layout (DESIGN §6)::

    .manifest                  the manifest (JSON)
    policies/<id>.json         one policy document per file, named by its id
    data.json                  bundle data (an object)
    data/<a>/<b>/data.json     data placed at ``a.b`` (OPA-style), merged into data.json's object
    tests/<name>.json          bundle tests: one case or {"cases": [...]}
    .signatures.json           the signature (not part of the contents)

Any other file is refused: a bundle holds nothing the reader would silently ignore.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pdp.bundle.errors import ContentError, ManifestError
from pdp.bundle.manifest import MANIFEST_FILE, Manifest, parse_manifest
from pdp.bundle.signing import SIGNATURES_FILE, file_hash
from pdp.core import (
    CoreError,
    PolicyDocument,
    PolicyValidationError,
    TestCase,
    parse_policy,
    parse_tests,
)

DATA_FILE = "data.json"
POLICIES_DIR = "policies"
TESTS_DIR = "tests"
NESTED_DATA_DIR = "data"


@dataclass(frozen=True, slots=True)
class BundleContents:
    """A bundle's parsed contents. ``files`` holds every signed file's raw bytes by name."""

    manifest: Manifest
    files: Mapping[str, bytes]
    policies: tuple[PolicyDocument, ...]
    data: Mapping[str, Any]
    tests: tuple[TestCase, ...]
    content_hash: str
    """SHA-256 over the sorted (name, sha256) list of ``files``; see :func:`content_hash`."""


def content_hash(files: Mapping[str, bytes], *, digests: Mapping[str, str] | None = None) -> str:
    """Hex SHA-256 of the JSON list ``[[name, sha256-hex], ...]`` sorted by name.

    ``.signatures.json`` is left out, so the same content hashes the same whether it comes as a
    directory or a tarball, and whoever signed it. ``digests`` (name → SHA-256 hex of the same
    bytes, as verification computed them) saves hashing every file a second time.
    """
    known = digests or {}
    listing = [
        [name, known.get(name) or file_hash(files[name])]
        for name in sorted(files)
        if name != SIGNATURES_FILE
    ]
    return hashlib.sha256(json.dumps(listing, separators=(",", ":")).encode()).hexdigest()


def json_bytes(value: object) -> bytes:
    """The canonical bytes the builder writes for a JSON document (sorted keys, 2-space indent).

    NaN and infinities raise ``ValueError``: Python would write them as ``NaN`` / ``Infinity``,
    which no JSON parser need accept (the sidecar's HTTP view printed such a value as null).
    """
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
            + "\n").encode()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"the number {text[:40]} is out of range")
    return number


def load_json(raw: bytes, *, file: str, reason: str,
              object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """Parse a JSON file (RFC 8259: no NaN or Infinity, no number that overflows a double, as
    the sidecar's HTTP API reads), refusing it with ``reason`` and the parser's message (a
    ``ValueError`` raised by ``object_pairs_hook`` included)."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite,
                          object_pairs_hook=object_pairs_hook)
    except (ValueError, RecursionError) as exc:
        raise ContentError(reason, f"{file}: not valid JSON ({exc})", file=file) from exc


def parse_contents(
    files: Mapping[str, bytes],
    *,
    parsed: Mapping[str, PolicyDocument] | None = None,
    digests: Mapping[str, str] | None = None,
) -> BundleContents:
    """Parse a bundle's files (already read safely and, normally, verified) into contents.

    ``parsed`` maps policy file names to documents the caller validated while producing those
    very bytes (the source reader does), so they are not validated twice; ``digests`` are the
    files' SHA-256 as verification computed them (see :func:`content_hash`).
    """
    known = parsed or {}
    signed = {name: data for name, data in files.items() if name != SIGNATURES_FILE}
    raw_manifest = signed.get(MANIFEST_FILE)
    if raw_manifest is None:
        raise ManifestError(
            "manifest_missing", f"{MANIFEST_FILE}: missing from the bundle", file=MANIFEST_FILE
        )
    manifest = parse_manifest(raw_manifest)
    policies: list[PolicyDocument] = []
    tests: list[TestCase] = []
    nested: list[tuple[tuple[str, ...], str]] = []
    for name in sorted(signed):
        kind = classify(name)
        if kind == "policy":
            document = known.get(name)
            policies.append(document or parse_policy_file(name, signed[name]))
        elif kind == "test":
            tests.extend(parse_test_file(name, signed[name]))
        elif kind == "nested_data":
            nested.append((tuple(name.split("/")[1:-1]), name))
        elif kind != "manifest" and kind != "data":
            raise ContentError(
                "file_unexpected",
                f"{name}: not part of the bundle layout (.manifest, policies/<id>.json, data.json, "
                "data/<path>/data.json, tests/<name>.json)",
                file=name,
            )
    data = merge_data(signed, nested)
    return BundleContents(
        manifest=manifest,
        files=MappingProxyType(dict(signed)),
        policies=tuple(policies),
        data=MappingProxyType(data),
        tests=tuple(tests),
        content_hash=content_hash(signed, digests=digests),
    )


def classify(name: str) -> str:
    """The part of the layout a path is: manifest, policy, data, nested_data, test or other."""
    if name == MANIFEST_FILE:
        return "manifest"
    if name == DATA_FILE:
        return "data"
    # Plain string splitting: this runs once per file, 10,000 times for a large bundle.
    parts = name.split("/")
    if len(parts) == 2 and parts[1].endswith(".json"):
        if parts[0] == POLICIES_DIR:
            return "policy"
        if parts[0] == TESTS_DIR:
            return "test"
    if len(parts) >= 3 and parts[0] == NESTED_DATA_DIR and parts[-1] == DATA_FILE:
        return "nested_data"
    return "other"


def parse_policy_file(name: str, raw: bytes) -> PolicyDocument:
    """Parse ``policies/<id>.json``; its id must match the file name."""
    document = parse_policy_document(load_json(raw, file=name, reason="policy_invalid"), name)
    if name != f"{POLICIES_DIR}/{document.id}.json":
        raise ContentError(
            "policy_id_mismatch",
            f"{name}: holds policy id {document.id!r}; the file must be named {document.id}.json",
            file=name,
        )
    return document


def parse_policy_document(raw: object, source: str) -> PolicyDocument:
    """Validate one policy document, naming ``source`` and the field path of each problem."""
    try:
        return parse_policy(raw, source=source)
    except PolicyValidationError as exc:
        raise ContentError(
            "policy_invalid",
            str(exc),
            file=source,
            errors=tuple((err.path, err.message) for err in exc.errors),
        ) from exc


def parse_test_file(name: str, raw: bytes) -> list[TestCase]:
    """Parse a ``tests/<name>.json`` file into test cases."""
    doc = load_json(raw, file=name, reason="tests_invalid")
    try:
        return parse_tests(doc, source=name)
    except PolicyValidationError as exc:
        raise ContentError(
            "tests_invalid",
            str(exc),
            file=name,
            errors=tuple((err.path, err.message) for err in exc.errors),
        ) from exc
    except CoreError as exc:
        raise ContentError("tests_invalid", f"{name}: {exc}", file=name) from exc


def merge_data(
    files: Mapping[str, bytes], nested: list[tuple[tuple[str, ...], str]]
) -> dict[str, Any]:
    """``data.json`` with each nested ``data/<path>/data.json`` placed at ``<path>``."""
    data: dict[str, Any] = {}
    if DATA_FILE in files:
        root = load_json(files[DATA_FILE], file=DATA_FILE, reason="data_invalid")
        if not isinstance(root, dict):
            raise ContentError(
                "data_invalid", f"{DATA_FILE}: must be a JSON object", file=DATA_FILE
            )
        data = root
    # Shallow paths first, so a deeper file merges into what a shallower one placed.
    for path, name in sorted(nested, key=lambda item: (len(item[0]), item[0])):
        value = load_json(files[name], file=name, reason="data_invalid")
        _place(data, path, value, name)
    return data


def _place(data: dict[str, Any], path: tuple[str, ...], value: Any, name: str) -> None:
    node = data
    for depth, key in enumerate(path[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise ContentError(
                "data_conflict", f"{name}: data at {where} is not an object", file=name
            )
        node = child
    leaf = path[-1]
    if leaf not in node:
        node[leaf] = value
        return
    existing = node[leaf]
    if not isinstance(existing, dict) or not isinstance(value, dict):
        raise ContentError(
            "data_conflict", f"{name}: data at {'.'.join(path)} is already defined", file=name
        )
    clash = sorted(set(existing) & set(value))
    if clash:
        raise ContentError(
            "data_conflict",
            f"{name}: keys {', '.join(clash)} at {'.'.join(path)} are already defined",
            file=name,
        )
    existing.update(value)
