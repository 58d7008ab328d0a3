"""The built-in marketplace source builds into a bundle that loads with all its tests passing."""

from __future__ import annotations

from pathlib import Path

from bundle_kit import NOW, Keys

from pdp.bundle import Keyring, build_bundle, load_bundle, read_source_dir

MARKETPLACE = Path(__file__).resolve().parents[2] / "bundles" / "marketplace"


def test_the_marketplace_bundle_builds_and_loads(keys: Keys, keyring: Keyring) -> None:
    """bundles/marketplace → signed .tar.gz → verified, compiled, every bundle test passing."""
    contents = read_source_dir(MARKETPLACE, revision="builtin", sequence=1)
    loaded = load_bundle(build_bundle(contents, signer=keys.signer()), keyring, now=NOW)
    assert {p.id for p in loaded.contents.policies} == {
        "data-residency-required",
        "restricted-countries",
        "confidential-certification-required",
        "https-required",
        "enterprise-sla-minimum",
    }
    assert loaded.test_report.passed and not loaded.test_report.failed
    assert loaded.content_hash == contents.content_hash


def test_examples_are_not_part_of_the_bundle() -> None:
    """Only policies, data and tests are packed; the README and examples stay out."""
    names = read_source_dir(MARKETPLACE).files
    assert not [n for n in names if n.startswith("examples/") or n.endswith(".md")]
