"""Offline commands (DESIGN §8.5): ``keygen``, ``bundle build|verify|inspect``, ``test``, ``eval``.

Nothing here touches the network. Exit codes: 0 success, 1 a refused input (the message names
the file and the check), 2 a usage error (argparse). Wherever a clock is needed the command passes
``time.time()`` down; the bundle and core layers never read it themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
import uuid
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import jwt
import orjson

from pdp.bundle import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    MANIFEST_FILE,
    SIGNATURES_FILE,
    BundleContents,
    BundleError,
    JwsSigner,
    Keyring,
    Limits,
    build_bundle,
    compile_contents,
    content_hash,
    file_hash,
    load_bundle,
    load_private_key,
    parse_contents,
    parse_manifest,
    read_bundle_files,
    read_source_dir,
    write_key_pair,
)
from pdp.bundle.atomic import write_atomically
from pdp.bundle.contents import POLICIES_DIR
from pdp.bundle.keys import check_key_id
from pdp.bundle.manifest import MAX_SEQUENCE
from pdp.bundle.signing import read_signature
from pdp.cli import _output
from pdp.core import (
    MAX_JSON_DEPTH,
    QUERIES,
    CoreError,
    InputValidationError,
    PolicySet,
    TestReport,
    json_too_deep,
    parse_input,
    run_tests,
)

EXIT_OK, EXIT_REFUSED = 0, 1
Handler = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keygen``, ``bundle``, ``test`` and ``eval`` to the ``pdp`` parser."""
    keygen = subparsers.add_parser("keygen", help="generate a signing key pair")
    keygen.add_argument("--key-id", required=True, type=_key_id, help="key id (file stem)")
    keygen.add_argument("--out-dir", required=True, type=Path, help="directory for KID.key/.pem")
    keygen.add_argument("--alg", choices=ALGORITHMS, default=DEFAULT_ALGORITHM)
    keygen.set_defaults(func=_keygen)

    bundle = subparsers.add_parser("bundle", help="build, verify or inspect signed bundles")
    actions = bundle.add_subparsers(dest="bundle_command", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="build a signed bundle from a source directory")
    build.add_argument("src_dir", type=Path, metavar="SRC_DIR")
    build.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.tar.gz")
    build.add_argument("--signing-key", required=True, type=Path, metavar="KEY")
    build.add_argument("--key-id", required=True, type=_key_id, metavar="KID")
    build.add_argument("--revision", help="revision label (default: the sequence)")
    build.add_argument("--sequence", type=_positive_int, default=1, metavar="N")
    build.add_argument("--alg", choices=ALGORITHMS, help="default: the key's own (RSA: RS256)")
    build.set_defaults(func=_bundle_build)

    verify = actions.add_parser("verify", help="verify, compile and test a bundle")
    verify.add_argument("bundle", type=Path, metavar="BUNDLE")
    _verification_key_option(verify, required=True)
    verify.set_defaults(func=_bundle_verify)

    inspect = actions.add_parser("inspect", help="show a bundle's manifest and files")
    inspect.add_argument("bundle", type=Path, metavar="BUNDLE")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(func=_bundle_inspect)

    test = subparsers.add_parser("test", help="run the tests of a bundle or source directory")
    test.add_argument("path", type=Path, metavar="PATH")
    test.set_defaults(func=_test)

    evaluate = subparsers.add_parser("eval", help="evaluate one query offline")
    origin = evaluate.add_mutually_exclusive_group(required=True)
    origin.add_argument("--policies", type=Path, metavar="SRC_DIR")
    origin.add_argument("--bundle", type=Path, metavar="BUNDLE")
    _verification_key_option(evaluate, required=False)
    evaluate.add_argument("query", choices=QUERIES, metavar="QUERY", help=", ".join(QUERIES))
    evaluate.add_argument("--input", required=True, metavar="FILE|-")
    evaluate.set_defaults(func=_eval, parser=evaluate)


def _verification_key_option(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--verification-key",
        action="append",
        type=Path,
        required=required,
        metavar="PATH",
        help="public key file (key id = file stem) or directory of *.pem/*.jwk; repeatable",
    )


