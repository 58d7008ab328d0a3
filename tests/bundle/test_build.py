"""Reproducible builds: the same input gives the same bytes, and the archive is what we say."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from bundle_kit import CREATED_AT, NOW, Keys, bundle_files, json_bytes, pack, sign

from pdp.bundle import (
    MANIFEST_FILE,
    SIGNATURES_FILE,
    ContentError,
    Keyring,
    Limits,
    build_bundle,
    load_bundle,
    parse_contents,
    read_bundle_files,
    read_source_dir,
)
from pdp.bundle.manifest import timestamp


def _source(root: Path) -> Path:
    files = bundle_files()
    (root / "policies").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "policies" / "https.json").write_bytes(files["policies/https-required.json"])
    (root / "data.json").write_bytes(files["data.json"])
    (root / "tests" / "access.json").write_bytes(files["tests/access.json"])
    return root


def test_building_twice_gives_the_same_sha256(keys: Keys, tmp_path: Path) -> None:
    """Two builds of the same source with the same key are byte-identical."""
    source = _source(tmp_path / "src")
    first = build_bundle(read_source_dir(source, created_at=CREATED_AT), signer=keys.signer())
    second = build_bundle(read_source_dir(source, created_at=CREATED_AT), signer=keys.signer())
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_without_a_timestamp_created_at_is_the_newest_source_mtime(tmp_path: Path) -> None:
    """Without SOURCE_DATE_EPOCH the manifest's created_at is the newest source file's mtime."""
    source = _source(tmp_path / "src")
    for index, path in enumerate(sorted(source.rglob("*.json"))):
        os.utime(path, (CREATED_AT + index, CREATED_AT + index))
    contents = read_source_dir(source)
    assert contents.manifest.created_at == timestamp(CREATED_AT + 2)


def test_archive_entries_are_sorted_with_fixed_metadata(keys: Keys, tmp_path: Path) -> None:
    """Entries are sorted; mtime 0, uid/gid 0, no owner names, mode 0644; gzip mtime 0."""
    archive = build_bundle(_source(tmp_path / "src"), signer=keys.signer())
    assert archive[4:8] == b"\x00\x00\x00\x00"  # the gzip header's MTIME field
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
        (0, 0, 0, "", "", 0o644)
    }


def test_yaml_policies_become_json_named_by_id(tmp_path: Path) -> None:
    """A YAML source policy is stored as policies/<id>.json in the bundle."""
    source = tmp_path / "src"
    (source / "policies").mkdir(parents=True)
    (source / "policies" / "anything.yaml").write_text(
        "id: tls\nname: TLS\ndescription: d\ntype: security\nenabled: true\n"
        "severity: high\nenforcement: deny\nrule: {minimum_tls_version: 12}\n"
    )
    contents = read_source_dir(source, created_at=CREATED_AT)
    assert sorted(contents.files) == [MANIFEST_FILE, "policies/tls.json"]


def test_build_replaces_manifest_fields(keys: Keys, tmp_path: Path) -> None:
    """revision and sequence given to build_bundle end up in the signed manifest."""
    contents = read_source_dir(_source(tmp_path / "src"), created_at=CREATED_AT)
    archive = build_bundle(contents, signer=keys.signer(), revision="r42", sequence=42)
    manifest = parse_contents(read_bundle_files(archive, Limits())).manifest
    assert (manifest.revision, manifest.sequence) == ("r42", 42)


def test_a_directory_and_its_tarball_have_one_content_hash(
    keys: Keys, keyring: Keyring, tmp_path: Path
) -> None:
    """The same signed files as a directory or as a .tar.gz load with the same content hash."""
    files = sign(bundle_files(), keys.signer())
    root = tmp_path / "unpacked"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    from_dir = load_bundle(root, keyring, now=NOW)
    from_tar = load_bundle(pack(files), keyring, now=NOW)
    assert from_dir.content_hash == from_tar.content_hash


def test_the_content_hash_ignores_who_signed(keys: Keys) -> None:
    """Re-signing the same files with another key keeps the content hash."""
    files = bundle_files()
    by_k1 = parse_contents(sign(files, keys.signer("k1")))
    by_rsa = parse_contents(sign(files, keys.signer("k-rsa")))
    assert by_k1.content_hash == by_rsa.content_hash
    assert SIGNATURES_FILE not in by_k1.files


def test_nested_data_is_placed_at_its_path(tmp_path: Path) -> None:
    """data/<a>/<b>/data.json is merged into the bundle data at a.b, OPA-style."""
    source = _source(tmp_path / "src")
    (source / "data" / "tenants" / "acme").mkdir(parents=True)
    (source / "data" / "tenants" / "acme" / "data.json").write_bytes(json_bytes({"tier": "gold"}))
    contents = read_source_dir(source, created_at=CREATED_AT)
    assert contents.data["tenants"] == {"acme": {"tier": "gold"}}
    assert contents.data["users"]["user-456"]["roles"] == ["consumer"]


@pytest.mark.parametrize(("name", "text"), [
    pytest.param("policies/p.yaml", "id: p\nname: P\ntype: pricing\n"
                 "rule: {max_rate_per_token: 1}\nmetadata: {weight: .inf}\n", id="yaml-inf"),
    pytest.param("policies/p.json", '{"id": "p", "name": "P", "type": "custom", "rule": {'
                 '"field": "context.x", "violation_if": {"field": "context.x", "op": "eq", '
                 '"value": NaN}}}', id="json-nan"),
    pytest.param("data.json", '{"limits": {"x": 1e400}}', id="data-overflow"),
    pytest.param("tests/t.json", '{"name": "t", "query": "check_access", "input": {}, '
                 '"expect": {"allowed": -Infinity}}', id="test-infinity"),
])
def test_a_source_with_nan_or_infinity_is_refused(tmp_path: Path, name: str, text: str) -> None:
    """NaN and infinities are not JSON: a build refuses them, naming the file, instead of
    signing files that say NaN / Infinity (which the sidecar's policy view shows as null)."""
    source = tmp_path / "src"
    (source / "policies").mkdir(parents=True)
    (source / "tests").mkdir()
    (source / "policies" / "https.json").write_bytes(bundle_files()["policies/https-required.json"])
    (source / name).write_text(text)
    with pytest.raises(ContentError) as refused:
        read_source_dir(source, created_at=CREATED_AT)
    assert refused.value.file == name


def test_a_signed_bundle_holding_nan_is_refused(keys: Keys, keyring: Keyring) -> None:
    """A bundle whose data says NaN is refused when loaded, as a body saying NaN is over HTTP."""
    files = bundle_files()
    files["data.json"] = files["data.json"].replace(b'"svc-1": {', b'"svc-1": {"score": NaN, ')
    with pytest.raises(ContentError, match=r"data\.json: not valid JSON \(NaN"):
        load_bundle(pack(sign(files, keys.signer())), keyring, now=NOW)
