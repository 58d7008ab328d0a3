"""Signed policy bundles: format, safe reading, reproducible builds, JWS signatures, keyring.

Bytes and files in, verified contents out; no network. The usual entry points::

    keyring = Keyring.from_paths(["keys/"])
    bundle = load_bundle(Path("bundle.tar.gz"), keyring, now=time.time())
    check_candidate(active, bundle)          # anti-rollback before swapping it in

    contents = read_source_dir(Path("bundles/marketplace"), revision="42", sequence=42)
    data = build_bundle(contents, signer=JwsSigner(load_private_key(key_path), "k1"))
"""

from pdp.bundle.archive import Limits, read_archive, read_bundle_files, read_directory
from pdp.bundle.build import build_bundle, signed_files, with_manifest, write_archive
from pdp.bundle.contents import BundleContents, content_hash, parse_contents
from pdp.bundle.errors import (
    BundleError,
    ContentError,
    ExpiredBundleError,
    KeyringError,
    ManifestError,
    RollbackError,
    SignatureError,
    UnsafeArchiveError,
)
from pdp.bundle.keyring import Keyring, KeyringChange
from pdp.bundle.keys import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    Algorithm,
    PrivateKey,
    PublicKey,
    generate_private_key,
    load_private_key,
    private_pem,
    public_pem,
    write_key_pair,
)
from pdp.bundle.lifecycle import Freshness, Verdict, check_candidate, freshness, is_expired
from pdp.bundle.loader import (
    LoadedBundle,
    OpenedBundle,
    compile_bundle,
    compile_contents,
    load_bundle,
    open_bundle,
)
from pdp.bundle.manifest import MANIFEST_FILE, Manifest, parse_manifest
from pdp.bundle.signing import (
    SIGNATURES_FILE,
    JwsSigner,
    Signer,
    file_hash,
    read_signature,
    sign_files,
    signature_payload,
    verify_files,
)
from pdp.bundle.source import read_source_dir

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "MANIFEST_FILE",
    "SIGNATURES_FILE",
    "Algorithm",
    "BundleContents",
    "BundleError",
    "ContentError",
    "ExpiredBundleError",
    "Freshness",
    "JwsSigner",
    "Keyring",
    "KeyringChange",
    "KeyringError",
    "Limits",
    "LoadedBundle",
    "Manifest",
    "ManifestError",
    "OpenedBundle",
    "PrivateKey",
    "PublicKey",
    "RollbackError",
    "SignatureError",
    "Signer",
    "UnsafeArchiveError",
    "Verdict",
    "build_bundle",
    "check_candidate",
    "compile_bundle",
    "compile_contents",
    "content_hash",
    "file_hash",
    "freshness",
    "generate_private_key",
    "is_expired",
    "load_bundle",
    "load_private_key",
    "open_bundle",
    "parse_contents",
    "parse_manifest",
    "private_pem",
    "public_pem",
    "read_archive",
    "read_bundle_files",
    "read_directory",
    "read_signature",
    "read_source_dir",
    "sign_files",
    "signature_payload",
    "signed_files",
    "verify_files",
    "with_manifest",
    "write_archive",
    "write_key_pair",
]
