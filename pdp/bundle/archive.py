"""Reading a bundle's files safely, from a gzip tar stream or from a directory.

Every limit is enforced *before* the bytes it guards are held: a tar member's header is checked
(type, name, size, count, running total) before its data is read, and the decompressed stream is
metered as it is inflated, so a gzip bomb is stopped once it crosses the size or ratio limit
instead of being unpacked. Only regular files and directories are accepted; links, devices,
FIFOs, absolute paths, ``..`` and duplicate names are refused with a reason naming the entry.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pdp.bundle.errors import UnsafeArchiveError

MiB = 1024 * 1024

# Below this many decompressed bytes the ratio is not judged: tar headers and padding of a small
# bundle compress far beyond 100:1 while being harmless, and the bytes held are bounded anyway.
RATIO_GRACE_BYTES = 1 * MiB

# Characters no bundle path needs: control characters (a newline in a name can forge log
# lines) and backslashes (a path separator elsewhere).
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")

# The reader's chunk size: the most a single read can inflate past a limit before it is refused.
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Size and count limits for reading a bundle (DESIGN §6 defaults)."""

    max_files: int = 10_100
    """Most regular files a bundle may hold: 10,000 policies plus the manifest, signatures,
    data and tests around them (DESIGN §6 says 10,000; see docs/decisions.md, Bundles)."""
    max_file_bytes: int = 64 * MiB
    """Largest single file, unpacked."""
    max_total_bytes: int = 256 * MiB
    """Largest sum of all files, unpacked."""
    max_ratio: float = 100.0
    """Largest decompressed : compressed ratio of a .tar.gz (judged past 1 MiB unpacked)."""
    max_manifest_bytes: int = 1 * MiB
    """Largest ``.manifest`` (it holds a handful of fields and free-form metadata)."""
    max_signatures_bytes: int = 8 * MiB
    """Largest ``.signatures.json``: parsed before anything is trusted, so bounded tightly (its
    JWS lists every file, about 250 bytes each: 10,000 files need ~3 MiB)."""


def safe_name(raw: str) -> str:
    """Return the normalised bundle path of an entry name, or refuse it.

    A leading ``./`` (as ``tar -C dir .`` writes) is dropped; absolute paths, ``..``, empty
    components, backslashes and control characters are refused.
    """
    if raw.startswith("/"):
        raise UnsafeArchiveError(
            "path_absolute", f"{raw}: absolute paths are not allowed", file=raw
        )
    if _UNSAFE_CHARS.search(raw):
        raise UnsafeArchiveError(
            "path_invalid", f"{raw!r}: control characters and backslashes are not allowed", file=raw
        )
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")  # directory members may end with a slash
    parts = name.split("/")
    if ".." in parts:
        raise UnsafeArchiveError("path_traversal", f"{raw}: '..' is not allowed in paths", file=raw)
    if not name or "" in parts or "." in parts:
        raise UnsafeArchiveError("path_invalid", f"{raw!r}: not a normal relative path", file=raw)
    return name


class _FileBudget:
    """Running count and size of the files accepted so far, checked against the limits."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.files: dict[str, bytes] = {}
        self._total = 0
        # Read before anything is verified, so held to tighter limits than policies and data.
        self._parsed_first = {
            ".manifest": ("manifest_too_large", limits.max_manifest_bytes),
            ".signatures.json": ("signatures_too_large", limits.max_signatures_bytes),
        }

    def admit(self, name: str, size: int) -> None:
        """Refuse a file before reading it if it would break a limit or repeat a name."""
        if name in self.files:
            raise UnsafeArchiveError("duplicate_entry", f"{name}: appears twice", file=name)
        if len(self.files) + 1 > self._limits.max_files:
            raise UnsafeArchiveError(
                "too_many_files",
                f"{name}: more than {self._limits.max_files} files in the bundle",
                file=name,
            )
        if name in self._parsed_first:
            reason, limit = self._parsed_first[name]
            if size > limit:
                raise UnsafeArchiveError(
                    reason, f"{name}: {size} bytes is over the limit of {limit}", file=name
                )
        if size > self._limits.max_file_bytes:
            raise UnsafeArchiveError(
                "file_too_large",
                f"{name}: {size} bytes is over the per-file limit of {self._limits.max_file_bytes}",
                file=name,
            )
        if self._total + size > self._limits.max_total_bytes:
            raise UnsafeArchiveError(
                "total_too_large",
                f"{name}: the bundle's files exceed the limit of {self._limits.max_total_bytes} "
                "bytes unpacked",
                file=name,
            )
        self._total += size

    def store(self, name: str, data: bytes) -> None:
        """Keep an admitted file's bytes."""
        self.files[name] = data


