"""Test helpers for the bundle layer: keys, a small valid bundle, and ways to break it."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pdp.bundle import (
    MANIFEST_FILE,
    SIGNATURES_FILE,
    JwsSigner,
    Keyring,
    Manifest,
    PrivateKey,
    public_pem,
    sign_files,
    signature_payload,
    write_archive,
)
from pdp.bundle.manifest import timestamp

CREATED_AT = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW = CREATED_AT + 3600.0

POLICY: dict[str, Any] = {
    "id": "https-required",
    "name": "HTTPS required",
    "description": "Production services must use HTTPS endpoints.",
    "type": "security",
    "enabled": True,
    "severity": "critical",
    "enforcement": "deny",
    "when": {"field": "environment", "op": "eq", "value": "production"},
    "rule": {"require_https": True},
}

DATA: dict[str, Any] = {
    "roles": {"consumer": ["service.read", "service.consume"]},
    "users": {"user-456": {"roles": ["consumer"]}},
    "services": {"svc-1": {"owner": "provider-123", "level": "internal"}},
}

ACCESS_CASE: dict[str, Any] = {
    "name": "a consumer may read a service",
    "query": "check_access",
    "input": {"user_id": "user-456", "service_id": "svc-1", "action": "read", "context": {}},
    "expect": {"allowed": True},
}


def json_bytes(value: object) -> bytes:
    """Pretty JSON bytes, as a person would write the file."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def manifest_bytes(sequence: int = 1, *, expires_at: float | None = None) -> bytes:
    """A valid ``.manifest`` with revision = the sequence."""
    return Manifest(
        revision=str(sequence),
        sequence=sequence,
        created_at=timestamp(CREATED_AT),
        expires_at=timestamp(expires_at) if expires_at is not None else None,
    ).to_json_bytes()


def bundle_files(sequence: int = 1, *, expires_at: float | None = None) -> dict[str, bytes]:
    """The unsigned files of a small valid bundle: one policy, data, one passing test."""
    return {
        MANIFEST_FILE: manifest_bytes(sequence, expires_at=expires_at),
        "policies/https-required.json": json_bytes(POLICY),
        "data.json": json_bytes(DATA),
        "tests/access.json": json_bytes({"cases": [ACCESS_CASE]}),
    }


@dataclass(frozen=True)
class Keys:
    """The keys of the tests: trusted, revoked, stranger, and one of another type."""

    trusted: PrivateKey  # Ed25519, kid "k1"
    rsa: PrivateKey  # RSA-2048, kid "k-rsa" (trusted)
    revoked: PrivateKey  # Ed25519, kid "k-old" (in the directory, but revoked)
    stranger: PrivateKey  # Ed25519, kid "k-stranger" (never trusted)

    def signer(self, kid: str = "k1") -> JwsSigner:
        key = {"k1": self.trusted, "k-rsa": self.rsa, "k-old": self.revoked}.get(kid, self.stranger)
        return JwsSigner(key, kid)


def make_keys() -> Keys:
    """Fresh keys (RSA at the 2048-bit minimum to keep the tests quick)."""
    return Keys(
        trusted=ed25519.Ed25519PrivateKey.generate(),
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        revoked=ed25519.Ed25519PrivateKey.generate(),
        stranger=ed25519.Ed25519PrivateKey.generate(),
    )


def write_keyring_dir(keys: Keys, directory: Path) -> Path:
    """Write the trusted, RSA and revoked public keys as ``<kid>.pem`` files."""
    directory.mkdir(parents=True, exist_ok=True)
    for kid, key in (("k1", keys.trusted), ("k-rsa", keys.rsa), ("k-old", keys.revoked)):
        (directory / f"{kid}.pem").write_bytes(public_pem(key))
    return directory


def keyring_for(keys: Keys, directory: Path) -> Keyring:
    """The keyring of the tests: k1, k-rsa trusted; k-old revoked."""
    return Keyring.from_paths([write_keyring_dir(keys, directory)], revoked=["k-old"])


def sign(files: Mapping[str, bytes], signer: JwsSigner) -> dict[str, bytes]:
    """``files`` plus a ``.signatures.json`` made by ``signer``."""
    signed = dict(files)
    signed[SIGNATURES_FILE] = sign_files(files, signer, iat=CREATED_AT)
    return signed


def pack(files: Mapping[str, bytes]) -> bytes:
    """A reproducible .tar.gz of ``files``."""
    return write_archive(files)


def b64(data: bytes) -> str:
    """Unpadded base64url, as JWS uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_token(header: Mapping[str, Any], payload: Mapping[str, Any], secret: bytes) -> str:
    """A compact JWS made by hand: HMAC-SHA256 with ``secret``, or no signature if empty."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if not secret:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def with_token(files: Mapping[str, bytes], *tokens: str) -> dict[str, bytes]:
    """``files`` plus a ``.signatures.json`` holding exactly ``tokens``."""
    signed = dict(files)
    signed[SIGNATURES_FILE] = json.dumps({"signatures": list(tokens)}).encode()
    return signed


def payload_of(files: Mapping[str, bytes]) -> dict[str, Any]:
    """The signature payload a signer would sign for ``files``."""
    return signature_payload(files, iat=CREATED_AT)


def raw_tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A .tar.gz made member by member, for archives the builder would never write."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    """A regular-file member."""
    return tarfile.TarInfo(name), data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    """A member of a non-regular type (symlink, hard link, device, FIFO)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def flip_byte(data: bytes, index: int = -2) -> bytes:
    """``data`` with one byte changed."""
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def gzip_bomb(size: int) -> bytes:
    """A .tar.gz whose one member, data.json, is ``size`` zero bytes: ~1000:1 compression.

    The zeros are streamed into the compressor, never held in memory at once.
    """
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        header = tarfile.TarInfo("data.json")
        header.size = size
        gz.write(header.tobuf(format=tarfile.GNU_FORMAT))
        chunk = bytes(1024 * 1024)
        for offset in range(0, size, len(chunk)):
            gz.write(chunk[: size - offset])
    return raw.getvalue()
