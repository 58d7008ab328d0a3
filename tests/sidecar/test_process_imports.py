"""What a `pdp run` process loads: only what serving needs (DESIGN §12 start-up and memory).

Each test starts a fresh interpreter, builds the `pdp run` command line the way the entry point
does and imports the sidecar's process module, then lists the modules loaded. A module listed here
costs every sidecar start-up time and idle memory whether or not its feature is configured.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from pdp.cli.main import build_parser
build_parser(sys.argv[1:]).parse_args(sys.argv[1:])
import pdp.sidecar.process
print(json.dumps(sorted(sys.modules)))
"""


def modules_loaded(*argv: str) -> set[str]:
    """The module names loaded after parsing ``pdp ARGV`` and importing the sidecar."""
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return set(loaded)


@pytest.fixture(scope="module")
def run_dev_modules() -> set[str]:
    """Modules of `pdp run --dev` (built-in bundle, no control plane)."""
    return modules_loaded("run", "--dev")


def test_run_does_not_load_other_command_groups(run_dev_modules: set[str]) -> None:
    """`pdp run` loads its own command group, not the control plane's, the admin client's or
    the offline tools'."""
    others = {"pdp.cli.control", "pdp.cli.admin", "pdp.cli.offline", "pdp.control"}
    assert not others & run_dev_modules


def test_control_plane_clients_load_only_when_configured(run_dev_modules: set[str]) -> None:
    """Without --bundle-url or --control-url, the long-poll source, the status reporter and the
    decision-log uploader are not imported."""
    clients = {"pdp.runtime.http_source", "pdp.runtime.status_report", "pdp.runtime.log_upload"}
    assert not clients & run_dev_modules


def test_help_still_lists_every_command() -> None:
    """`pdp --help` loads every command group, so it lists all commands."""
    result = subprocess.run([sys.executable, "-m", "pdp", "--help"], capture_output=True,
                            text=True, timeout=60, check=True)
    for command in ("keygen", "bundle", "test", "eval", "run", "control", "admin"):
        assert command in result.stdout


def test_yaml_loads_only_to_build_a_bundle(run_dev_modules: set[str]) -> None:
    """Importing the sidecar does not load PyYAML: only a bundle build (`--dev`, at start-up)
    reads YAML policy files, so a sidecar serving a built bundle never pays for it."""
    assert "yaml" not in run_dev_modules
