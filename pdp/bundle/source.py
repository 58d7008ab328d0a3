"""Reading an unsigned source tree (what people edit) into the files of a bundle.

A source directory holds ``policies/*.yaml|*.yml|*.json`` (one document each, any file name),
``data.json``, nested ``data/<path>/data.json`` and ``tests/*.json``; anything else (a README,
examples) is ignored. Policies become ``policies/<id>.json`` in canonical JSON so the bundle
carries one format; data and test files are copied byte for byte after they parse.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pdp.bundle.archive import Limits
from pdp.bundle.contents import (
    DATA_FILE,
    NESTED_DATA_DIR,
    POLICIES_DIR,
    TESTS_DIR,
    BundleContents,
    json_bytes,
    load_json,
    parse_contents,
    parse_policy_document,
)
from pdp.bundle.errors import ContentError
from pdp.bundle.manifest import MANIFEST_FILE, new_manifest
from pdp.core import PolicyDocument

POLICY_SUFFIXES = (".yaml", ".yml", ".json")

# The most JSON a YAML policy may expand to. Every policy the control plane stores arrived as one
# admin API body, which DESIGN §10 caps at 1 MiB by default, so no policy the control plane
# would accept is larger; the shipped policies are under 1 KiB. YAML anchors and aliases cost
# nothing to parse but expand when the document is serialised and validated: nine levels of ten
# aliases, under 600 bytes, are 10**9 values (the "billion laughs"). Bounding the expanded size,
# not the use of aliases, keeps ordinary anchors working.
MAX_POLICY_EXPANDED_CHARS = 1024 * 1024


def read_source_dir(
    root: Path,
    *,
    revision: str = "draft",
    sequence: int = 1,
    created_at: float | None = None,
    expires_at: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    limits: Limits = Limits(),  # noqa: B008 - Limits is frozen, sharing the default is safe
) -> BundleContents:
    """Read a source tree into bundle contents (unsigned) with a manifest built from the arguments.

    ``created_at`` (Unix seconds) defaults to the newest modification time of the files read, so
    the same tree gives the same manifest; callers pass ``SOURCE_DATE_EPOCH`` when it is set.
    """
    if not root.is_dir():
        raise ContentError("source_invalid", f"{root}: not a directory", file=str(root))
    files, policies, newest = source_files(root, limits)
    manifest = new_manifest(
        revision=revision,
        sequence=sequence,
        created_at=created_at if created_at is not None else newest,
        expires_at=expires_at,
        metadata=metadata,
    )
    files[MANIFEST_FILE] = manifest.to_json_bytes()
    return parse_contents(files, parsed=policies)


def source_files(
    root: Path, limits: Limits
) -> tuple[dict[str, bytes], dict[str, PolicyDocument], float]:
    """The bundle files a source tree yields (no manifest), the policies validated on the way
    (by bundle file name), and the newest mtime among the files read."""
    files: dict[str, bytes] = {}
    policies: dict[str, PolicyDocument] = {}
    reader = _SourceReader(root, limits)
    owner: dict[str, str] = {}
    for path in reader.listing(POLICIES_DIR, POLICY_SUFFIXES):
        source = reader.name(path)
        document = _load_policy(source, reader.read(path))
        policy = parse_policy_document(document, source)
        target = f"{POLICIES_DIR}/{policy.id}.json"
        if target in files:
            raise ContentError(
                "policy_duplicate",
                f"{source}: policy id {policy.id!r} is also defined in {owner[target]}",
                file=source,
            )
        files[target], owner[target] = json_bytes(document), source
        policies[target] = policy
    if (root / DATA_FILE).exists():
        files[DATA_FILE] = reader.read_json(root / DATA_FILE, "data_invalid")
    nested_root = root / NESTED_DATA_DIR
    if nested_root.is_dir():
        for path in sorted(nested_root.rglob(DATA_FILE)):
            if path.parent != nested_root:
                files[reader.name(path)] = reader.read_json(path, "data_invalid")
    for path in reader.listing(TESTS_DIR, (".json",)):
        files[reader.name(path)] = reader.read_json(path, "tests_invalid")
    return files, policies, reader.newest


class _SourceReader:
    """Reads source files with the bundle's size limits, tracking the newest mtime seen."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self._root = root
        self._limits = limits
        self.newest = 0.0

    def name(self, path: Path) -> str:
        return path.relative_to(self._root).as_posix()

    def listing(self, directory: str, suffixes: tuple[str, ...]) -> list[Path]:
        folder = self._root / directory
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix in suffixes and p.is_file())

    def read(self, path: Path) -> bytes:
        name = self.name(path)
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ContentError("source_invalid", f"{name}: not a regular file", file=name)
        if info.st_size > self._limits.max_file_bytes:
            raise ContentError(
                "file_too_large",
                f"{name}: {info.st_size} bytes is over the limit of {self._limits.max_file_bytes}",
                file=name,
            )
        self.newest = max(self.newest, float(int(info.st_mtime)))
        return path.read_bytes()

    def read_json(self, path: Path, reason: str) -> bytes:
        """Read a JSON file, checking that it parses; the raw bytes are what the bundle keeps."""
        raw = self.read(path)
        load_json(raw, file=self.name(path), reason=reason)
        return raw


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for key, value in pairs:
        if key in keys:
            raise ValueError(f"duplicate key {key!r}")
        keys[key] = value
    return keys


