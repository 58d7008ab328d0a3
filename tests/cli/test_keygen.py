"""`pdp keygen`: a private key only its owner can read, a public key to distribute."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cli_kit import Pdp

from pdp.bundle import ALGORITHMS, Keyring, load_private_key


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keygen_writes_a_key_pair_and_prints_the_key_id(
    pdp: Pdp, tmp_path: Path, algorithm: str
) -> None:
    """KID.key (mode 0600) and KID.pem are written for each algorithm; the key id is printed."""
    result = pdp("keygen", "--key-id", "signer-1", "--out-dir", tmp_path, "--alg", algorithm)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "signer-1"
    assert stat.S_IMODE((tmp_path / "signer-1.key").stat().st_mode) == 0o600
    load_private_key(tmp_path / "signer-1.key")
    assert Keyring.from_paths([tmp_path / "signer-1.pem"]).key_ids == ("signer-1",)


def test_keygen_never_overwrites_a_key(pdp: Pdp, tmp_path: Path) -> None:
    """A second keygen with the same id is refused (exit 1) and the first key is kept."""
    assert pdp("keygen", "--key-id", "k", "--out-dir", tmp_path).returncode == 0
    before = (tmp_path / "k.key").read_bytes()
    result = pdp("keygen", "--key-id", "k", "--out-dir", tmp_path)
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert (tmp_path / "k.key").read_bytes() == before


def test_keygen_refuses_a_key_id_that_is_not_a_file_stem(pdp: Pdp, tmp_path: Path) -> None:
    """A key id with a slash is a usage error (exit 2); nothing is written."""
    result = pdp("keygen", "--key-id", "../escape", "--out-dir", tmp_path)
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_a_ps256_key_tells_how_to_sign_with_ps256(pdp: Pdp, tmp_path: Path) -> None:
    """An RSA key does not record PS256, so keygen says on stderr that builds must ask for it;
    stdout still holds only the key id."""
    result = pdp("keygen", "--key-id", "pss", "--out-dir", tmp_path, "--alg", "PS256")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pss"
    assert "--alg PS256" in result.stderr


def test_the_key_directory_keygen_makes_is_its_owners_alone(pdp: Pdp, tmp_path: Path) -> None:
    """Even under umask 000, nobody else can write the directory holding the keys (and swap
    the public key verifiers will trust)."""
    out = tmp_path / "keys"
    result = pdp("keygen", "--key-id", "k", "--out-dir", out, umask=0)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "k.key").stat().st_mode) == 0o600
