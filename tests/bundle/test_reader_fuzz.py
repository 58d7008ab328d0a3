"""Robustness: damaged archives and key files give a BundleError, never another exception."""

from __future__ import annotations

import json

from bundle_kit import NOW, Keys, bundle_files, pack, sign
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.bundle import BundleError, Keyring, load_bundle, read_archive
from pdp.bundle.archive import Limits
from pdp.bundle.keys import parse_public_jwks, parse_public_pem

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(junk=st.binary(max_size=4096))
def test_arbitrary_bytes_are_refused_cleanly(junk: bytes) -> None:
    """Any bytes given as a bundle are read or refused with a BundleError."""
    try:
        read_archive(junk, Limits())
    except BundleError:
        pass


@FUZZ
@given(data=st.data())
def test_damaged_bundles_are_refused_cleanly(
    data: st.DataObject, keys: Keys, shared_keyring: Keyring
) -> None:
    """Flipping, cutting or inserting bytes anywhere in a signed bundle never crashes the loader."""
    archive = bytearray(pack(sign(bundle_files(), keys.signer())))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(archive) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            archive[index] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del archive[index:]
            break
        else:
            archive[index:index] = data.draw(st.binary(min_size=1, max_size=64))
    try:
        load_bundle(bytes(archive), shared_keyring, now=NOW)
    except BundleError:
        pass


@FUZZ
@given(text=st.binary(max_size=2048))
def test_arbitrary_key_files_are_refused_cleanly(text: bytes) -> None:
    """Any bytes given as a PEM or JWK key file are loaded or refused with a BundleError."""
    for parse in (parse_public_pem, parse_public_jwks):
        try:
            parse(text, where="fuzz.key")
        except BundleError:
            pass


@FUZZ
@given(
    jwk=st.dictionaries(
        st.sampled_from(["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "keys"]),
        st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text(), max_size=2)),
    )
)
def test_arbitrary_jwk_objects_are_refused_cleanly(jwk: dict[str, object]) -> None:
    """JWK-shaped objects with arbitrary members are loaded or refused with a BundleError."""
    try:
        parse_public_jwks(json.dumps(jwk).encode(), where="fuzz.jwk")
    except BundleError:
        pass