def _load_policy(source: str, raw: bytes) -> object:
    """Parse a policy file as JSON or YAML (one document), as plain JSON-compatible values.

    A key given twice is refused: both parsers would keep the last one silently, so a second
    ``enforcement: dryrun`` or ``require_https: false`` further down the file switched a rule
    off without a word. (Only here, where people edit files; the canonical JSON a build writes
    cannot repeat a key.)
    """
    if source.endswith(".json"):
        return load_json(raw, file=source, reason="policy_invalid",
                         object_pairs_hook=_unique_keys)
    # Imported here: only builds read YAML, and a sidecar serving a built bundle never does
    # (PyYAML is ~0.9 MiB of its idle RSS and ~20 ms of its start-up).
    import yaml

    try:
        _refuse_duplicate_yaml_keys(yaml.compose(raw, Loader=yaml.SafeLoader))
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ContentError(
            "policy_invalid", f"{source}: not valid YAML ({exc})", file=source
        ) from exc
    except RecursionError as exc:
        # PyYAML composes nested collections recursively; JSON files get the same refusal.
        raise ContentError(
            "policy_invalid", f"{source}: not valid YAML (nested too deeply to parse)", file=source
        ) from exc
    if _expands_past(document, MAX_POLICY_EXPANDED_CHARS):
        raise ContentError(
            "policy_too_large",
            f"{source}: expands to more than {MAX_POLICY_EXPANDED_CHARS} characters of JSON "
            "(YAML aliases repeat what their anchor names each time they are used)",
            file=source,
        )
    try:
        json_bytes(document)
    except (TypeError, ValueError) as exc:
        # YAML has types JSON lacks (timestamps, sets); a bundle must carry plain JSON.
        raise ContentError(
            "policy_invalid", f"{source}: holds a value JSON cannot represent ({exc})", file=source
        ) from exc
    return document


def _refuse_duplicate_yaml_keys(root: object) -> None:
    """Raise a ``MarkedYAMLError`` at the second use of a key in any mapping of ``root`` (a
    composed node graph). Each node is visited once, so aliases cost nothing extra."""
    import yaml

    seen: set[int] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if not isinstance(node, yaml.Node) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in keys:
                        raise yaml.MarkedYAMLError(
                            "while reading a mapping", node.start_mark,
                            f"found duplicate key {key.value!r}", key.start_mark)
                    keys.add((key.tag, key.value))
                pending.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)


def _expands_past(document: object, bound: int) -> bool:
    """Whether ``document`` would serialise to more than ``bound`` characters of JSON.

    ``safe_load`` returns one shared object for every use of an alias, so the document in memory
    is small; the walk visits it as serialisation and validation will, each alias every time it
    is used, and counts a lower estimate of the JSON text (a string's characters and quotes, two
    brackets per collection, one character for any other value). It stops as soon as the bound
    is passed, so a "billion laughs" costs at most ``bound`` steps. Iterative: depth is no issue.
    """
    size = 0
    pending: list[object] = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            size += len(node) + 2
        elif isinstance(node, dict):
            size += 2
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            size += 2
            pending.extend(node)
        else:
            size += 1
        if size > bound:
            return True
    return False
