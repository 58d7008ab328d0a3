"""`pdp bundle build|verify|inspect` on the built-in marketplace source (DESIGN §8.5)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cli_kit import MARKETPLACE, Pdp


def _build(pdp: Pdp, key_dir: Path, out: Path, *extra: str, **env: str) -> None:
    result = pdp(
        "bundle", "build", MARKETPLACE, "-o", out,
        "--signing-key", key_dir / "k1.key", "--key-id", "k1", *extra, env=env,
    )
    assert result.returncode == 0, result.stderr


def test_marketplace_builds_into_a_bundle_that_verifies(
    pdp: Pdp, marketplace_bundle: Path, key_dir: Path
) -> None:
    """The signed marketplace bundle verifies against k1.pem with a summary."""
    result = pdp("bundle", "verify", marketplace_bundle, "--verification-key", key_dir / "k1.pem")
    assert result.returncode == 0, result.stderr
    assert "sequence:" in result.stdout and "7" in result.stdout
    assert "signed by:    k1" in result.stdout


def test_verify_accepts_a_directory_of_keys(
    pdp: Pdp, marketplace_bundle: Path, key_dir: Path
) -> None:
    """--verification-key takes a directory of public keys (the private .key is not read)."""
    result = pdp("bundle", "verify", marketplace_bundle, "--verification-key", key_dir)
    assert result.returncode == 0, result.stderr


def test_building_twice_gives_the_same_sha256(pdp: Pdp, key_dir: Path, tmp_path: Path) -> None:
    """Two builds of the same source give byte-identical bundles."""
    _build(pdp, key_dir, tmp_path / "a.tar.gz", "--sequence", "3")
    _build(pdp, key_dir, tmp_path / "b.tar.gz", "--sequence", "3")
    first, second = (tmp_path / "a.tar.gz").read_bytes(), (tmp_path / "b.tar.gz").read_bytes()
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_source_date_epoch_sets_created_at(pdp: Pdp, key_dir: Path, tmp_path: Path) -> None:
    """SOURCE_DATE_EPOCH becomes the manifest's created_at."""
    out = tmp_path / "b.tar.gz"
    _build(pdp, key_dir, out, SOURCE_DATE_EPOCH="1767225600")
    report = json.loads(pdp("bundle", "inspect", out, "--json").stdout)
    assert report["manifest"]["created_at"] == "2026-01-01T00:00:00Z"


def test_revision_and_sequence_go_into_the_manifest(
    pdp: Pdp, key_dir: Path, tmp_path: Path
) -> None:
    """--revision and --sequence are what `bundle inspect --json` reports."""
    out = tmp_path / "b.tar.gz"
    _build(pdp, key_dir, out, "--revision", "2026.11-a", "--sequence", "12")
    manifest = json.loads(pdp("bundle", "inspect", out, "--json").stdout)["manifest"]
    assert (manifest["revision"], manifest["sequence"]) == ("2026.11-a", 12)


@pytest.mark.parametrize("sequence", ["9223372036854775808", "\u0663", " 5"])
def test_a_sequence_the_control_plane_cannot_hold_is_a_usage_error(
    pdp: Pdp, key_dir: Path, tmp_path: Path, sequence: str
) -> None:
    """--sequence takes ASCII digits up to a bigint (2**63 - 1): a larger bundle was served
    while the control plane refused every status report of the sidecar serving it."""
    out = tmp_path / "b.tar.gz"
    result = pdp("bundle", "build", MARKETPLACE, "-o", out, "--signing-key",
                 key_dir / "k1.key", "--key-id", "k1", "--sequence", sequence)
    assert result.returncode == 2
    assert "--sequence" in result.stderr and "9223372036854775807" in result.stderr
    assert not out.exists()


def test_verify_refuses_a_tampered_bundle_naming_the_file(
    pdp: Pdp, marketplace_bundle: Path, key_dir: Path, tmp_path: Path
) -> None:
    """A bundle with a changed policy exits 1 and names the file and the failed check."""
    unpacked = tmp_path / "unpacked"
    with tarfile.open(marketplace_bundle) as tar:
        tar.extractall(unpacked, filter="data")
    policy = unpacked / "policies" / "https-required.json"
    policy.write_text(policy.read_text().replace('"critical"', '"low"'))
    result = pdp("bundle", "verify", unpacked, "--verification-key", key_dir / "k1.pem")
    assert result.returncode == 1
    assert "policies/https-required.json" in result.stderr
    assert "hash_mismatch" in result.stderr


