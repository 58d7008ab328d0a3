"""Reading archives and directories safely: names, limits, and memory under a gzip bomb."""

from __future__ import annotations

import tarfile
import tracemalloc
from pathlib import Path

import pytest
from bundle_kit import gzip_bomb, raw_tar, regular

from pdp.bundle import Limits, UnsafeArchiveError, read_archive, read_directory, write_archive
from pdp.bundle.archive import safe_name

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/etc/passwd", "path_absolute"),
        ("../x.json", "path_traversal"),
        ("policies/../../x.json", "path_traversal"),
        ("policies//x.json", "path_invalid"),
        ("policies/./x.json", "path_invalid"),
        ("policies\\x.json", "path_invalid"),
        ("policies/x\n.json", "path_invalid"),
        ("", "path_invalid"),
    ],
)
def test_unsafe_names_are_refused(raw: str, reason: str) -> None:
    """Absolute, parent-relative, empty-component, backslash and control-char names are refused."""
    with pytest.raises(UnsafeArchiveError) as caught:
        safe_name(raw)
    assert caught.value.reason == reason


def test_a_leading_dot_slash_is_accepted() -> None:
    """`./data.json`, as `tar -C dir .` writes it, is read as `data.json`."""
    assert read_archive(raw_tar(regular("./data.json", b"{}")), Limits()) == {"data.json": b"{}"}


def test_directory_entries_are_skipped() -> None:
    """Directory members are allowed and produce no file."""
    directory = tarfile.TarInfo("policies")
    directory.type = tarfile.DIRTYPE
    archive = raw_tar((directory, None), regular("policies/a.json", b"{}"))
    assert read_archive(archive, Limits()) == {"policies/a.json": b"{}"}


def test_the_total_size_limit_counts_every_file() -> None:
    """Files each under the per-file limit are refused once their sum passes the total limit."""
    archive = write_archive({f"f{i}": b"x" * 600 for i in range(4)})
    with pytest.raises(UnsafeArchiveError) as caught:
        read_archive(archive, Limits(max_file_bytes=1000, max_total_bytes=2000))
    assert caught.value.reason == "total_too_large"


def test_a_truncated_archive_is_refused() -> None:
    """A .tar.gz cut short is refused as invalid, not half-read."""
    archive = write_archive({"data.json": b"{}" * 5000})
    with pytest.raises(UnsafeArchiveError) as caught:
        read_archive(archive[: len(archive) // 2], Limits())
    assert caught.value.reason == "archive_invalid"


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    """A 60 MiB-of-zeros member packed into ~60 KiB is refused holding only a few MiB."""
    bomb = gzip_bomb(60 * MiB)  # under the per-file limit: only the ratio check can stop it
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchiveError) as caught:
            read_archive(bomb, Limits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.reason == "compression_ratio"
    assert peak < 8 * MiB


def test_a_bomb_under_a_generous_ratio_stops_at_the_total_limit() -> None:
    """With the ratio check relaxed, the unpacked-size ceiling still stops the bomb."""
    with pytest.raises(UnsafeArchiveError) as caught:
        read_archive(gzip_bomb(20 * MiB), Limits(max_ratio=1e9, max_total_bytes=4 * MiB))
    assert caught.value.reason == "total_too_large"


def test_a_small_bundle_is_not_mistaken_for_a_bomb() -> None:
    """Tiny, highly compressible bundles stay under the ratio grace and are read."""
    files = {f"tests/t{i}.json": b'{"cases": []}' for i in range(200)}
    assert read_archive(write_archive(files), Limits()) == files


def test_a_directory_bundle_may_be_reached_through_a_linked_root(tmp_path: Path) -> None:
    """The bundle directory itself may be a symlink (e.g. `current -> v42`); its entries may not."""
    real = tmp_path / "v42"
    (real / "policies").mkdir(parents=True)
    (real / "data.json").write_bytes(b"{}")
    (tmp_path / "current").symlink_to(real)
    assert read_directory(tmp_path / "current", Limits()) == {"data.json": b"{}"}
