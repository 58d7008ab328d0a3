"""`pdp admin`: a client of the control plane's admin API (DESIGN §8.5).

::

    pdp admin --server URL --token-file F policy list | get ID | apply -f FILE | delete ID
    pdp admin --server URL --token-file F publish [--notes TEXT] [--wait [--timeout S]]
    pdp admin --server URL --token-file F rollback SEQ
    pdp admin --server URL --token-file F fleet | decisions [--limit N] [--id DECISION_ID]

Readable tables and messages for people; ``--json`` prints the API's JSON for scripts. Exit codes:
0 success, 1 the control plane refused or could not be reached (the message says why, with each
offending field), 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pdp.cli import _output
from pdp.cli.admin_apply import apply_one, read_documents, validate_all
from pdp.cli.admin_client import (
    BUNDLE_FIELDS,
    FLEET_FIELDS,
    POLICY_FIELDS,
    TIMEOUT_SECONDS,
    AdminClient,
    AdminError,
    server_url,
)

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
# How often `publish --wait` reads the fleet; sidecars report a change within ~0.2 s themselves.
WAIT_POLL_SECONDS = 0.2
DEFAULT_WAIT_TIMEOUT = 60.0

def register(subparsers: Any) -> None:
    """Add ``admin`` and its commands to the ``pdp`` parser."""
    parser = subparsers.add_parser("admin", help="manage policies on the control plane")
    parser.add_argument("--server", type=server_url,
                        default=os.environ.get("PDP_SERVER", "http://127.0.0.1:8282"),
                        help="control-plane URL (default: $PDP_SERVER or http://127.0.0.1:8282)")
    parser.add_argument("--token-file", type=Path, default=_env_path("PDP_TOKEN_FILE"),
                        help="file holding the bearer token (default: $PDP_TOKEN_FILE)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answers")
    parser.add_argument("--request-timeout", type=_positive_seconds, default=TIMEOUT_SECONDS,
                        metavar="S", help="how long to wait for each answer of the control "
                                          f"plane (default {TIMEOUT_SECONDS:g})")
    parser.set_defaults(func=run)
    commands = parser.add_subparsers(dest="admin_command", metavar="COMMAND", required=True)

    policy = commands.add_parser("policy", help="list, show, apply or delete policies")
    actions = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list policies")
    listing.add_argument("--type", dest="filter_type")
    listing.add_argument("--severity")
    listing.add_argument("--enabled", choices=("true", "false"))
    listing.add_argument("--order-by", help="e.g. 'updated_at desc'")
    listing.set_defaults(handler=_policy_list)
    get = actions.add_parser("get", help="show one policy")
    get.add_argument("policy_id", metavar="ID", type=_policy_id)
    get.set_defaults(handler=_policy_get)
    apply = actions.add_parser("apply", help="create or update the policies in a YAML/JSON file")
    apply.add_argument("-f", "--file", type=Path, required=True, help="file ('-' for stdin)")
    apply.set_defaults(handler=_policy_apply)
    delete = actions.add_parser("delete", help="delete a policy (kept in its history)")
    delete.add_argument("policy_id", metavar="ID", type=_policy_id)
    delete.set_defaults(handler=_policy_delete)

    publish = commands.add_parser("publish", help="publish the draft as a signed bundle")
    publish.add_argument("--notes", default="", help="a note stored with the bundle")
    publish.add_argument("--wait", action="store_true",
                         help="then show the fleet converging until every sidecar runs the new "
                              "bundle, and how long it took")
    publish.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_WAIT_TIMEOUT,
                         metavar="S",
                         help="with --wait: give up after S seconds and exit 1 naming the "
                              f"sidecars behind (default {DEFAULT_WAIT_TIMEOUT:g})")
    publish.set_defaults(handler=_publish)
    rollback = commands.add_parser("rollback", help="republish an earlier bundle's content")
    rollback.add_argument("sequence", type=int, metavar="SEQ")
    rollback.add_argument("--notes", default="", help="a note stored with the bundle")
    rollback.set_defaults(handler=_rollback)

    fleet = commands.add_parser("fleet", help="which sidecars run which bundle")
    fleet.set_defaults(handler=_fleet)
    decisions = commands.add_parser("decisions", help="recent decisions logged by sidecars")
    decisions.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    decisions.add_argument("--id", dest="decision_id", help="only this decision id")
    decisions.set_defaults(handler=_decisions)


def _policy_id(text: str) -> str:
    # An empty id (a shell variable that was not set) asked for /v1/policies/, which answered
    # a bare "HTTP 404: Not Found" naming neither the policy nor the mistake.
    if not text.strip():
        raise argparse.ArgumentTypeError("a policy id must not be empty")
    return text


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, got {text!r}")
    return value


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _client(args: argparse.Namespace) -> AdminClient:
    if args.token_file is None:
        raise AdminError("--token-file (or PDP_TOKEN_FILE) is required")
    try:
        token = args.token_file.read_text().strip()
    except OSError as exc:
        raise AdminError(f"cannot read the token file {args.token_file}: {exc.strerror}") from None
    if not token:
        raise AdminError(f"the token file {args.token_file} is empty")
    if not (token.isascii() and token.isprintable()) or any(c.isspace() for c in token):
        # Sent as it is, a stray control character broke the header line, and the server's
        # HTTP parser logged the line, token included. The token itself is never printed here.
        raise AdminError(f"the token file {args.token_file} holds characters no token has"
                         " (control characters, spaces or non-ASCII)")
    return AdminClient(args.server, token, timeout=args.request_timeout)


def _shown(value: object) -> str:
    """`value` as text fit for a terminal: what sidecars report (instance ids, error messages)
    is theirs to choose, and an escape sequence in it could erase or forge lines on screen."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[_shown(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _policy_list(args: argparse.Namespace, client: AdminClient) -> None:
    params = {k: v for k, v in (("type", args.filter_type), ("severity", args.severity),
                                ("enabled", args.enabled), ("order_by", args.order_by)) if v}
    policies: list[dict[str, Any]] = []
    token = ""
    while True:
        query = urllib.parse.urlencode({**params, "page_size": "500",
                                        **({"page_token": token} if token else {})})
        page = client.call("GET", f"/v1/policies?{query}", expect=("policies",))
        policies.extend(page["policies"])
        token = page.get("next_page_token") or ""
        if not token:
            break
    if args.json:
        print(json.dumps({"policies": policies, "total_count": len(policies)}, indent=2))
        return
    rows = [(p["policy"]["id"], p["policy"]["type"], p["policy"]["severity"],
             p["policy"]["enforcement"], "yes" if p["policy"]["enabled"] else "no",
             p["version"], p["updated_at"][:19].replace("T", " ")) for p in policies]
    _table(("id", "type", "severity", "enforcement", "enabled", "version", "updated"), rows)
    print(f"{len(policies)} policies")