def test_verify_refuses_a_bundle_signed_by_another_key(
    pdp: Pdp, marketplace_bundle: Path, tmp_path: Path
) -> None:
    """A bundle verified against a key that did not sign it exits 1 with the key's id."""
    assert pdp("keygen", "--key-id", "other", "--out-dir", tmp_path).returncode == 0
    other = tmp_path / "other.pem"
    result = pdp("bundle", "verify", marketplace_bundle, "--verification-key", other)
    assert result.returncode == 1
    assert "'k1' is not in the keyring" in result.stderr


def test_verify_without_a_key_is_a_usage_error(pdp: Pdp, marketplace_bundle: Path) -> None:
    """`bundle verify` requires --verification-key (exit 2)."""
    assert pdp("bundle", "verify", marketplace_bundle).returncode == 2


def test_build_refuses_a_bad_policy_naming_file_and_field(
    pdp: Pdp, key_dir: Path, source_copy: Path, tmp_path: Path
) -> None:
    """A source policy with a wrong value exits 1 naming the file and the field path."""
    policy = source_copy / "policies" / "https-required.yaml"
    policy.write_text(policy.read_text().replace("severity: critical", "severity: dire"))
    out = tmp_path / "out.tar.gz"
    result = pdp(
        "bundle", "build", source_copy, "-o", out,
        "--signing-key", key_dir / "k1.key", "--key-id", "k1",
    )
    assert result.returncode == 1
    assert "policies/https-required.yaml" in result.stderr and "severity" in result.stderr
    assert not out.exists()


def test_inspect_lists_files_with_their_hashes(pdp: Pdp, marketplace_bundle: Path) -> None:
    """`bundle inspect --json` lists every file with size and SHA-256, and the signer's key id."""
    report = json.loads(pdp("bundle", "inspect", marketplace_bundle, "--json").stdout)
    names = [entry["name"] for entry in report["files"]]
    assert ".manifest" in names and ".signatures.json" in names
    assert "policies/https-required.json" in names
    assert report["signature"] == {"kid": "k1", "alg": "EdDSA", "verified": False}
    assert report["sha256"] == hashlib.sha256(marketplace_bundle.read_bytes()).hexdigest()


def test_inspect_says_when_the_signature_cannot_be_read(
    pdp: Pdp, marketplace_bundle: Path, tmp_path: Path
) -> None:
    """`bundle inspect` of a bundle whose .signatures.json is garbage says "malformed", as its
    --json does, rather than "key None (None)"."""
    root = tmp_path / "unpacked"
    root.mkdir()
    with tarfile.open(marketplace_bundle) as tar:
        tar.extractall(root, filter="data")
    (root / ".signatures.json").write_text("garbage")
    result = pdp("bundle", "inspect", root)
    assert result.returncode == 0, result.stderr
    assert "signature:    malformed" in result.stdout
    assert "None" not in result.stdout


