"""Bundle files are replaced whole: readers see the old file or the new one, never half."""

from __future__ import annotations

import stat
from pathlib import Path

from pdp.bundle.atomic import write_atomically


def test_replaces_the_file_and_leaves_no_temporary_behind(tmp_path: Path) -> None:
    """The new bytes replace the old ones and nothing else is left in the directory."""
    target = tmp_path / "bundle.tar.gz"
    target.write_bytes(b"old")
    write_atomically(target, b"new bundle")
    assert target.read_bytes() == b"new bundle"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle.tar.gz"]


def test_bundle_files_are_world_readable_and_keep_a_given_mtime(tmp_path: Path) -> None:
    """Bundles are public data (0644), and the sidecar's "last confirmed" time lives in mtime."""
    target = tmp_path / "bundle.tar.gz"
    write_atomically(target, b"x", mtime=1_700_000_000.0)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.stat().st_mtime == 1_700_000_000.0


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    """If the data cannot be written, the previous file stays as it was and no temporary is left."""
    target = tmp_path / "bundle.tar.gz"
    target.write_bytes(b"old")
    try:
        write_atomically(target, "not bytes")  # type: ignore[arg-type]
    except TypeError:
        pass
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle.tar.gz"]