class _CountingReader(io.RawIOBase):
    """A read-only stream that counts the bytes read through it."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def _inflate(stream: BinaryIO, limits: Limits) -> io.BytesIO:
    """Inflate a gzip stream chunk by chunk, refusing it once it grows past the limits.

    At most one chunk past a limit is ever produced, whatever the archive claims: a gzip bomb is
    stopped by the ratio or size check long before it could fill memory.
    """
    compressed = _CountingReader(stream)
    # Tar headers, padding and the end-of-archive blocks come on top of the files' bytes.
    ceiling = limits.max_total_bytes + (limits.max_files + 64) * 1024 + MiB
    inflated = io.BytesIO()
    total = 0
    try:
        with gzip.GzipFile(fileobj=compressed, mode="rb") as gz:
            while chunk := gz.read(_CHUNK):
                total += len(chunk)
                if total > ceiling:
                    raise UnsafeArchiveError(
                        "total_too_large",
                        f"the archive inflates past {limits.max_total_bytes} bytes",
                    )
                if total > RATIO_GRACE_BYTES and total > limits.max_ratio * compressed.count:
                    raise UnsafeArchiveError(
                        "compression_ratio",
                        f"the archive inflates more than {limits.max_ratio:g}:1 (a gzip bomb?)",
                    )
                inflated.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnsafeArchiveError("archive_invalid", f"not a valid gzip stream: {exc}") from exc
    inflated.seek(0)
    return inflated


def _check_member(member: tarfile.TarInfo) -> str | None:
    """Return the safe name of a regular file member, None for a directory, or refuse it."""
    raw = member.name
    if member.issym():
        raise UnsafeArchiveError("symlink", f"{raw}: symbolic links are not allowed", file=raw)
    if member.islnk():
        raise UnsafeArchiveError("hardlink", f"{raw}: hard links are not allowed", file=raw)
    if member.ischr() or member.isblk() or member.isfifo():
        raise UnsafeArchiveError(
            "special_file", f"{raw}: devices and FIFOs are not allowed", file=raw
        )
    if member.isdir():
        # `tar -czf b.tar.gz -C dir .` writes the root directory itself first, as `./` (tarfile
        # drops the slash). It names no path inside the bundle, so safe_name would refuse it;
        # only that exact entry is exempt, any other directory's name is checked.
        if raw not in (".", "./"):
            safe_name(raw)
        return None
    name = safe_name(raw)
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.sparse is not None:
        raise UnsafeArchiveError(
            "special_file", f"{raw}: only regular files and directories are allowed", file=raw
        )
    return name


def read_archive(source: bytes | BinaryIO, limits: Limits) -> dict[str, bytes]:
    """Read every file of a .tar.gz bundle into memory, enforcing ``limits``.

    The gzip stream is inflated under the size and ratio limits first; then each tar member's
    header is checked (type, name, size, count, running total) before its data is copied out.
    Parsing the inflated tar in memory is about twice as fast as tarfile's stream mode, which
    matters for 10,000-file bundles; the bytes held stay bounded by the limits.
    """
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else source
    inflated = _inflate(stream, limits)
    # Members are sliced out of the inflated bytes: tarfile's extractfile() builds a file object
    # per member, a fifth of the reader's time on a 10,000-file bundle. Sparse members, whose data
    # is not stored contiguously, are refused by _check_member before they get here.
    whole = inflated.getvalue()
    size = len(whole)
    budget = _FileBudget(limits)
    try:
        with tarfile.open(fileobj=inflated, mode="r:") as tar:
            for member in tar:
                name = _check_member(member)
                if name is None:
                    continue
                budget.admit(name, member.size)
                if member.offset_data + member.size > size:
                    raise UnsafeArchiveError(
                        "archive_invalid", f"{name}: truncated archive member", file=name
                    )
                budget.store(name, whole[member.offset_data : member.offset_data + member.size])
    except tarfile.TarError as exc:
        raise UnsafeArchiveError("archive_invalid", f"not a valid tar archive: {exc}") from exc
    return budget.files


def read_directory(root: Path, limits: Limits) -> dict[str, bytes]:
    """Read every file of a bundle directory, with the archive's rules (no links, no devices)."""
    budget = _FileBudget(limits)
    try:
        # The root is the operator's own choice and may be a link (a deployment's "current");
        # only what is inside it must be a plain tree.
        root_stat = os.stat(root)
    except OSError as exc:
        raise UnsafeArchiveError("archive_invalid", f"{root}: {exc.strerror}") from exc
    if not stat.S_ISDIR(root_stat.st_mode):
        raise UnsafeArchiveError("archive_invalid", f"{root}: not a directory")
    pending = [root]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                _read_entry(root, Path(entry.path), budget, pending)
    return budget.files


def _read_entry(root: Path, path: Path, budget: _FileBudget, pending: list[Path]) -> None:
    """Check one directory entry (by lstat, never following links) and read it if it is a file."""
    name = path.relative_to(root).as_posix()
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeArchiveError("symlink", f"{name}: symbolic links are not allowed", file=name)
    if stat.S_ISDIR(info.st_mode):
        safe_name(name)
        pending.append(path)
        return
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeArchiveError(
            "special_file", f"{name}: devices, FIFOs and sockets are not allowed", file=name
        )
    if info.st_nlink > 1:
        # A hard link may be a second name for a file outside the bundle.
        raise UnsafeArchiveError(
            "hardlink", f"{name}: hard-linked files are not allowed", file=name
        )
    safe_name(name)
    budget.admit(name, info.st_size)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        # Read one byte past the admitted size: a file growing under us is refused, not trusted.
        data = handle.read(info.st_size + 1)
    if len(data) != info.st_size:
        raise UnsafeArchiveError("archive_invalid", f"{name}: changed while being read", file=name)
    budget.store(name, data)


def read_bundle_files(source: bytes | Path, limits: Limits) -> dict[str, bytes]:
    """Read a bundle given as .tar.gz bytes, a .tar.gz file, or a bundle directory."""
    if isinstance(source, bytes):
        return read_archive(source, limits)
    try:
        info = os.stat(source)
    except OSError as exc:
        raise UnsafeArchiveError("archive_invalid", f"{source}: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode):
        return read_directory(source, limits)
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO blocks until a writer comes, and a device may never end: neither is a
        # bundle, and a reader stuck in open() would also keep the process from exiting.
        raise UnsafeArchiveError(
            "archive_invalid", f"{source}: not a regular file or a directory")
    with open(source, "rb") as handle:
        return read_archive(handle, limits)

