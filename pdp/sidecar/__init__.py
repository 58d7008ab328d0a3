"""The sidecar shell: `pdp run`'s HTTP API, gRPC servers and process assembly over pdp.runtime.

Public names (imported on first use, so ``pdp --help`` and the gRPC modules that import
``pdp.sidecar.errors`` do not pay for aiohttp and grpc at import time)::

    settings = load_settings(flags, config_file)        # RunSettings: file → PDP_* → flags
    app = make_app(engine, metrics=engine.metrics)      # the aiohttp application
    sidecar = Sidecar(settings, workdir=Path.cwd())     # engine + HTTP + gRPC on one loop
    await sidecar.start(); ...; await sidecar.stop()
    run_sidecar(settings)                               # the `pdp run` entry point (signals)

Modules: ``settings``, ``http_app``, ``http_errors``, ``process``, ``dev`` (``--dev``),
``errors`` (the shell's exception tree), and the gRPC side (``grpc_server``, ``grpc_service``,
``ext_authz``, ``grpc_convert``, ``grpc_errors``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pdp.sidecar.http_app import make_app
    from pdp.sidecar.process import Sidecar, run_sidecar
    from pdp.sidecar.settings import RunSettings, load_settings

__all__ = ["RunSettings", "Sidecar", "load_settings", "make_app", "run_sidecar"]

_HOMES = {
    "RunSettings": "pdp.sidecar.settings",
    "load_settings": "pdp.sidecar.settings",
    "make_app": "pdp.sidecar.http_app",
    "Sidecar": "pdp.sidecar.process",
    "run_sidecar": "pdp.sidecar.process",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pdp.sidecar' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