def _key_id(value: str) -> str:
    try:
        return check_key_id(value)
    except BundleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive_int(value: str) -> int:
    """A sequence: ASCII digits (``int()`` also reads "٣") from 1 to the manifest's bound."""
    number = int(value) if value.isascii() and value.isdigit() else 0
    if not 1 <= number <= MAX_SEQUENCE:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a whole number from 1 to {MAX_SEQUENCE}")
    return number


def _refusing(command: str) -> Callable[[Handler], Handler]:
    """Turn the refusals of the layers below into exit code 1 and a message on stderr."""

    def decorate(handler: Handler) -> Handler:
        def refused_or_done(args: argparse.Namespace) -> int:
            try:
                return handler(args)
            except BundleError as exc:
                _output.refusal(command, exc)
            except (CoreError, _output.Refused) as exc:
                _output.failure(command, str(exc))
            except BrokenPipeError:
                raise  # stdout's reader went away: not a refused input (handled just below)
            except OSError as exc:
                # A file that cannot be read or written (missing directory, permissions).
                where = exc.filename if exc.filename is not None else "a file"
                _output.failure(command, f"{where}: {exc.strerror or exc}")
            return EXIT_REFUSED

        @wraps(handler)
        def run(args: argparse.Namespace) -> int:
            return _output.ending_quietly_if_stdout_closes(lambda: refused_or_done(args))

        return run

    return decorate


@_refusing("keygen")
def _keygen(args: argparse.Namespace) -> int:
    write_key_pair(args.out_dir, args.key_id, args.alg)
    print(args.key_id)  # stdout holds only the key id (DESIGN §8.5): scripts read it
    if args.alg == "PS256":
        # A PS256 key is an RSA key like any other: nothing in it says PS256, so a build that
        # does not ask signs with RS256.
        print("note: build with `--alg PS256`; an RSA key signs with RS256 unless told",
              file=sys.stderr)
    return EXIT_OK


def _source_date_epoch() -> float | None:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds.org) when set, for the manifest's created_at."""
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None:
        return None
    try:
        return float(int(raw))
    except ValueError:
        raise _output.Refused(f"SOURCE_DATE_EPOCH={raw!r} is not an integer") from None


def _read_source(
    path: Path, *, revision: str = "draft", sequence: int = 1, created_at: float | None = None
) -> BundleContents:
    """Read a source directory, refusing one without ``policies/``: such a directory is usually
    the parent of the source (``bundles`` for ``bundles/marketplace``), and a bundle of zero
    policies would allow everything. The control plane's ``--seed-dir`` refuses it the same way.
    """
    if path.is_dir() and not (path / POLICIES_DIR).is_dir():
        raise _output.Refused(
            f"{path}: no {POLICIES_DIR}/ directory found; is this the bundle source directory?"
        )
    return read_source_dir(path, revision=revision, sequence=sequence, created_at=created_at)


def _check_output(path: Path) -> None:
    """Refuse an ``-o`` that names something other than a file or a directory. The bundle is
    written by renaming a temporary file over ``-o``, so a device or pipe such as /dev/null or
    /dev/stdout (a link to one) was replaced by a regular file, not written to: the command said
    "built /dev/stdout", printed nothing there, and, run as root, left the system without it."""
    try:
        info = os.stat(path)  # follows links: /dev/stdout is a link to a pipe or terminal
    except OSError:
        return  # absent or unreachable: write_atomically names the problem
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise _output.Refused(
            f"cannot write {path}: not a regular file (-o replaces a file by renaming a new one "
            "over it; a device or pipe would be replaced, not written to)"
        )


