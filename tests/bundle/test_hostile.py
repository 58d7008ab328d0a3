"""Hostile bundles (DESIGN §6, §13): each one is refused, for its own specific reason."""

from __future__ import annotations

import base64
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bundle_kit import (
    ACCESS_CASE,
    CREATED_AT,
    DATA,
    NOW,
    POLICY,
    Keys,
    b64,
    bundle_files,
    flip_byte,
    forged_token,
    gzip_bomb,
    json_bytes,
    pack,
    payload_of,
    raw_tar,
    regular,
    sign,
    special,
    with_token,
)

from pdp.bundle import (
    MANIFEST_FILE,
    SIGNATURES_FILE,
    BundleError,
    Keyring,
    Limits,
    check_candidate,
    load_bundle,
    public_pem,
)

Maker = Callable[[Keys, Path], "bytes | Path"]


def _signed(keys: Keys, changes: dict[str, bytes | None]) -> dict[str, bytes]:
    """The valid bundle's files with ``changes`` applied before signing (None removes a file)."""
    files = bundle_files()
    for name, data in changes.items():
        if data is None:
            files.pop(name)
        else:
            files[name] = data
    return sign(files, keys.signer())


def _tampered(name: str) -> Maker:
    def make(keys: Keys, tmp: Path) -> bytes:
        files = sign(bundle_files(), keys.signer())
        files[name] = flip_byte(files[name])
        return pack(files)

    return make


def _unlisted_file(keys: Keys, tmp: Path) -> bytes:
    files = sign(bundle_files(), keys.signer())
    files["policies/extra.json"] = json_bytes({**POLICY, "id": "extra"})
    return pack(files)


def _listed_file_missing(keys: Keys, tmp: Path) -> bytes:
    files = sign(bundle_files(), keys.signer())
    del files["tests/access.json"]
    return pack(files)


def _two_signatures(keys: Keys, tmp: Path) -> bytes:
    files = bundle_files()
    token = keys.signer().sign(payload_of(files))
    return pack(with_token(files, token, token))


def _no_signatures(keys: Keys, tmp: Path) -> bytes:
    return pack(bundle_files())


def _signed_by(kid: str) -> Maker:
    def make(keys: Keys, tmp: Path) -> bytes:
        return pack(sign(bundle_files(), keys.signer(kid)))

    return make


def _key_of_another_type(keys: Keys, tmp: Path) -> bytes:
    """An Ed25519 signature presented under the id of the trusted RSA key."""
    files = bundle_files()
    token = keys.signer("k-stranger").sign(payload_of(files))
    header = json.loads(_segment(token, 0))
    header["kid"] = "k-rsa"
    forged = ".".join([b64(json.dumps(header).encode()), *token.split(".")[1:]])
    return pack(with_token(files, forged))


def _wrong_key_same_id(keys: Keys, tmp: Path) -> bytes:
    """A stranger's key presenting the trusted key's id."""
    files = bundle_files()
    stranger = keys.signer("k-stranger")
    token = type(stranger)(stranger.private_key, "k1").sign(payload_of(files))
    return pack(with_token(files, token))


def _segment(token: str, index: int) -> bytes:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _alg_none(keys: Keys, tmp: Path) -> bytes:
    files = bundle_files()
    token = forged_token({"alg": "none", "kid": "k1"}, payload_of(files), b"")
    return pack(with_token(files, token))


def _hmac_with_public_key(keys: Keys, tmp: Path) -> bytes:
    """HS256 keyed with the trusted public key's PEM: the classic algorithm-confusion forgery."""
    files = bundle_files()
    header = {"alg": "HS256", "kid": "k1"}
    token = forged_token(header, payload_of(files), public_pem(keys.trusted))
    return pack(with_token(files, token))


def _wrong_hash_algorithm(keys: Keys, tmp: Path) -> bytes:
    files = bundle_files()
    payload = payload_of(files)
    for entry in payload["files"]:
        entry["algorithm"] = "MD5"
    return pack(with_token(files, keys.signer().sign(payload)))


