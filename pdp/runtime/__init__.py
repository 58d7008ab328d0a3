"""The sidecar engine: bundle sources, activation, persistence, health, metrics, decision log.

The shells (`pdp.sidecar`) build one :class:`Engine` from a :class:`RuntimeConfig`, call
``await engine.start()``, answer requests with ``engine.decide(...)``, ``engine.status()`` and
``engine.ready()``, and ``await engine.stop()`` on shutdown. Exceptions are in
:mod:`pdp.runtime.errors`.

:class:`StatusReporter` and :class:`UploadSink` are imported on first use (PEP 562): only a sidecar
that reports to a control plane needs them, and with their HTTP client code they are a measurable
part of every other sidecar's start-up.
"""

import importlib
from typing import TYPE_CHECKING, Any

from pdp.runtime.activation import Activator
from pdp.runtime.config import DecisionLogConfig, RuntimeConfig, StaleAction
from pdp.runtime.decision_log import DecisionLog, DecisionSink, FileSink, StreamSink
from pdp.runtime.engine import Engine
from pdp.runtime.errors import (
    ActivationError,
    ConfigurationError,
    EngineError,
    NotReadyError,
    SourceError,
)
from pdp.runtime.file_source import FileSource
from pdp.runtime.health import HealthState, RuntimeStatus
from pdp.runtime.logs import JsonFormatter, configure_logging, configure_process_logging
from pdp.runtime.metrics import RuntimeMetrics
from pdp.runtime.persist import BundleStore
from pdp.runtime.ratelimit import RateCounter
from pdp.runtime.snapshot import ActiveBundle
from pdp.runtime.source import BundleSource, BundleUnchanged, BundleUpdate, SourceEvent

if TYPE_CHECKING:
    from pdp.runtime.log_upload import UploadSink
    from pdp.runtime.status_report import StatusReporter

_LAZY_HOMES = {
    "StatusReporter": "pdp.runtime.status_report",
    "UploadSink": "pdp.runtime.log_upload",
}

__all__ = [
    "ActivationError",
    "Activator",
    "ActiveBundle",
    "BundleSource",
    "BundleStore",
    "BundleUnchanged",
    "BundleUpdate",
    "ConfigurationError",
    "DecisionLog",
    "DecisionLogConfig",
    "DecisionSink",
    "Engine",
    "EngineError",
    "FileSink",
    "FileSource",
    "HealthState",
    "JsonFormatter",
    "NotReadyError",
    "RateCounter",
    "RuntimeConfig",
    "RuntimeMetrics",
    "RuntimeStatus",
    "SourceError",
    "SourceEvent",
    "StaleAction",
    "StatusReporter",
    "StreamSink",
    "UploadSink",
    "configure_logging",
    "configure_process_logging",
]


def __getattr__(name: str) -> Any:
    """Import a control-plane client class from its module on first use (PEP 562)."""
    home = _LAZY_HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pdp.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
