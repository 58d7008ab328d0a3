"""The control plane: PostgreSQL store, admin API, publisher, bundle server (DESIGN §8).

One replica is assembled like this (``pdp control`` does exactly that, see :mod:`.server`)::

    settings = load_control_settings({"database_url": dsn, "signing_key": key, "key_id": kid})
    plane = await open_control_plane(settings, seed_dir=Path("bundles/marketplace"))
    app = make_app(plane)                              # admin API, /bundles/main, /health/*
    server, port = make_grpc_server(plane, "127.0.0.1:50052")
    ...
    await plane.close()

Layers inside: stores (``policy_store``, ``document_store``, ``bundle_store``, ``auth``) hold SQL;
``draft``, ``publisher`` and ``token_admin`` authorise, validate and audit every operation; the
HTTP (``http_app`` and its routes) and gRPC (``grpc_service``) shells only translate. Exceptions
are in :mod:`pdp.control.errors`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pdp.control.auth import Permission, Principal, Role
    from pdp.control.bundle_feed import BundleFeed
    from pdp.control.bundle_store import BundleRecord
    from pdp.control.errors import (
        AlreadyExistsError,
        AuthenticationError,
        BodyTooLargeError,
        ConfigurationError,
        ControlError,
        NotFoundError,
        NotPublishedError,
        PermissionDeniedError,
        PublishRefusedError,
        RequestError,
        StoreUnavailableError,
        VersionConflictError,
    )
    from pdp.control.grpc_service import ControlPolicyEngineServicer, make_grpc_server
    from pdp.control.http_app import make_app
    from pdp.control.metrics import ControlMetrics
    from pdp.control.migrations import apply_migrations, migrations_complete
    from pdp.control.plane import ControlPlane, create_token, open_control_plane
    from pdp.control.server import ControlServer
    from pdp.control.settings import ControlSettings, load_control_settings


# Where each public name lives. Loaded on first use (PEP 562): `pdp control create-token` and
# `pdp --help` import pdp.control's settings and errors without paying for grpc and aiohttp.
_HOMES = {
    "Permission": "auth", "Principal": "auth", "Role": "auth",
    "BundleFeed": "bundle_feed", "BundleRecord": "bundle_store",
    "ControlPolicyEngineServicer": "grpc_service", "make_grpc_server": "grpc_service",
    "make_app": "http_app", "ControlMetrics": "metrics",
    "apply_migrations": "migrations", "migrations_complete": "migrations",
    "ControlPlane": "plane", "create_token": "plane", "open_control_plane": "plane",
    "ControlServer": "server", "ControlSettings": "settings",
    "load_control_settings": "settings",
}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name) or ("errors" if name.endswith("Error") else None)
    if module is None:
        raise AttributeError(f"module 'pdp.control' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pdp.control.{module}"), name)


__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "BodyTooLargeError",
    "BundleFeed",
    "BundleRecord",
    "ConfigurationError",
    "ControlError",
    "ControlMetrics",
    "ControlPlane",
    "ControlPolicyEngineServicer",
    "ControlServer",
    "ControlSettings",
    "NotFoundError",
    "NotPublishedError",
    "Permission",
    "PermissionDeniedError",
    "Principal",
    "PublishRefusedError",
    "RequestError",
    "Role",
    "StoreUnavailableError",
    "VersionConflictError",
    "apply_migrations",
    "create_token",
    "load_control_settings",
    "make_app",
    "make_grpc_server",
    "migrations_complete",
    "open_control_plane",
]
