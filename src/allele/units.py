"""Size units: how many bytes each is, and which ladder of units a size is written in.

KiB/MiB/GiB/TiB are binary (what the runner measures: ``peak_rss_mb`` is read in kibibytes and
reported in MiB), KB/MB/GB/TB decimal, as their names say. The benchmark tables
(:func:`allele.bench.format.quantity`) and the analytics' messages
(:func:`allele.analytics._common.format_value`) both write sizes with them.
"""

from __future__ import annotations

BINARY_SIZES = (("TiB", 1024.0**4), ("GiB", 1024.0**3), ("MiB", 1024.0**2), ("KiB", 1024.0),
                ("B", 1.0))
DECIMAL_SIZES = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1.0))
BYTES_PER = {name: size for name, size in BINARY_SIZES + DECIMAL_SIZES} | {"bytes": 1.0}
"""Bytes per size unit."""


def size_ladder(unit: str) -> tuple[tuple[str, float], ...] | None:
    """The units, largest first with their sizes in bytes, that a size measured in ``unit`` is
    written in (decimal for KB/MB/GB/TB, binary for bytes and the binary units); None when
    ``unit`` is not a size."""
    if unit not in BYTES_PER:
        return None
    return DECIMAL_SIZES if unit in ("KB", "MB", "GB", "TB") else BINARY_SIZES
