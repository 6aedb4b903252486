"""Allele: genome-encoded agent personalities and the system that measures them."""

from __future__ import annotations

from allele.errors import AlleleError, ProviderError, ValidationError

__version__ = "0.1.0"

__all__ = ["AlleleError", "ProviderError", "ValidationError", "__version__"]
