"""The connector conformance kit, for plugin authors' test suites.

``TestMyCart = connector_test_class(MyCartConnector, settings=..., simulator=...)``
in a test module gives every standard check. Installed as a pytest plugin
(entry point ``pytest11``), which registers the ``cartstatus_conformance`` marker.
"""

from .kit import (
    LABEL_SAMPLE,
    ConnectorConformance,
    capture_logs,
    connector_test_class,
    label_sample,
    make_update,
    wrap_secrets,
)
from .simulator import (
    REQUIRED_FAULTS,
    AnswerTransport,
    CartSimulator,
    CheckedTransport,
    CutTransport,
    SimulatorTransport,
    SocketTransport,
    UnreachableTransport,
    serve_app,
    simulator_transport,
)

__all__ = [
    "LABEL_SAMPLE",
    "REQUIRED_FAULTS",
    "AnswerTransport",
    "CartSimulator",
    "CheckedTransport",
    "ConnectorConformance",
    "CutTransport",
    "SimulatorTransport",
    "SocketTransport",
    "UnreachableTransport",
    "capture_logs",
    "connector_test_class",
    "label_sample",
    "make_update",
    "serve_app",
    "simulator_transport",
    "wrap_secrets",
]
