"""Fixtures of the bundle tests: one set of keys per session, a keyring per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_kit import Keys, keyring_for, make_keys

from pdp.bundle import Keyring


@pytest.fixture(scope="session")
def keys() -> Keys:
    """Keys shared by every test (generating RSA keys is slow)."""
    return make_keys()


@pytest.fixture(scope="session")
def shared_keyring(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    """The same keyring as ``keyring``, once per session (for property-based tests)."""
    return keyring_for(keys, tmp_path_factory.mktemp("keys"))


@pytest.fixture
def keyring(keys: Keys, tmp_path: Path) -> Keyring:
    """k1 (Ed25519) and k-rsa trusted, k-old present but revoked."""
    return keyring_for(keys, tmp_path / "keys")
