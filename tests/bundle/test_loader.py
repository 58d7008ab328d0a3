"""Loading leaves the process as it found it: the garbage collector paused during a load resumes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from bundle_kit import NOW, Keys, bundle_files, pack, sign

from pdp.bundle import BundleError, Keyring, load_bundle


@pytest.fixture
def collector_disabled() -> Iterator[None]:
    """The collector switched off for one test, and back on after it."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_the_collector_runs_again_after_a_load(keys: Keys, keyring: Keyring) -> None:
    """A load pauses the cyclic garbage collector for speed and turns it back on."""
    assert gc.isenabled()
    load_bundle(pack(sign(bundle_files(), keys.signer())), keyring, now=NOW)
    assert gc.isenabled()


def test_the_collector_runs_again_after_a_refused_load(keys: Keys, keyring: Keyring) -> None:
    """A refused bundle does not leave the collector paused either."""
    with pytest.raises(BundleError):
        load_bundle(pack(sign(bundle_files(), keys.signer("k-unknown"))), keyring, now=NOW)
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_disabled")
def test_a_collector_switched_off_by_the_caller_stays_off(keys: Keys, keyring: Keyring) -> None:
    """A load never turns on a collector its caller had switched off."""
    load_bundle(pack(sign(bundle_files(), keys.signer())), keyring, now=NOW)
    assert not gc.isenabled()
