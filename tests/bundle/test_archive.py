"""Reading archives and directories safely: names, limits, and memory under a gzip bomb."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from bundle_kit import NOW, Keys, bundle_files, gzip_bomb, pack, raw_tar, regular, sign

from pdp.bundle import (
    Keyring,
    Limits,
    UnsafeArchiveError,
    load_bundle,
    read_archive,
    read_directory,
    write_archive,
)
from pdp.bundle.archive import read_bundle_files, safe_name

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


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs the tar command")
def test_a_bundle_repacked_with_gnu_tar_loads(keys: Keys, keyring: Keyring, tmp_path: Path) -> None:
    """`tar -czf b.tar.gz -C dir .` writes a `./` root entry first; the bundle still loads."""
    built = tmp_path / "built.tar.gz"
    built.write_bytes(pack(sign(bundle_files(), keys.signer())))
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(built), "-C", str(unpacked)], check=True)
    repacked = tmp_path / "repack.tar.gz"
    subprocess.run(["tar", "-czf", str(repacked), "-C", str(unpacked), "."], check=True)
    with tarfile.open(repacked) as tar:
        assert tar.getnames()[0] == "."  # the entry this test is about
    loaded = load_bundle(repacked, keyring, now=NOW)
    assert loaded.verified


@pytest.mark.parametrize("raw", [".", "./"])
def test_only_a_directory_may_be_named_as_the_root(raw: str) -> None:
    """A regular file named `.` or `./` is still refused: only the root directory entry is."""
    with pytest.raises(UnsafeArchiveError) as caught:
        read_archive(raw_tar(regular(raw, b"{}")), Limits())
    assert caught.value.reason == "path_invalid"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("..", "path_traversal"), ("/etc", "path_absolute"), ("./.", "path_invalid")],
)
def test_other_directory_entries_keep_their_name_checks(raw: str, reason: str) -> None:
    """Exempting the `./` root entry does not let any other directory name through."""
    directory = tarfile.TarInfo(raw)
    directory.type = tarfile.DIRTYPE
    with pytest.raises(UnsafeArchiveError) as caught:
        read_archive(raw_tar((directory, None)), Limits())
    assert caught.value.reason == reason


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


def test_a_fifo_given_as_the_bundle_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a FIFO would wait for a writer forever: it is refused as not a bundle."""
    fifo = tmp_path / "bundle.tar.gz"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeArchiveError) as caught:
        read_bundle_files(fifo, Limits())
    assert caught.value.reason == "archive_invalid"
    assert "not a regular file or a directory" in str(caught.value)


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
