"""Key material: which algorithms we sign with, loading PEM/JWK files, generating key pairs.

Only asymmetric algorithms exist here: EdDSA (Ed25519, the default), ES256 (P-256), RS256 and
PS256 (RSA, at least 2048 bits). Each algorithm is tied to one key type, so a verifier never lets
a token's header choose how a key is interpreted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pdp.bundle.errors import KeyringError

Algorithm = Literal["EdDSA", "ES256", "RS256", "PS256"]
ALGORITHMS: tuple[Algorithm, ...] = ("EdDSA", "ES256", "RS256", "PS256")
DEFAULT_ALGORITHM: Algorithm = "EdDSA"
MIN_RSA_BITS = 2048

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_PUBLIC_TYPES = (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey)
_PRIVATE_TYPES = (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)

_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_key_id(key_id: str) -> str:
    """Return ``key_id`` if it is a usable key id (also a safe file stem), else refuse it."""
    if not _KEY_ID.fullmatch(key_id):
        raise KeyringError(
            "key_id_invalid",
            f"key id {key_id!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    return key_id


def key_matches(algorithm: str, key: PublicKey | PrivateKey) -> bool:
    """Whether ``key`` is the one key type ``algorithm`` is defined for."""
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey)
    if algorithm == "ES256":
        return isinstance(
            key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey
        ) and isinstance(key.curve, ec.SECP256R1)
    if algorithm in ("RS256", "PS256"):
        return isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey)
    return False


def natural_algorithm(key: PublicKey | PrivateKey) -> Algorithm:
    """The algorithm a key signs with when none is named (RSA keys default to RS256)."""
    for algorithm in ALGORITHMS:
        if key_matches(algorithm, key):
            return algorithm
    raise KeyringError("key_unsupported", f"unsupported key type {type(key).__name__}")


def _check_supported(key: PublicKey | PrivateKey, where: str) -> None:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise KeyringError(
            "key_unsupported", f"{where}: RSA keys must have at least {MIN_RSA_BITS} bits"
        )
    if not any(key_matches(alg, key) for alg in ALGORITHMS):
        raise KeyringError(
            "key_unsupported",
            f"{where}: not an Ed25519, P-256 or RSA key (use one of {', '.join(ALGORITHMS)})",
        )


def parse_public_pem(raw: bytes, *, where: str) -> PublicKey:
    """Load a PEM public key, refusing private keys (they must not be distributed to verifiers)."""
    if b"PRIVATE KEY" in raw:
        raise KeyringError(
            "key_private", f"{where}: is a private key; give the public key (.pem) instead"
        )
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as exc:
        raise KeyringError("key_invalid", f"{where}: not a PEM public key ({exc})") from exc
    if not isinstance(key, _PUBLIC_TYPES):
        raise KeyringError("key_unsupported", f"{where}: unsupported key type")
    _check_supported(key, where)
    return key


def parse_public_jwks(raw: bytes, *, where: str) -> list[tuple[str | None, PublicKey]]:
    """Load a JWK or a JWK Set as ``(kid or None, key)`` pairs; private JWKs are refused."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise KeyringError("key_invalid", f"{where}: not valid JSON ({exc})") from exc
    if isinstance(doc, dict) and isinstance(doc.get("keys"), list):
        entries = doc["keys"]
    elif isinstance(doc, dict):
        entries = [doc]
    else:
        raise KeyringError("key_invalid", f"{where}: not a JWK or JWK Set object")
    keys: list[tuple[str | None, PublicKey]] = []
    for index, entry in enumerate(entries):
        label = f"{where}[{index}]" if len(entries) > 1 else where
        if not isinstance(entry, dict):
            raise KeyringError("key_invalid", f"{label}: not a JWK object")
        if "d" in entry:
            raise KeyringError("key_private", f"{label}: is a private JWK; give the public key")
        try:
            jwk = jwt.PyJWK.from_dict(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise KeyringError("key_invalid", f"{label}: not a usable JWK ({exc})") from exc
        key = jwk.key
        if not isinstance(key, _PUBLIC_TYPES):
            raise KeyringError("key_unsupported", f"{label}: unsupported key type")
        _check_supported(key, label)
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise KeyringError("key_invalid", f"{label}: 'kid' must be a string")
        if len(entries) > 1 and kid is None:
            raise KeyringError("key_invalid", f"{label}: every key of a JWK Set needs a 'kid'")
        keys.append((kid, key))
    return keys


def load_private_key(path: Path) -> PrivateKey:
    """Load a signing key from a PEM (PKCS#8 or traditional) or private JWK file."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyringError("key_unreadable", f"{where}: {exc.strerror}") from exc
    key: object
    if raw.lstrip().startswith(b"{"):
        try:
            key = jwt.PyJWK.from_json(raw.decode()).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise KeyringError("key_invalid", f"{where}: not a usable JWK ({exc})") from exc
    else:
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyringError(
                "key_invalid", f"{where}: not an unencrypted PEM private key ({exc})"
            ) from exc
    if not isinstance(key, _PRIVATE_TYPES):
        raise KeyringError("key_invalid", f"{where}: not a private key of a supported type")
    _check_supported(key, where)
    return key


def generate_private_key(algorithm: Algorithm = DEFAULT_ALGORITHM) -> PrivateKey:
    """A fresh private key for ``algorithm`` (RSA keys are 3072 bits)."""
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def private_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM of a private key, unencrypted (protect it with file permissions)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: PrivateKey | PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a key's public half."""
    public = key.public_key() if isinstance(key, _PRIVATE_TYPES) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_key_pair(
    out_dir: Path, key_id: str, algorithm: Algorithm = DEFAULT_ALGORITHM
) -> tuple[Path, Path]:
    """Write ``KID.key`` (private, mode 0600) and ``KID.pem`` (public); never overwrite a key."""
    check_key_id(key_id)
    key = generate_private_key(algorithm)
    # A directory made here is its owner's alone whatever the umask: under umask 000 it was
    # world-writable, and whoever can write it can swap the public key verifiers will trust.
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path, public_path = out_dir / f"{key_id}.key", out_dir / f"{key_id}.pem"
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise KeyringError("key_exists", f"{path}: already exists; not overwriting a key")
    _write_new(private_path, private_pem(key), 0o600)
    try:
        _write_new(public_path, public_pem(key), 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` from the start (no window of wider permissions)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise KeyringError("key_exists", f"{path}: already exists; not overwriting a key") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have narrowed the mode passed to open