def _truncated_jws(keys: Keys, tmp: Path) -> bytes:
    files = bundle_files()
    token = keys.signer().sign(payload_of(files))
    return pack(with_token(files, token[: token.rindex(".")]))


def _payload_without_files(keys: Keys, tmp: Path) -> bytes:
    files = bundle_files()
    return pack(with_token(files, keys.signer().sign({"iat": CREATED_AT, "scope": "write"})))


def _member_named(name: str) -> Maker:
    def make(keys: Keys, tmp: Path) -> bytes:
        files = sign(bundle_files(), keys.signer())
        return raw_tar(*(regular(n, d) for n, d in files.items()), regular(name, b"{}"))

    return make


def _special_member(kind: bytes, linkname: str = "") -> Maker:
    def make(keys: Keys, tmp: Path) -> bytes:
        files = sign(bundle_files(), keys.signer())
        members = [regular(n, d) for n, d in files.items()]
        return raw_tar(*members, special("policies/link.json", kind, linkname))

    return make


def _duplicate_entry(keys: Keys, tmp: Path) -> bytes:
    files = sign(bundle_files(), keys.signer())
    members = [regular(n, d) for n, d in files.items()]
    return raw_tar(*members, regular("data.json", b'{"roles": {}}'))


def _oversized_file(keys: Keys, tmp: Path) -> bytes:
    return pack(_signed(keys, {"data.json": json_bytes({"padding": "x" * 4096})}))


def _gzip_bomb(keys: Keys, tmp: Path) -> bytes:
    return gzip_bomb(48 * 1024 * 1024)


def _too_many_files(keys: Keys, tmp: Path) -> bytes:
    files = bundle_files()
    for index in range(10):
        files[f"tests/copy-{index}.json"] = json_bytes(ACCESS_CASE)
    return pack(sign(files, keys.signer()))


def _directory_with_symlink(keys: Keys, tmp: Path) -> Path:
    root = _unpacked(sign(bundle_files(), keys.signer()), tmp)
    os.symlink("/etc/passwd", root / "policies" / "passwd.json")
    return root


def _directory_with_fifo(keys: Keys, tmp: Path) -> Path:
    root = _unpacked(sign(bundle_files(), keys.signer()), tmp)
    os.mkfifo(root / "policies" / "pipe.json")
    return root


def _directory_with_hardlink(keys: Keys, tmp: Path) -> Path:
    root = _unpacked(sign(bundle_files(), keys.signer()), tmp)
    outside = tmp / "outside.json"
    outside.write_bytes(b"{}")
    os.link(outside, root / "policies" / "outside.json")
    return root


def _unpacked(files: dict[str, bytes], tmp: Path) -> Path:
    root = tmp / "bundle"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _bundle_of(changes: dict[str, bytes | None]) -> Maker:
    def make(keys: Keys, tmp: Path) -> bytes:
        return pack(_signed(keys, changes))

    return make


def _huge_manifest(keys: Keys, tmp: Path) -> bytes:
    doc = json.loads(bundle_files()[MANIFEST_FILE])
    # Incompressible, so the size limit (not the compression ratio) is what refuses it.
    doc["metadata"] = {"padding": os.urandom(1024 * 1024).hex()}
    return pack(_signed(keys, {MANIFEST_FILE: json.dumps(doc).encode()}))


def _sequence(sequence: int, *, expires_at: float | None = None) -> Maker:
    def make(keys: Keys, tmp: Path) -> bytes:
        return pack(sign(bundle_files(sequence, expires_at=expires_at), keys.signer()))

    return make


def _same_sequence_other_content(keys: Keys, tmp: Path) -> bytes:
    files = bundle_files(5)
    files["data.json"] = json_bytes({**DATA, "approvals": {"user-456": ["svc-1"]}})
    return pack(sign(files, keys.signer()))


FAILING_CASE = {
    "name": "expects the impossible",
    "query": "check_access",
    "input": {"user_id": "nobody", "service_id": "svc-1", "action": "read", "context": {}},
    "expect": {"allowed": True},
}