def _policy_get(args: argparse.Namespace, client: AdminClient) -> None:
    answer = client.call("GET", f"/v1/policies/{urllib.parse.quote(args.policy_id, safe='')}",
                         expect=POLICY_FIELDS)
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    print(yaml.safe_dump(answer["policy"], sort_keys=False, allow_unicode=True).rstrip())
    print(f"# version {answer['version']}, updated {answer['updated_at']}")


def _policy_apply(args: argparse.Namespace, client: AdminClient) -> None:
    try:
        documents = read_documents(args.file)
    except OSError as exc:
        raise AdminError(f"cannot read {args.file}: {exc.strerror}") from None
    validate_all(client, args.file, documents)
    results: list[dict[str, Any]] = []
    try:
        for number, document in enumerate(documents, start=1):
            try:
                outcome, answer = apply_one(client, document)
            except AdminError as exc:
                raise AdminError(
                    f"document {number} ({document['id']}): {exc} ({len(results)} of "
                    f"{len(documents)} documents applied before it; the rest were not)",
                    status=exc.status, body=exc.body) from None
            results.append({"outcome": outcome, **answer})
            if not args.json:
                # Printed at once: if a later document fails, what changed is already shown.
                print(f"policy {answer['policy']['id']} {outcome} (version {answer['version']})",
                      flush=True)
    finally:
        if args.json:
            print(json.dumps(results, indent=2))


def _policy_delete(args: argparse.Namespace, client: AdminClient) -> None:
    answer = client.call("DELETE", f"/v1/policies/{urllib.parse.quote(args.policy_id, safe='')}",
                         expect=("id",))
    print(json.dumps(answer, indent=2) if args.json else f"policy {answer['id']} deleted")


def _print_bundle(args: argparse.Namespace, answer: dict[str, Any], verb: str) -> None:
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    print(f"{verb} bundle {answer['sequence']} (revision {answer['revision']}, "
          f"sha256 {answer['sha256'][:16]}…, signed by {answer['key_id']})")


def _publish(args: argparse.Namespace, client: AdminClient) -> None:
    started = time.monotonic()
    answer = client.call("POST", "/v1/publish", {"notes": args.notes}, expect=BUNDLE_FIELDS)
    if not args.wait:
        _print_bundle(args, answer, "published")
        return
    if not args.json:
        _print_bundle(args, answer, "published")
    try:
        waited = _wait_for_fleet(client, answer, started=started, timeout=args.timeout,
                                 show=not args.json)
    except AdminError as exc:
        if args.json and "converged" in exc.body:
            # Timed out, but the bundle *was* published: a script must learn which one.
            print(json.dumps({**answer, "wait": exc.body}, indent=2))
        raise
    if args.json:
        print(json.dumps({**answer, "wait": waited}, indent=2))