@_refusing("bundle build")
def _bundle_build(args: argparse.Namespace) -> int:
    _check_output(args.output)
    contents = _read_source(
        args.src_dir,
        revision=args.revision or str(args.sequence),
        sequence=args.sequence,
        created_at=_source_date_epoch(),
    )
    # A bundle whose tests fail is refused here already, with each case, not only when a
    # sidecar loads it.
    policy_set = compile_contents(contents)
    report = run_tests(policy_set, contents.tests, now=time.time())
    if report.failed:
        _print_report(report)
        raise _output.Refused(f"{len(report.failed)} bundle test(s) failed; nothing written")
    private_key = load_private_key(args.signing_key)
    signer = JwsSigner(private_key, args.key_id, args.alg)
    archive = build_bundle(contents, signer=signer)
    # Read the archive back as a sidecar trusting this key would (archive limits such as the
    # compression ratio, signature, compilation, tests) before it replaces anything at -o: a
    # bundle that `bundle verify` and `pdp run` refuse is never written, as the control plane's
    # publisher never stores one.
    try:
        load_bundle(archive, Keyring({args.key_id: private_key.public_key()}), now=time.time())
    except BundleError as exc:
        raise _output.Refused(
            f"the bundle built would be refused by `pdp bundle verify` and `pdp run`: {exc} "
            f"[{exc.reason}]; nothing written"
        ) from None
    try:
        write_atomically(args.output, archive)
    except OSError as exc:
        # write_atomically names the path given, not its temporary file.
        where = exc.filename if exc.filename is not None else args.output
        raise _output.Refused(f"cannot write {where}: {exc.strerror or exc}") from None
    print(f"built {args.output}")
    _output.print_fields(
        [
            ("revision", contents.manifest.revision),
            ("sequence", contents.manifest.sequence),
            ("policies", len(contents.policies)),
            ("tests", len(contents.tests)),
            ("signed by", f"{args.key_id} ({signer.effective_algorithm})"),
            ("sha256", file_hash(archive)),
        ]
    )
    return EXIT_OK


@_refusing("bundle verify")
def _bundle_verify(args: argparse.Namespace) -> int:
    keyring = Keyring.from_paths(args.verification_key)
    loaded = load_bundle(args.bundle, keyring, now=time.time())
    manifest = loaded.manifest
    print(f"verified {args.bundle}")
    _output.print_fields(
        [
            ("revision", manifest.revision),
            ("sequence", manifest.sequence),
            ("signed by", loaded.key_id),
            ("policies", len(loaded.contents.policies)),
            ("tests", f"{len(loaded.contents.tests)} passed"),
            ("content hash", loaded.content_hash),
        ]
    )
    return EXIT_OK


@_refusing("bundle inspect")
def _bundle_inspect(args: argparse.Namespace) -> int:
    files = read_bundle_files(args.bundle, Limits())
    report = _inspection(args.bundle, files)
    if args.json:
        _output.print_json(report)
        return EXIT_OK
    print(f"{args.bundle} (signature not verified; use `pdp bundle verify`)")
    signature, manifest = report["signature"], report["manifest"]
    identity: list[tuple[str, object]] = [
        ("revision", manifest.get("revision")),
        ("sequence", manifest.get("sequence")),
        ("created at", manifest.get("created_at")),
        ("expires at", manifest.get("expires_at") or "never"),
    ] if manifest else [
        # A source directory, or a broken bundle: say so rather than print "revision: None".
        ("manifest", "none (not a built bundle; `pdp bundle build` makes one)"),
    ]
    _output.print_fields([*identity, ("signature", _signature_text(signature)),
                          ("content hash", report["content_hash"])])
    print(f"  files ({len(report['files'])}):")
    _output.print_files(report["files"])
    return EXIT_OK


def _signature_text(signature: dict[str, Any] | None) -> str:
    """The signature line of `bundle inspect`: who signed, or why that cannot be read."""
    if signature is None:
        return "none"
    if signature.get("malformed"):
        return "malformed (.signatures.json holds no readable JWS)"
    return f"key {signature['kid']} ({signature['alg']})"


def _inspection(path: Path, files: dict[str, bytes]) -> dict[str, Any]:
    """What `bundle inspect` reports, without verifying or compiling anything."""
    manifest = parse_manifest(files[MANIFEST_FILE]) if MANIFEST_FILE in files else None
    signature: dict[str, Any] | None = None
    if SIGNATURES_FILE in files:
        try:
            header = jwt.get_unverified_header(read_signature(files))
            signature = {"kid": header.get("kid"), "alg": header.get("alg"), "verified": False}
        except (BundleError, jwt.DecodeError):
            signature = {"kid": None, "alg": None, "verified": False, "malformed": True}
    return {
        "path": str(path),
        "sha256": file_hash(path.read_bytes()) if path.is_file() else None,
        "manifest": json.loads(manifest.to_json_bytes()) if manifest else {},
        "signature": signature,
        "content_hash": content_hash(files),
        "files": [
            {"name": name, "size": len(files[name]), "sha256": file_hash(files[name])}
            for name in sorted(files)
        ],
    }


