"""`pdp admin policy apply -f FILE`: policy files read, validated as a whole, then applied.

A file may hold several YAML/JSON documents. Every one is validated by the control plane before
any is applied, so a file with a bad document changes nothing; each applied policy is reported as
it is applied, so a later failure (a conflict) still shows what changed.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from pdp.cli.admin_client import POLICY_FIELDS, AdminClient, AdminError


def file_name(path: Path) -> str:
    return "stdin" if str(path) == "-" else str(path)


def read_documents(path: Path) -> list[dict[str, Any]]:
    name = file_name(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AdminError(f"{name}: not UTF-8 text") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise AdminError(f"{name}: not valid YAML or JSON: {exc}") from None
    except RecursionError:
        # PyYAML nests recursively: `[[[[...` thousands deep exhausts the stack. A policy is
        # a few levels deep (the control plane refuses JSON deeper than 64 anyway).
        raise AdminError(f"{name}: nested too deeply to be a policy file") from None
    if not documents:
        # Applying nothing and exiting 0 hid a wrong path or a truncated file from scripts.
        raise AdminError(f"{name}: holds no policy documents; nothing was applied")
    for index, document in enumerate(documents):
        if not isinstance(document, dict) or not isinstance(document.get("id"), str):
            raise AdminError(f"{name}: document {index + 1} is not a policy with an 'id'")
        try:
            json.dumps(document, allow_nan=False)
        except (TypeError, ValueError) as exc:
            # YAML has types JSON lacks (an unquoted 2024-01-01 is a date; sets, binary), as
            # `pdp bundle build` says for the same file; sending it raised a traceback.
            raise AdminError(f"{name}: document {index + 1} ({document['id']}) holds a value "
                             f"JSON cannot represent ({exc}); quote it") from None
    return documents


def validate_all(client: AdminClient, path: Path, documents: list[dict[str, Any]]) -> None:
    """Ask the control plane to validate every document; AdminError naming each invalid one.

    Nothing is applied unless every document is valid, so a file is applied whole or not at all
    as far as validation can tell (a conflict found while applying can still stop it midway).
    """
    invalid: list[tuple[int, str, AdminError]] = []
    for number, document in enumerate(documents, start=1):
        try:
            client.call("POST", "/v1/policies/validate", document, expect=("valid",))
        except AdminError as exc:
            if exc.status != 400:  # unreachable, not allowed...: the same for every document
                raise
            invalid.append((number, document["id"], exc))
    if not invalid:
        return
    lines = [f"{file_name(path)}: {len(invalid)} of {len(documents)} documents invalid; "
             "nothing was applied"]
    for number, policy_id, refusal in invalid:
        lines.append(f"  document {number} ({policy_id}): {refusal}")
        lines.extend(f"    {error.get('field') or '<document>'}: {error.get('message')}"
                     for error in refusal.body.get("errors") or [])
    body = {"message": lines[0], "invalid": [{"document": number, "id": policy_id, **refusal.body}
                                             for number, policy_id, refusal in invalid]}
    raise AdminError("\n".join(lines), status=400, body=body)


def apply_one(client: AdminClient, document: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Create or update one policy; return the outcome and the control plane's answer."""
    path = f"/v1/policies/{urllib.parse.quote(document['id'], safe='')}"
    try:
        current = client.call("GET", path, expect=POLICY_FIELDS)
    except AdminError as exc:
        if exc.status != 404:
            raise
        return "created", client.call("POST", "/v1/policies", document, expect=POLICY_FIELDS)
    # Without a version in the file, guard against a change between our read and our write.
    version = document.get("version", current["version"])
    answer = client.call("PUT", path, document, headers={"If-Match": f'"{version}"'},
                         expect=POLICY_FIELDS)
    return ("updated" if answer["version"] != current["version"] else "unchanged"), answer
