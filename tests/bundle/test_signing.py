"""Signing and verification: every algorithm round-trips, keys rotate, JWS shape is OPA's."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from bundle_kit import NOW, Keys, bundle_files, pack, sign

from pdp.bundle import (
    ALGORITHMS,
    SIGNATURES_FILE,
    Algorithm,
    JwsSigner,
    Keyring,
    KeyringError,
    SignatureError,
    generate_private_key,
    load_bundle,
    load_private_key,
    public_pem,
    verify_files,
    write_key_pair,
)
from pdp.bundle.signing import signature_payload


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_round_trips(algorithm: Algorithm, tmp_path: Path) -> None:
    """A bundle signed with EdDSA, ES256, RS256 or PS256 verifies with the matching public key."""
    private_path, public_path = write_key_pair(tmp_path, f"key-{algorithm}", algorithm)
    signer = JwsSigner(load_private_key(private_path), f"key-{algorithm}", algorithm)
    loaded = load_bundle(pack(sign(bundle_files(), signer)), Keyring.from_paths([public_path]),
                         now=NOW)
    assert loaded.key_id == f"key-{algorithm}"
    assert loaded.verified


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_jws_header_names_alg_and_kid(algorithm: Algorithm) -> None:
    """The JWS header carries exactly the algorithm and the key id."""
    signer = JwsSigner(generate_private_key(algorithm), "k", algorithm)
    files = sign(bundle_files(), signer)
    token = json.loads(files[SIGNATURES_FILE])["signatures"][0]
    assert jwt.get_unverified_header(token) == {"alg": algorithm, "kid": "k"}


def test_the_payload_lists_every_file_with_its_sha256(keys: Keys) -> None:
    """The payload lists each file (not .signatures.json) with its SHA-256 and iat/iss/scope."""
    files = sign(bundle_files(), keys.signer())
    token = json.loads(files[SIGNATURES_FILE])["signatures"][0]
    payload = jwt.decode(token, options={"verify_signature": False})
    assert sorted(entry["name"] for entry in payload["files"]) == sorted(bundle_files())
    assert {entry["algorithm"] for entry in payload["files"]} == {"SHA-256"}
    assert {"iat", "iss", "scope"} <= set(payload)


def test_an_rsa_key_defaults_to_rs256(keys: Keys) -> None:
    """An RSA signer without an explicit algorithm signs with RS256."""
    assert JwsSigner(keys.rsa, "k-rsa").effective_algorithm == "RS256"


def test_a_signer_refuses_an_algorithm_its_key_cannot_make(keys: Keys) -> None:
    """Asking an Ed25519 key for ES256 is refused before anything is signed."""
    with pytest.raises(KeyringError) as caught:
        JwsSigner(keys.trusted, "k1", "ES256")
    assert caught.value.reason == "alg_key_mismatch"


def test_rotation_trusts_old_and_new_then_refuses_the_revoked_old(
    keys: Keys, tmp_path: Path
) -> None:
    """With old and new keys trusted both verify; once the old id is revoked, its bundles fail."""
    (tmp_path / "old.pem").write_bytes(public_pem(keys.revoked))
    (tmp_path / "new.pem").write_bytes(public_pem(keys.trusted))
    old_files = sign(bundle_files(), JwsSigner(keys.revoked, "old"))
    new_files = sign(bundle_files(), JwsSigner(keys.trusted, "new"))
    both = Keyring.from_paths([tmp_path])
    assert verify_files(old_files, both) == "old"
    assert verify_files(new_files, both) == "new"
    rotated = Keyring.from_paths([tmp_path], revoked=["old"])
    assert verify_files(new_files, rotated) == "new"
    with pytest.raises(SignatureError) as caught:
        verify_files(old_files, rotated)
    assert caught.value.reason == "key_revoked"


def test_a_signature_does_not_cover_a_renamed_file(keys: Keys, keyring: Keyring) -> None:
    """Moving a file to another name breaks the listing even though its bytes are unchanged."""
    files = sign(bundle_files(), keys.signer())
    files["tests/renamed.json"] = files.pop("tests/access.json")
    with pytest.raises(SignatureError) as caught:
        verify_files(files, keyring)
    assert caught.value.reason == "file_unlisted"


def test_skipping_verification_loads_an_unsigned_bundle_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """skip_verification accepts an unsigned bundle, marks it unverified and logs a warning."""
    loaded = load_bundle(pack(bundle_files()), None, now=NOW, skip_verification=True)
    assert (loaded.verified, loaded.key_id) == (False, None)
    assert "SKIPPED" in caplog.text


def _signed_by_k1(keys: Keys, header: dict[str, object], payload: object) -> str:
    """A genuine EdDSA JWS by the trusted key k1 over any header and payload."""
    return jwt.api_jws.encode(json.dumps(payload).encode(), keys.trusted, algorithm="EdDSA",
                              headers={"kid": "k1", **header})


@pytest.mark.parametrize(("header", "payload", "detail"), [
    ({"crit": ["exp"]}, None, "crit"),
    ({"b64": False}, None, "b64"),
    ({}, ["not", "an", "object"], "not a JSON object"),
    ({}, {"files": []}, "iat"),
], ids=["crit header", "unencoded payload", "payload not an object", "no iat"])
def test_a_validly_signed_token_of_another_shape_is_malformed(
    keys: Keys, keyring: Keyring, header: dict[str, object], payload: object, detail: str,
) -> None:
    """A correct signature is not enough: header and payload must have pdp's shape."""
    files = bundle_files()
    body = payload if payload is not None else signature_payload(files, iat=int(NOW))
    signed = dict(files)
    signed[SIGNATURES_FILE] = json.dumps(
        {"signatures": [_signed_by_k1(keys, header, body)]}).encode()
    with pytest.raises(SignatureError) as caught:
        verify_files(signed, keyring)
    assert caught.value.reason == "signature_malformed"
    assert detail in str(caught.value)


