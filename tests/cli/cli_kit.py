"""Helpers of the command-line tests: the real `pdp` run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKETPLACE = REPO / "bundles" / "marketplace"

Pdp = Callable[..., subprocess.CompletedProcess[str]]


def run_pdp(
    *args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None,
    umask: int = -1,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m pdp ARGS` (under `umask` when given) and capture its exit code, stdout
    and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "pdp", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        umask=umask,
        check=False,
    )