def _is_source_dir(path: Path) -> bool:
    """A directory without a manifest is a source tree; with one it is an unpacked bundle."""
    return path.is_dir() and not (path / MANIFEST_FILE).exists()


def _contents_of(path: Path) -> BundleContents:
    """A bundle (.tar.gz or bundle directory) or a source directory, parsed but not verified."""
    if _is_source_dir(path):
        return _read_source(path)
    return parse_contents(read_bundle_files(path, Limits()))


def _print_report(report: TestReport) -> None:
    """Each case as PASS or FAIL (with what differed), then the totals."""
    for name in report.passed:
        print(f"PASS  {name}")
    for failed in report.failed:
        print(f"FAIL  {failed.name}: {failed.message}")
    print(f"{len(report.passed)} passed, {len(report.failed)} failed")


@_refusing("test")
def _test(args: argparse.Namespace) -> int:
    contents = _contents_of(args.path)
    if not _is_source_dir(args.path):
        print("(signature not checked here; `pdp bundle verify` checks it)", file=sys.stderr)
    policy_set = compile_contents(contents)
    report = run_tests(policy_set, contents.tests, now=time.time())
    _print_report(report)
    return EXIT_REFUSED if report.failed else EXIT_OK


@_refusing("eval")
def _eval(args: argparse.Namespace) -> int:
    if args.bundle is not None and not args.verification_key:
        args.parser.error("--bundle needs --verification-key")
    if args.policies is not None and args.verification_key:
        args.parser.error("--verification-key applies only to --bundle")
    raw_input = _read_input(args.input)
    now = time.time()
    policy_set: PolicySet
    if args.policies is not None:
        policy_set = compile_contents(_read_source(args.policies))
    else:
        keyring = Keyring.from_paths(args.verification_key)
        policy_set = load_bundle(args.bundle, keyring, now=now).policy_set
    # Timed from the input check to the decision, as the sidecar's engine times it, so that
    # `pdp eval` prints the same JSON as the HTTP answer (DESIGN §8.5).
    started = time.monotonic()
    try:
        request = parse_input(args.query, raw_input)
    except InputValidationError as exc:
        raise _output.Refused(f"--input {_input_name(args.input)}: {exc}") from exc
    decision = policy_set.evaluate(args.query, request, now=now, decision_id=str(uuid.uuid4()))
    metadata = decision.get("metadata")
    if isinstance(metadata, dict):  # only validate_service's answer carries metadata
        metadata["validation_duration_ms"] = round((time.monotonic() - started) * 1000.0, 3)
    # Shadow-mode findings never show in the answer (DESIGN §4), so stdout stays the sidecar's
    # JSON; offline, they are still worth seeing, on stderr.
    for finding in decision.pop("dryrun", None) or ():
        print(f"dryrun (not in the answer): {json.dumps(finding, sort_keys=True)}",
              file=sys.stderr)
    _output.print_json(decision)
    return EXIT_OK


def _input_name(source: str) -> str:
    return "stdin" if source == "-" else source


def _read_input(source: str) -> Any:
    """The input document, read as the sidecar's HTTP API reads a body (DESIGN §8.5: the same
    query and input give the same JSON): orjson, strict RFC 8259. Python's json module also
    takes NaN, Infinity and 1e400, and keeps integers past 64 bits exact where orjson reads a
    float, so `pdp eval` answered inputs the sidecar refuses with a 400."""
    where = _input_name(source)
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise _output.Refused(f"--input {where}: {exc}") from exc
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _output.Refused(f"--input {where}: not valid JSON ({exc})") from exc
    if json_too_deep(parsed):
        raise _output.Refused(f"--input {where}: JSON nesting exceeds {MAX_JSON_DEPTH} levels")
    return parsed
