"""The optional MLflow dependency: imported only when tracking is actually used."""

from __future__ import annotations

import os
from types import ModuleType

from allele.errors import TrackingError

INSTALL_HINT = "pip install 'allele[mlflow]'"

_HTTP_DEFAULTS = {
    # MLflow's own defaults retry a dead server for minutes; Allele spools instead.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def require_mlflow() -> ModuleType:
    """Import and return ``mlflow``; set ``MLFLOW_DISABLE_TELEMETRY=true`` first.

    Raises :class:`TrackingError` naming the extra to install when MLflow is missing.
    """
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    try:
        import mlflow
    except ImportError as exc:
        raise TrackingError(
            f"MLflow tracking needs the optional dependency MLflow: {INSTALL_HINT} ({exc})"
        ) from None
    return mlflow
