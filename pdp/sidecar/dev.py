"""`pdp run --dev`: serve the built-in marketplace bundle, signed at start with a local dev key.

Verification stays on in development: the first `--dev` run creates an Ed25519 key pair under
``.pdp/dev-keys/`` in the working directory (git-ignored; the directory also gets its own
``.gitignore``), and every start builds the bundle from its source tree and signs it with that key.
So ``make run`` exercises exactly the load path production uses, without any key in the repository.

The source tree is ``$PDP_BUILTIN_BUNDLE`` when set (an installed copy: the image sets it to the
``bundles/marketplace`` it carries), else ``bundles/marketplace`` next to the package in a checkout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pdp
from pdp.bundle import JwsSigner, build_bundle
from pdp.bundle.atomic import write_atomically
from pdp.bundle.errors import BundleError, KeyringError
from pdp.bundle.keys import load_private_key, write_key_pair
from pdp.sidecar.errors import StartupError

DEV_KEY_ID = "pdp-dev"
DEV_REVISION = "dev"
BUILTIN_BUNDLE_ENV = "PDP_BUILTIN_BUNDLE"
STATE_DIR = ".pdp"


@dataclass(frozen=True, slots=True)
class DevBundle:
    """A freshly built and signed built-in bundle and the public key that verifies it."""

    bundle: Path
    verification_key: Path
    source: Path


def builtin_bundle_source(environ: Mapping[str, str]) -> Path:
    """The built-in bundle's source directory; StartupError names where it looked."""
    override = environ.get(BUILTIN_BUNDLE_ENV)
    package_dir = Path(pdp.__file__).resolve().parent
    candidate = Path(override) if override else package_dir.parent / "bundles" / "marketplace"
    if (candidate / "policies").is_dir():
        return candidate
    raise StartupError(
        f"the built-in bundle source was not found (no {candidate / 'policies'}); "
        f"set {BUILTIN_BUNDLE_ENV} to a bundle source directory"
    )


def ensure_dev_key(key_dir: Path) -> tuple[Path, Path]:
    """The dev key pair under ``key_dir``, created on first use; returns (private, public)."""
    private, public = key_dir / f"{DEV_KEY_ID}.key", key_dir / f"{DEV_KEY_ID}.pem"
    if not private.exists():
        try:
            write_key_pair(key_dir, DEV_KEY_ID)
        except KeyringError as exc:
            # Two `--dev` processes starting together: the other one created the pair first.
            if exc.reason != "key_exists":
                raise StartupError(f"cannot create the dev key in {key_dir}: {exc}") from None
    if not public.exists():
        raise StartupError(f"{public} is missing while {private} exists; delete {key_dir}")
    return private, public


def prepare_dev_bundle(workdir: Path, *, environ: Mapping[str, str], now: float) -> DevBundle:
    """Build and sign the built-in bundle under ``workdir/.pdp``; say where it and its key are."""
    source = builtin_bundle_source(environ)
    state = workdir / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
        ignore = state / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# local pdp state (dev keys, built bundles): never commit\n*\n")
        private, public = ensure_dev_key(state / "dev-keys")
        signer = JwsSigner(load_private_key(private), DEV_KEY_ID)
        data = build_bundle(
            source,
            signer=signer,
            revision=DEV_REVISION,
            sequence=1,
            created_at=datetime.fromtimestamp(_source_time(source, default=now), tz=UTC),
        )
        out_dir = state / "dev"
        out_dir.mkdir(exist_ok=True)
        bundle = out_dir / "bundle.tar.gz"
        write_atomically(bundle, data)
    except BundleError as exc:
        raise StartupError(f"cannot build the built-in bundle from {source}: {exc}") from None
    except OSError as exc:
        raise StartupError(f"cannot prepare {state} for --dev: {exc}") from None
    return DevBundle(bundle=bundle, verification_key=public, source=source)


def _source_time(source: Path, *, default: float) -> float:
    """When the bundle source last changed (its newest file), ``default`` if it has no files.

    Dated by its source, the dev bundle is byte-identical at every start until the source changes
    (EdDSA signatures are deterministic), so several ``--dev`` workers sharing a directory rewrite
    the same bytes instead of handing each other a conflicting bundle of the same sequence.
    """
    times = [path.stat().st_mtime for path in source.rglob("*") if path.is_file()]
    return max(times, default=default)
