"""`pdp run --dev`'s bundle: built from the built-in source and signed with the local dev key."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from test_process_support import MARKETPLACE

from pdp.bundle import Keyring, load_bundle
from pdp.sidecar.dev import BUILTIN_BUNDLE_ENV, prepare_dev_bundle


def test_the_dev_bundle_verifies_with_the_dev_key(tmp_path: Path) -> None:
    dev = prepare_dev_bundle(tmp_path, environ={}, now=1_800_000_000.0)
    loaded = load_bundle(dev.bundle, Keyring.from_paths([dev.verification_key]),
                         now=1_800_000_000.0)
    assert loaded.verified and loaded.key_id == "pdp-dev"
    assert loaded.manifest.revision == "dev"


def test_unchanged_source_gives_the_same_bytes_at_every_start(tmp_path: Path) -> None:
    """Workers sharing a directory rewrite identical bytes, not a conflicting sequence 1."""
    source = tmp_path / "source"
    shutil.copytree(MARKETPLACE, source)
    environ = {BUILTIN_BUNDLE_ENV: str(source)}
    first = prepare_dev_bundle(tmp_path, environ=environ, now=1_800_000_000.0).bundle.read_bytes()
    again = prepare_dev_bundle(tmp_path, environ=environ, now=1_800_000_999.0).bundle.read_bytes()
    assert again == first

    policy = next((source / "policies").glob("*.yaml"))
    later = policy.stat().st_mtime + 60
    os.utime(policy, (later, later))
    edited = prepare_dev_bundle(tmp_path, environ=environ, now=1_800_000_999.0).bundle
    assert edited.read_bytes() != first
