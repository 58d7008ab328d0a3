"""The keyring: PEM and JWK keys, key ids, several trusted keys, revocation, reload."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from bundle_kit import Keys
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from pdp.bundle import Keyring, KeyringError, private_pem, public_pem


def _jwk(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, **extra: str) -> str:
    name = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    doc = json.loads(jwt.get_algorithm_by_name(name).to_jwk(key.public_key()))
    doc.update(extra)
    return json.dumps(doc)


def test_a_pem_file_is_trusted_under_its_file_stem(keys: Keys, tmp_path: Path) -> None:
    """A public key file `k7.pem` is trusted as key id `k7`."""
    (tmp_path / "k7.pem").write_bytes(public_pem(keys.trusted))
    assert Keyring.from_paths([tmp_path / "k7.pem"]).key_ids == ("k7",)


def test_a_jwk_names_its_own_kid(tmp_path: Path) -> None:
    """A JWK's `kid` wins over the file name."""
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "file-name.jwk").write_text(_jwk(key, kid="from-jwk"))
    assert Keyring.from_paths([tmp_path]).key_ids == ("from-jwk",)


def test_a_jwk_without_kid_uses_the_file_stem(tmp_path: Path) -> None:
    """A JWK without `kid` is trusted under its file stem."""
    (tmp_path / "edge.jwk").write_text(_jwk(ed25519.Ed25519PrivateKey.generate()))
    assert Keyring.from_paths([tmp_path]).key_ids == ("edge",)


def test_a_directory_holds_keys_only_in_pem_and_jwk_files(keys: Keys, tmp_path: Path) -> None:
    """In a key directory only *.pem and *.jwk are keys, as --help says: another JSON file
    beside them (settings, a README) does not make every verification fail."""
    (tmp_path / "k7.pem").write_bytes(public_pem(keys.trusted))
    (tmp_path / "settings.json").write_text('{"log_level": "info"}')
    assert Keyring.from_paths([tmp_path]).key_ids == ("k7",)


def test_a_jwk_set_named_explicitly_is_read_whatever_its_suffix(tmp_path: Path) -> None:
    """A key file given by name is read by its content, so `--verification-key jwks.json` works."""
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [json.loads(_jwk(key, kid="a"))]}))
    assert Keyring.from_paths([tmp_path / "jwks.json"]).key_ids == ("a",)


def test_a_directory_and_a_file_combine(keys: Keys, tmp_path: Path) -> None:
    """Several paths, files or directories, give one keyring with every key."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.pem").write_bytes(public_pem(keys.trusted))
    (tmp_path / "dir" / "README.txt").write_text("not a key")
    (tmp_path / "b.pem").write_bytes(public_pem(keys.rsa))
    keyring = Keyring.from_paths([tmp_path / "dir", tmp_path / "b.pem"])
    assert keyring.key_ids == ("a", "b")


def test_revoked_ids_are_not_trusted_even_with_their_file(keys: Keys, tmp_path: Path) -> None:
    """A revoked key id is refused although its key file is still present."""
    (tmp_path / "old.pem").write_bytes(public_pem(keys.revoked))
    (tmp_path / "new.pem").write_bytes(public_pem(keys.trusted))
    keyring = Keyring.from_paths([tmp_path], revoked=["old"])
    assert keyring.key_ids == ("new",)
    with pytest.raises(KeyringError) as caught:
        keyring.key_for("old")
    assert caught.value.reason == "key_revoked"


def test_an_unknown_id_is_refused_naming_the_trusted_ones(keys: Keys, tmp_path: Path) -> None:
    """Looking up an absent key id says which ids are trusted."""
    (tmp_path / "k1.pem").write_bytes(public_pem(keys.trusted))
    with pytest.raises(KeyringError) as caught:
        Keyring.from_paths([tmp_path]).key_for("k9")
    assert caught.value.reason == "key_unknown"
    assert "k1" in str(caught.value)


def test_a_private_key_file_is_refused(keys: Keys, tmp_path: Path) -> None:
    """A private key given as a verification key is refused: private keys stay with the signer."""
    (tmp_path / "k1.pem").write_bytes(private_pem(keys.trusted))
    with pytest.raises(KeyringError) as caught:
        Keyring.from_paths([tmp_path / "k1.pem"])
    assert caught.value.reason == "key_private"


def test_a_garbled_key_file_names_the_file(tmp_path: Path) -> None:
    """A key file that does not parse is refused, naming the file."""
    (tmp_path / "bad.pem").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    with pytest.raises(KeyringError) as caught:
        Keyring.from_paths([tmp_path])
    assert caught.value.reason == "key_invalid"
    assert "bad.pem" in str(caught.value)


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    """A keyring with no key at all is refused: it could never verify anything."""
    with pytest.raises(KeyringError) as caught:
        Keyring.from_paths([tmp_path])
    assert caught.value.reason == "keyring_empty"


def test_two_files_with_one_key_id_are_refused(keys: Keys, tmp_path: Path) -> None:
    """The same key id from two files is ambiguous and refused."""
    (tmp_path / "k1.pem").write_bytes(public_pem(keys.trusted))
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "other.jwk").write_text(_jwk(key, kid="k1"))
    with pytest.raises(KeyringError) as caught:
        Keyring.from_paths([tmp_path])
    assert caught.value.reason == "key_duplicate"


def test_reload_picks_up_added_changed_and_removed_keys(keys: Keys, tmp_path: Path) -> None:
    """reload() sees new, replaced and deleted key files without a restart."""
    (tmp_path / "stay.pem").write_bytes(public_pem(keys.trusted))
    (tmp_path / "swap.pem").write_bytes(public_pem(keys.revoked))
    (tmp_path / "gone.pem").write_bytes(public_pem(keys.stranger))
    keyring = Keyring.from_paths([tmp_path])
    (tmp_path / "gone.pem").unlink()
    (tmp_path / "swap.pem").write_bytes(public_pem(keys.rsa))
    (tmp_path / "new.pem").write_bytes(public_pem(keys.stranger))
    change = keyring.reload()
    assert (change.added, change.changed, change.removed) == (("new",), ("swap",), ("gone",))
    assert keyring.key_ids == ("new", "stay", "swap")
    assert public_pem(keyring.key_for("swap")) == public_pem(keys.rsa)


def test_reload_without_changes_reports_none(keys: Keys, tmp_path: Path) -> None:
    """reload() of unchanged files reports no change."""
    (tmp_path / "k1.pem").write_bytes(public_pem(keys.trusted))
    keyring = Keyring.from_paths([tmp_path])
    assert not keyring.reload()


def test_a_failed_reload_keeps_the_keys_in_use(keys: Keys, tmp_path: Path) -> None:
    """A broken key file during reload is reported and the previous keys stay trusted."""
    (tmp_path / "k1.pem").write_bytes(public_pem(keys.trusted))
    keyring = Keyring.from_paths([tmp_path])
    (tmp_path / "broken.pem").write_text("garbage")
    with pytest.raises(KeyringError):
        keyring.reload()
    assert keyring.key_ids == ("k1",)


def test_a_keyring_built_in_memory_reloads_to_no_change(keys: Keys) -> None:
    """A keyring made from key objects (no files) keeps its keys on reload."""
    keyring = Keyring({"mem": keys.trusted.public_key()})  # type: ignore[union-attr]
    assert not keyring.reload()
    assert keyring.key_ids == ("mem",)
