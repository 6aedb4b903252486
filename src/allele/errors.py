"""The one exception hierarchy of Allele.

Every error Allele raises on purpose derives from :class:`AlleleError`; the CLI turns any of them
into a one-line message and a non-zero exit code.
"""

from __future__ import annotations


class AlleleError(Exception):
    """Root of every error Allele raises on purpose."""


class ValidationError(AlleleError, ValueError):
    """A value, a configuration or a spec is not acceptable; the message says which and why.

    ``param`` names the bad field or parameter when the raiser knows one (the validated
    configurations of :mod:`allele.core` set it; a spec check reports it as the spec's key),
    else None.
    """

    def __init__(self, *args: object, param: str | None = None) -> None:
        super().__init__(*args)
        self.param = param


class ConfigError(ValidationError):
    """Settings or a spec file are invalid."""


class ProviderError(AlleleError):
    """An LLM provider could not answer: unreachable, timed out, or answered with an error.

    ``url`` names the endpoint (or model path for in-process providers) and ``cause`` is a short
    machine-readable reason such as ``connect``, ``timeout``, ``http_4xx``, ``http_5xx``,
    ``invalid_response``, ``model_load`` or ``other``.
    """

    def __init__(self, message: str, *, url: str = "", cause: str = "other",
                 status: int | None = None, retries: int = 0) -> None:
        super().__init__(message)
        self.url = url
        self.cause = cause
        self.status = status
        self.retries = retries


class StoreError(AlleleError):
    """The result store could not read or write."""


class BenchmarkError(AlleleError):
    """A benchmark run or one of its cells could not be carried out."""


class TrackingError(AlleleError):
    """Experiment tracking (MLflow) failed or is not installed."""


class AnalyticsError(AlleleError):
    """An analytics estimator was misused (for example predict before fit) or got unusable data."""


class NotFittedError(AnalyticsError):
    """An estimator or readout was used before ``fit``."""