def test_inspect_of_a_source_directory_says_it_has_no_manifest(pdp: Pdp, tmp_path: Path) -> None:
    """A directory without .manifest is shown as "not a built bundle", not as "revision: None"."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "data.json").write_text("{}")
    result = pdp("bundle", "inspect", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "manifest:     none (not a built bundle" in result.stdout
    assert "None" not in result.stdout


def test_inspect_of_something_that_is_not_a_bundle_exits_1(pdp: Pdp, tmp_path: Path) -> None:
    """Inspecting a file that is not a .tar.gz is refused with a reason."""
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"hello")
    result = pdp("bundle", "inspect", junk)
    assert result.returncode == 1
    assert "archive_invalid" in result.stderr


def test_build_into_a_missing_directory_is_refused(
    pdp: Pdp, key_dir: Path, tmp_path: Path
) -> None:
    """An output path whose directory does not exist exits 1 naming the -o path the user typed
    (not a temporary file), without a traceback."""
    out = tmp_path / "absent" / "b.tar.gz"
    result = pdp(
        "bundle", "build", MARKETPLACE, "-o", out,
        "--signing-key", key_dir / "k1.key", "--key-id", "k1",
    )
    assert result.returncode == 1
    assert f"cannot write {out}: No such file or directory" in result.stderr
    assert ".tmp" not in result.stderr and "Traceback" not in result.stderr


def test_build_with_a_missing_signing_key_is_refused(pdp: Pdp, tmp_path: Path) -> None:
    """A signing key path that does not exist exits 1 naming the file."""
    result = pdp(
        "bundle", "build", MARKETPLACE, "-o", tmp_path / "b.tar.gz",
        "--signing-key", tmp_path / "nope.key", "--key-id", "k1",
    )
    assert result.returncode == 1
    assert "nope.key" in result.stderr


def test_verification_key_is_repeatable(
    pdp: Pdp, marketplace_bundle: Path, key_dir: Path, tmp_path: Path
) -> None:
    """Several --verification-key options trust every key given (rotation on the command line)."""
    assert pdp("keygen", "--key-id", "next", "--out-dir", tmp_path).returncode == 0
    result = pdp(
        "bundle", "verify", marketplace_bundle,
        "--verification-key", tmp_path / "next.pem", "--verification-key", key_dir / "k1.pem",
    )
    assert result.returncode == 0, result.stderr


def test_build_refuses_a_bundle_that_verify_would_refuse(
    pdp: Pdp, key_dir: Path, source_copy: Path, tmp_path: Path
) -> None:
    """A build whose output a sidecar would refuse (here: it inflates > 100:1) exits 1, writes
    nothing, and gives the reader's reason."""
    data_file = source_copy / "data.json"
    data = json.loads(data_file.read_text())
    data["padding"] = ["service.read"] * 200_000  # ~3 MiB of one string repeated: gzip > 100:1
    data_file.write_text(json.dumps(data))
    out = tmp_path / "big.tar.gz"
    result = pdp(
        "bundle", "build", source_copy, "-o", out,
        "--signing-key", key_dir / "k1.key", "--key-id", "k1",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "compression_ratio" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [source_copy]  # no temporary file left behind either


def test_build_keeps_an_existing_output_when_the_new_bundle_is_refused(
    pdp: Pdp, key_dir: Path, marketplace_bundle: Path, source_copy: Path, tmp_path: Path
) -> None:
    """A refused build leaves the bundle already at -o as it was (a watching sidecar sees no
    change)."""
    out = tmp_path / "main.tar.gz"
    out.write_bytes(marketplace_bundle.read_bytes())
    data_file = source_copy / "data.json"
    data_file.write_text(json.dumps({**json.loads(data_file.read_text()),
                                     "padding": ["service.read"] * 200_000}))
    result = pdp(
        "bundle", "build", source_copy, "-o", out,
        "--signing-key", key_dir / "k1.key", "--key-id", "k1",
    )
    assert result.returncode == 1
    assert out.read_bytes() == marketplace_bundle.read_bytes()


def test_build_of_a_directory_without_policies_is_refused(
    pdp: Pdp, key_dir: Path, tmp_path: Path
) -> None:
    """`bundle build bundles` (the parent of the source) exits 1 saying no policies/ was found,
    rather than signing an empty bundle."""
    out = tmp_path / "b.tar.gz"
    result = pdp(
        "bundle", "build", MARKETPLACE.parent, "-o", out,
        "--signing-key", key_dir / "k1.key", "--key-id", "k1",
    )
    assert result.returncode == 1
    assert "no policies/ directory" in result.stderr and str(MARKETPLACE.parent) in result.stderr
    assert not out.exists()


def test_build_onto_a_directory_names_the_path_given(
    pdp: Pdp, key_dir: Path, tmp_path: Path
) -> None:
    """-o naming an existing directory is refused naming that directory, not a temporary file."""
    out = tmp_path / "already-a-dir"
    out.mkdir()
    result = pdp(
        "bundle", "build", MARKETPLACE, "-o", out,
        "--signing-key", key_dir / "k1.key", "--key-id", "k1",
    )
    assert result.returncode == 1
    assert f"cannot write {out}: Is a directory" in result.stderr
    assert ".tmp" not in result.stderr
    assert list(out.iterdir()) == [] and sorted(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("command", [("inspect", "--json"), ("inspect",), ("verify",)])
def test_a_reader_that_stops_early_is_not_a_refusal(
    marketplace_bundle: Path, key_dir: Path, command: tuple[str, ...]
) -> None:
    """`pdp bundle inspect|verify ... | head -1`: a closed stdout ends the command quietly, with
    no "refused" message and no traceback, and exit status 141 (128 + SIGPIPE) as `cat` gets."""
    action, *options = command
    keys = ["--verification-key", str(key_dir / "k1.pem")] if action == "verify" else []
    with subprocess.Popen(
        [sys.executable, "-m", "pdp", "bundle", action, str(marketplace_bundle), *options, *keys],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader is gone before the command prints anything
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert stderr == ""
    assert code == 141


def test_build_onto_a_pipe_is_refused_and_leaves_it_alone(
    pdp: Pdp, key_dir: Path, tmp_path: Path
) -> None:
    """-o naming a pipe or device (/dev/null, /dev/stdout) exits 1 and leaves it in place: the
    atomic rename used to replace it with a regular file and report "built"."""
    out = tmp_path / "pipe"
    os.mkfifo(out)
    result = pdp(
        "bundle", "build", MARKETPLACE, "-o", out,
        "--signing-key", key_dir / "k1.key", "--key-id", "k1",
    )
    assert result.returncode == 1
    assert f"cannot write {out}: not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert sorted(tmp_path.iterdir()) == [out]
