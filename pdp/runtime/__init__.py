"""The sidecar engine: bundle sources, activation, persistence, health, metrics, decision log.

The shells (`pdp.sidecar`) build one :class:`Engine` from a :class:`RuntimeConfig`, call
``await engine.start()``, answer requests with ``engine.decide(...)``, ``engine.status()`` and
``engine.ready()``, and ``await engine.stop()`` on shutdown. Exceptions are in
:mod:`pdp.runtime.errors`.
"""

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
from pdp.runtime.log_upload import UploadSink
from pdp.runtime.logs import JsonFormatter, configure_logging
from pdp.runtime.metrics import RuntimeMetrics
from pdp.runtime.persist import BundleStore
from pdp.runtime.ratelimit import RateCounter
from pdp.runtime.snapshot import ActiveBundle
from pdp.runtime.source import BundleSource, BundleUnchanged, BundleUpdate, SourceEvent
from pdp.runtime.status_report import StatusReporter

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
]
