"""The keyring: public keys trusted to sign bundles, reloadable while a sidecar runs.

Keys come from files (PEM, or a JWK / JWK Set in any file named) or directories, where only
``*.pem`` and ``*.jwk`` are keys (DESIGN §8.5, and what ``--help`` says): other files, such as
a ``settings.json`` next to them, are not read. A key's id is the file stem unless its JWK names
a ``kid``. Several keys may be trusted at once (rotation) and a list of
revoked ids is honoured even if a revoked key's file is still present.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pdp.bundle.errors import KeyringError
from pdp.bundle.keys import (
    PublicKey,
    check_key_id,
    parse_public_jwks,
    parse_public_pem,
    public_pem,
)

KEY_SUFFIXES = (".pem", ".jwk")


@dataclass(frozen=True, slots=True)
class KeyringChange:
    """What a :meth:`Keyring.reload` changed, by key id."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class Keyring:
    """Public keys by id, plus revoked ids. Lookups are safe while another thread reloads."""

    def __init__(
        self,
        keys: Mapping[str, PublicKey],
        *,
        revoked: Iterable[str] = (),
        paths: Iterable[Path] = (),
    ) -> None:
        self._keys: dict[str, PublicKey] = dict(keys)
        self._revoked = frozenset(revoked)
        self._paths = tuple(paths)

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path], *, revoked: Iterable[str] = ()) -> Keyring:
        """Load every key found at ``paths`` (files or directories); at least one is required."""
        resolved = tuple(Path(p) for p in paths)
        return cls(_load_paths(resolved), revoked=revoked, paths=resolved)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Ids of the keys trusted now (revoked ids excluded), sorted."""
        return tuple(sorted(kid for kid in self._keys if kid not in self._revoked))

    @property
    def revoked(self) -> frozenset[str]:
        """Key ids that are never trusted, whatever files are present."""
        return self._revoked

    def key_for(self, key_id: str) -> PublicKey:
        """The trusted key with ``key_id``; refuses revoked and unknown ids."""
        if key_id in self._revoked:
            raise KeyringError("key_revoked", f"key {key_id!r} has been revoked")
        keys = self._keys  # one read of the reference: a concurrent reload swaps it whole
        try:
            return keys[key_id]
        except KeyError:
            trusted = ", ".join(self.key_ids) or "none"
            raise KeyringError(
                "key_unknown", f"key {key_id!r} is not in the keyring (trusted: {trusted})"
            ) from None

    def reload(self) -> KeyringChange:
        """Re-read the key files; on any error the keys in use stay as they were.

        A keyring built from keys in memory (no paths) has nothing to re-read and never changes.
        """
        if not self._paths:
            return KeyringChange(added=(), changed=(), removed=())
        fresh = _load_paths(self._paths)
        old = self._keys
        added = tuple(sorted(set(fresh) - set(old)))
        removed = tuple(sorted(set(old) - set(fresh)))
        changed = tuple(
            sorted(kid for kid in set(old) & set(fresh) if not _same_key(old[kid], fresh[kid]))
        )
        self._keys = fresh
        return KeyringChange(added=added, changed=changed, removed=removed)


def _same_key(a: PublicKey, b: PublicKey) -> bool:
    return public_pem(a) == public_pem(b)


def _load_paths(paths: tuple[Path, ...]) -> dict[str, PublicKey]:
    if not paths:
        raise KeyringError("keyring_empty", "no verification key given")
    keys: dict[str, PublicKey] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        try:
            info = os.stat(path)
        except OSError as exc:
            raise KeyringError("key_unreadable", f"{path}: {exc.strerror}") from exc
        if stat.S_ISDIR(info.st_mode):
            try:
                files = sorted(
                    p for p in path.iterdir() if p.suffix in KEY_SUFFIXES and p.is_file()
                )
            except OSError as exc:
                # A directory that cannot be listed for now: a refusal like any unreadable key
                # file, so a running sidecar keeps its keys (a raw OSError ended its watch).
                raise KeyringError("key_unreadable", f"{path}: {exc.strerror}") from exc
        else:
            files = [path]
        for file in files:
            for kid, key in _load_file(file):
                if kid in keys:
                    raise KeyringError(
                        "key_duplicate",
                        f"{file}: key id {kid!r} is also defined by {origin[kid]}",
                    )
                keys[kid], origin[kid] = key, file
    if not keys:
        shown = ", ".join(str(p) for p in paths)
        raise KeyringError("keyring_empty", f"no public keys (*.pem, *.jwk) found in {shown}")
    return keys


def _load_file(path: Path) -> list[tuple[str, PublicKey]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyringError("key_unreadable", f"{path}: {exc.strerror}") from exc
    if raw.lstrip().startswith(b"{"):
        return [
            (check_key_id(kid if kid is not None else path.stem), key)
            for kid, key in parse_public_jwks(raw, where=str(path))
        ]
    return [(check_key_id(path.stem), parse_public_pem(raw, where=str(path)))]