def _behind(fleet: dict[str, Any], sequence: int) -> list[dict[str, Any]]:
    """Sidecars not yet on `sequence` or later (a later publish counts as converged)."""
    return [s for s in fleet["sidecars"] if (s["sequence"] or 0) < sequence]


def _describe(sidecar: dict[str, Any]) -> str:
    error = (sidecar.get("last_error") or {}).get("message")
    text = f"{sidecar['instance_id']} (revision {sidecar['revision'] or '-'}, {sidecar['state']}"
    return _shown(text + (f", last error: {error})" if error else ")"))


def _wait_for_fleet(client: AdminClient, bundle: dict[str, Any], *, started: float,
                    timeout: float, show: bool) -> dict[str, Any]:
    """Follow ``/v1/fleet`` until every sidecar runs `bundle`; print each change in progress.

    Raises AdminError naming the sidecars behind when `timeout` seconds pass first.
    """
    sequence, revision = bundle["sequence"], bundle["revision"]
    shown: tuple[int, int] | None = None
    while True:
        fleet = client.call("GET", "/v1/fleet", expect=FLEET_FIELDS)
        behind = _behind(fleet, sequence)
        total = fleet["total"]
        elapsed = time.monotonic() - started
        progress = (total - len(behind), total)
        if show and progress != shown:
            print(f"  {progress[0]} of {total} on revision {revision} ({elapsed:.2f} s)",
                  flush=True)
            shown = progress
        if not behind:
            if show:
                note = "" if total else " (no sidecar has reported to this control plane)"
                print(f"converged: {total} of {total} on revision {revision} "
                      f"in {elapsed:.2f} s{note}")
            return {"converged": True, "seconds": round(elapsed, 3), "on_revision": total,
                    "total": total, "behind": []}
        if elapsed >= timeout:
            raise AdminError(
                f"timed out after {timeout:g} s: {progress[0]} of {total} on revision "
                f"{revision}; behind: " + "; ".join(_describe(s) for s in behind),
                body={"converged": False, "seconds": round(elapsed, 3),
                      "on_revision": progress[0], "total": total, "behind": behind})
        time.sleep(WAIT_POLL_SECONDS)


def _rollback(args: argparse.Namespace, client: AdminClient) -> None:
    answer = client.call("POST", "/v1/rollback", {"sequence": args.sequence, "notes": args.notes},
                         expect=BUNDLE_FIELDS)
    _print_bundle(args, answer, f"rolled back to the content of {args.sequence} as")


def _fleet(args: argparse.Namespace, client: AdminClient) -> None:
    answer = client.call("GET", "/v1/fleet", expect=FLEET_FIELDS)
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    print(answer["summary"])
    for straggler in answer.get("stragglers", []):
        print(f"  behind: {_describe(straggler)}")
    rows = [(s["instance_id"], s["revision"] or "-", s["state"], s["last_seen"][:19],
             (s["last_error"] or {}).get("message", "")) for s in answer["sidecars"]]
    if rows:
        _table(("instance", "revision", "state", "last seen", "last error"), rows)


def _outcome(result: object) -> str:
    if not isinstance(result, dict):
        return "-"
    for key in ("allowed", "compliant"):
        if key in result:
            return f"{key}={str(result[key]).lower()}"
    return "-"


def _decisions(args: argparse.Namespace, client: AdminClient) -> None:
    query = {"limit": str(args.limit), **({"decision_id": args.decision_id}
                                           if args.decision_id else {})}
    answer = client.call("GET", f"/v1/decisions?{urllib.parse.urlencode(query)}",
                         expect=("decisions",))
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    rows = [(d.get("decision_id", ""), d.get("query", ""), _outcome(d.get("result")),
             d.get("instance_id", ""), d.get("received_at", "")[:19])
            for d in answer["decisions"]]
    _table(("decision", "query", "outcome", "instance", "received"), rows)


def _report(exc: AdminError, *, as_json: bool) -> None:
    if as_json and exc.body:
        print(json.dumps(exc.body, indent=2), file=sys.stderr)
        return
    print(f"pdp admin: {exc}", file=sys.stderr)
    for error in exc.body.get("errors") or []:
        print(f"  {error.get('field') or '<document>'}: {error.get('message')}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the chosen admin command."""
    return _output.ending_quietly_if_stdout_closes(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.token_file is None:
        # A missing option is a usage error (exit 2, DESIGN §8.5), not a refusal.
        print("pdp admin: --token-file (or PDP_TOKEN_FILE) is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        args.handler(args, _client(args))
    except AdminError as exc:
        _report(exc, as_json=args.json)
        return EXIT_REFUSED
    return EXIT_OK
