"""The layer rule (DESIGN §3): dependencies point one way, shells → runtime → bundle → core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PDP = Path(__file__).resolve().parent.parent / "pdp"

# Which pdp packages each layer may import, besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "bundle": {"core"},
    "runtime": {"core", "bundle"},
    "sidecar": {"core", "bundle", "runtime", "_proto"},
    "control": {"core", "bundle", "runtime", "_proto", "sidecar"},
    "cli": {"core", "bundle", "runtime", "sidecar", "control", "_proto"},
}

# Modules the pure core must never import: I/O, concurrency, network, protocols, clocks.
CORE_FORBIDDEN = {
    "asyncio", "aiohttp", "grpc", "socket", "subprocess", "os", "io", "pathlib", "shutil",
    "threading", "multiprocessing", "time", "urllib", "http", "asyncpg", "watchfiles",
    "prometheus_client", "google.protobuf", "requests", "random", "tempfile", "logging",
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _layer_files(layer: str) -> list[Path]:
    return sorted((PDP / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_layers_below_it(layer: str) -> None:
    """A layer imports pdp packages only from the layers below it."""
    bad = []
    for path in _layer_files(layer):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "pdp" or len(parts) < 2 or parts[1] in {layer, "__init__"}:
                continue
            if parts[1] not in ALLOWED[layer] and parts[1] not in {"__main__"}:
                bad.append(f"{path.relative_to(PDP.parent)} imports {name}")
    assert not bad, "\n".join(bad)


def test_core_is_pure() -> None:
    """Nothing in pdp/core imports I/O, asyncio, gRPC, aiohttp or a clock."""
    assert _layer_files("core"), "pdp/core has no modules"
    bad = []
    for path in _layer_files("core"):
        for name in _imports(path):
            for forbidden in CORE_FORBIDDEN:
                if name == forbidden or name.startswith(forbidden + "."):
                    bad.append(f"{path.relative_to(PDP.parent)} imports {name}")
    assert not bad, "\n".join(bad)
