"""Fixtures of the command-line tests: keys and a marketplace bundle made by `pdp` itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_kit import MARKETPLACE, Pdp, run_pdp


@pytest.fixture
def pdp() -> Pdp:
    """The `pdp` command."""
    return run_pdp


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with key pair `k1` (EdDSA) made by `pdp keygen`."""
    directory = tmp_path_factory.mktemp("keys")
    assert run_pdp("keygen", "--key-id", "k1", "--out-dir", directory).returncode == 0
    return directory


@pytest.fixture(scope="session")
def marketplace_bundle(tmp_path_factory: pytest.TempPathFactory, key_dir: Path) -> Path:
    """bundles/marketplace built and signed with k1 by `pdp bundle build`."""
    out = tmp_path_factory.mktemp("built") / "marketplace.tar.gz"
    result = run_pdp(
        "bundle", "build", MARKETPLACE, "-o", out,
        "--signing-key", key_dir / "k1.key", "--key-id", "k1", "--sequence", "7",
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    """A writable copy of bundles/marketplace."""
    return Path(shutil.copytree(MARKETPLACE, tmp_path / "source"))