@dataclass(frozen=True)
class Hostile:
    """A bundle that must be refused, and the reason code it must be refused with."""

    name: str
    reason: str
    make: Maker
    limits: Limits = field(default_factory=Limits)
    active_sequence: int | None = None
    """When set, a valid bundle with this sequence is active and the candidate is checked."""


HOSTILE: tuple[Hostile, ...] = (
    Hostile("flipped byte in a policy", "hash_mismatch", _tampered("policies/https-required.json")),
    Hostile("flipped byte in data.json", "hash_mismatch", _tampered("data.json")),
    Hostile("flipped byte in the manifest", "hash_mismatch", _tampered(MANIFEST_FILE)),
    Hostile("a file the signature does not list", "file_unlisted", _unlisted_file),
    Hostile("a listed file is missing", "file_missing", _listed_file_missing),
    Hostile("two JWS in .signatures.json", "signature_count", _two_signatures),
    Hostile("no .signatures.json", "signature_missing", _no_signatures),
    Hostile("signed by an unknown key", "key_unknown", _signed_by("k-stranger")),
    Hostile("signed by a revoked key", "key_revoked", _signed_by("k-old")),
    Hostile("a key of another type than alg", "alg_key_mismatch", _key_of_another_type),
    Hostile("another key under a trusted id", "signature_invalid", _wrong_key_same_id),
    Hostile("alg none", "alg_refused", _alg_none),
    Hostile("HS256 keyed with the public key", "alg_refused", _hmac_with_public_key),
    Hostile("a payload hashing with MD5", "hash_algorithm", _wrong_hash_algorithm),
    Hostile("a truncated JWS", "signature_malformed", _truncated_jws),
    Hostile("a payload without a files list", "signature_malformed", _payload_without_files),
    Hostile("a path with ..", "path_traversal", _member_named("policies/../../evil.json")),
    Hostile("an absolute path", "path_absolute", _member_named("/etc/cron.d/evil")),
    Hostile("a symlink", "symlink", _special_member(tarfile.SYMTYPE, "/etc/passwd")),
    Hostile("a hard link", "hardlink", _special_member(tarfile.LNKTYPE, "data.json")),
    Hostile("a device file", "special_file", _special_member(tarfile.CHRTYPE)),
    Hostile("a FIFO", "special_file", _special_member(tarfile.FIFOTYPE)),
    Hostile("a duplicate entry", "duplicate_entry", _duplicate_entry),
    Hostile(
        "an oversized file", "file_too_large", _oversized_file, Limits(max_file_bytes=4000)
    ),
    Hostile("a gzip bomb", "compression_ratio", _gzip_bomb),
    Hostile("too many files", "too_many_files", _too_many_files, Limits(max_files=8)),
    Hostile("a huge manifest", "manifest_too_large", _huge_manifest),
    Hostile("a manifest that is not JSON", "manifest_invalid", _bundle_of({MANIFEST_FILE: b"r1"})),
    Hostile(
        "a manifest with sequence 0",
        "manifest_invalid",
        _bundle_of({MANIFEST_FILE: json_bytes({"revision": "0", "sequence": 0, "created_at": 0})}),
    ),
    Hostile(
        "a manifest with a sequence past a PostgreSQL bigint",
        "manifest_invalid",
        _bundle_of({MANIFEST_FILE: json_bytes({"revision": "1", "sequence": 2**63,
                                               "created_at": "2026-01-01T00:00:00Z"})}),
    ),
    Hostile("no manifest", "manifest_missing", _bundle_of({MANIFEST_FILE: None})),
    Hostile(
        "a policy that fails validation",
        "policy_invalid",
        _bundle_of({"policies/https-required.json": json_bytes({**POLICY, "severity": "dire"})}),
    ),
    Hostile(
        "a policy file named after another id",
        "policy_id_mismatch",
        _bundle_of({"policies/other.json": json_bytes(POLICY)}),
    ),
    Hostile(
        "a file outside the bundle layout",
        "file_unexpected",
        _bundle_of({"scripts/run.sh": b"#!/bin/sh\n"}),
    ),
    Hostile(
        "a failing bundle test",
        "test_failed",
        _bundle_of({"tests/fail.json": json_bytes({"cases": [FAILING_CASE]})}),
    ),
    Hostile("a lower sequence", "sequence_rollback", _sequence(4), active_sequence=5),
    Hostile(
        "the same sequence with other content",
        "sequence_conflict",
        _same_sequence_other_content,
        active_sequence=5,
    ),
    Hostile("an expired bundle", "bundle_expired", _sequence(1, expires_at=NOW - 1)),
    Hostile("a directory bundle with a symlink", "symlink", _directory_with_symlink),
    Hostile("a directory bundle with a FIFO", "special_file", _directory_with_fifo),
    Hostile("a directory bundle with a hard link", "hardlink", _directory_with_hardlink),
    Hostile("bytes that are not gzip", "archive_invalid", lambda keys, tmp: b"PK\x03\x04 zip"),
)


