"""The fault tests use the result store fixtures of ``tests/conftest.py``; MLflow needs its
telemetry off before it is imported."""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