def test_a_payload_with_a_stray_character_does_not_verify(keys: Keys, keyring: Keyring) -> None:
    """The signature covers the payload's text as sent: one changed character refuses it."""
    files = bundle_files()
    token = sign(files, JwsSigner(keys.trusted, "k1"))[SIGNATURES_FILE]
    jws = json.loads(token)["signatures"][0]
    head, body, tail = jws.split(".")
    tampered = dict(files)
    tampered[SIGNATURES_FILE] = json.dumps(
        {"signatures": [f"{head}.{body[:10]}!{body[11:]}.{tail}"]}).encode()
    with pytest.raises(SignatureError) as caught:
        verify_files(tampered, keyring)
    assert caught.value.reason == "signature_invalid"


@pytest.mark.parametrize(
    "signed_hash",
    ["é" * 64, "ab" * 10, "z" * 64, "٣" * 64],
    ids=["non-ASCII", "too short", "not hex", "non-ASCII digits"],
)
def test_a_signed_hash_that_is_not_sha256_hex_is_malformed(
    keys: Keys, keyring: Keyring, signed_hash: str
) -> None:
    """A trusted key's listing whose hash is not 64 hex digits is refused, naming the file."""
    files = bundle_files()
    payload = signature_payload(files, iat=int(NOW))
    listed = next(e for e in payload["files"] if e["name"] == "data.json")
    listed["hash"] = signed_hash
    signed = files | {SIGNATURES_FILE: json.dumps(
        {"signatures": [_signed_by_k1(keys, {}, payload)]}).encode()}
    with pytest.raises(SignatureError) as caught:
        load_bundle(pack(signed), keyring, now=NOW)
    assert caught.value.reason == "signature_malformed"
    assert "data.json" in str(caught.value) and "\n" not in str(caught.value)


def test_a_signed_hash_in_upper_case_hex_verifies(keys: Keys, keyring: Keyring) -> None:
    """Hex digits are compared without regard to case, as before the shape check."""
    files = bundle_files()
    payload = signature_payload(files, iat=int(NOW))
    for entry in payload["files"]:
        entry["hash"] = entry["hash"].upper()
    signed = files | {SIGNATURES_FILE: json.dumps(
        {"signatures": [_signed_by_k1(keys, {}, payload)]}).encode()}
    assert load_bundle(pack(signed), keyring, now=NOW).key_id == "k1"