def test_the_table_is_large_and_names_are_unique() -> None:
    """The corpus holds at least 25 hostile bundles, each with its own name."""
    assert len(HOSTILE) >= 25
    assert len({case.name for case in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_hostile_bundle_is_refused_for_its_reason(
    case: Hostile, keys: Keys, keyring: Keyring, tmp_path: Path
) -> None:
    """Each hostile bundle is refused with its specific reason code and a message naming it."""
    source = case.make(keys, tmp_path)
    active = None
    if case.active_sequence is not None:
        active_bundle = pack(sign(bundle_files(case.active_sequence), keys.signer()))
        active = load_bundle(active_bundle, keyring, now=NOW)
    with pytest.raises(BundleError) as caught:
        candidate = load_bundle(source, keyring, now=NOW, limits=case.limits)
        check_candidate(active, candidate)
    assert caught.value.reason == case.reason, str(caught.value)
    assert str(caught.value)


def test_the_valid_bundle_behind_the_table_is_accepted(keys: Keys, keyring: Keyring) -> None:
    """The bundle the hostile cases start from loads, so each refusal is due to its defect."""
    loaded = load_bundle(pack(sign(bundle_files(), keys.signer())), keyring, now=NOW)
    assert loaded.key_id == "k1"
    assert [p.id for p in loaded.contents.policies] == ["https-required"]


def test_refusal_names_the_tampered_file(keys: Keys, keyring: Keyring, tmp_path: Path) -> None:
    """A hash mismatch names the file whose bytes changed."""
    with pytest.raises(BundleError) as caught:
        load_bundle(_tampered("data.json")(keys, tmp_path), keyring, now=NOW)  # type: ignore[arg-type]
    assert caught.value.file == "data.json"
    assert "data.json" in str(caught.value)


def test_a_signatures_file_that_is_not_json_is_malformed(keys: Keys, keyring: Keyring) -> None:
    """A .signatures.json that does not parse is refused as malformed, naming the file."""
    files = bundle_files() | {SIGNATURES_FILE: b"not json"}
    with pytest.raises(BundleError) as caught:
        load_bundle(pack(files), keyring, now=NOW)
    assert caught.value.reason == "signature_malformed"
    assert SIGNATURES_FILE in str(caught.value)


def test_a_refusal_quotes_at_most_a_few_kilobytes_of_what_the_bundle_says(
        keys: Keys, keyring: Keyring) -> None:
    """A key id of 600 KB is refused, and the message (logged, shown in /v1/status, sent in
    status reports) quotes only its start."""
    files = bundle_files()
    token = keys.signer().sign(payload_of(files))
    header = json.loads(_segment(token, 0))
    header["kid"] = "k" + os.urandom(300_000).hex()  # random: a repeated letter is a gzip bomb
    forged = ".".join([b64(json.dumps(header).encode()), *token.split(".")[1:]])
    with pytest.raises(BundleError) as caught:
        load_bundle(pack(with_token(files, forged)), keyring, now=NOW)
    assert caught.value.reason == "key_unknown", str(caught.value)[:200]
    assert header["kid"][:100] in str(caught.value) and len(str(caught.value)) < 5000
