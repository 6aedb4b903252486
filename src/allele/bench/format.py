"""How numbers, changes, parameters and times are written in tables and reports.

Every face (the CLI tables, the HTML and Markdown reports, later the dashboards) formats through
these functions, so a value reads the same everywhere.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from allele.units import BYTES_PER, size_ladder

MISSING = "–"


def number(v: float | None, digits: int = 4, *, sci_above: float | None = 1e5,
           missing: str = MISSING) -> str:
    """``v`` with ``digits`` significant digits; scientific notation when ``|v| >= sci_above``
    or ``|v| < 1e-3`` (never with ``sci_above=None``); ``missing`` for None or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return missing
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "-∞"
    mag = abs(v)
    if sci_above is not None and mag != 0 and (mag >= sci_above or mag < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def pct(ratio: float) -> str:
    """A ratio as a signed relative change: 1.23 -> ``+23.0%``; from 10 times on as a factor,
    ``×2.15e+06`` (an interval's end of a metric near 0 printed as ``+214560193.9%``)."""
    if math.isnan(ratio):
        return MISSING
    if math.isinf(ratio):
        return "+∞" if ratio > 0 else "-∞"
    if ratio >= 10.0:
        return f"×{ratio:.3g}"
    return f"{(ratio - 1.0) * 100:+.1f}%"


def params_text(params: Mapping[str, Any], empty: str = "-") -> str:
    """``a=1, b=x`` in key order, or ``empty`` when there are none."""
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or empty


def param_variation(param_sets: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many distinct values each parameter takes over ``param_sets`` (a parameter missing
    from a set counts as one more value): what tables use to show only the parameters that
    vary and to say the shared ones once."""
    sets = list(param_sets)
    names = dict.fromkeys(k for p in sets for k in p)
    return {k: len({json.dumps(p.get(k, "<unset>"), sort_keys=True, default=str) for p in sets})
            for k in names}


def varying_params(param_sets: Iterable[Mapping[str, Any]], *,
                   all_if_single: bool = False) -> list[str]:
    """Parameters with more than one value among ``param_sets``, most values first (the one
    answer to "which parameters vary" for tables, reports and the dashboard). With
    ``all_if_single``, a single set's parameters are all listed (a one-cell table shows them)."""
    sets = list(param_sets)
    if all_if_single and len(sets) == 1:
        return sorted(sets[0])
    counts = param_variation(sets)
    return sorted((k for k, n in counts.items() if n > 1), key=lambda k: (-counts[k], k))


def value_text(v: Any) -> str:
    """A parameter value in a condition: strings quoted (``selection == 'rank'``)."""
    return repr(v) if isinstance(v, str) else str(v)


def when(ts: float | None, missing: str = MISSING) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM:SS``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else missing


_TIME_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_TIME_STEPS = (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))
_RATE_STEPS = (("G/s", 1e9), ("M/s", 1e6), ("k/s", 1e3), ("/s", 1.0))


def _scaled(base: float, steps: tuple[tuple[str, float], ...], digits: int, sep: str,
            whole: str | None = None) -> str:
    """``base`` in the largest of ``steps`` it reaches; in the ``whole`` step (bytes) as a
    whole number (``737 B``, not ``736.9 B``)."""
    mag = abs(base)
    name, size = next(((n, s) for n, s in steps if mag >= s * 0.9995), steps[-1])
    if name == whole:
        return f"{round(base / size)}{sep}{name}"
    return f"{base / size:.{digits}g}{sep}{name}"


def quantity(v: float | None, unit: str = "", digits: int = 4, *,
             missing: str = MISSING) -> str:
    """``v`` (measured in ``unit``) written in the unit that suits its size: times in
    ns/us/ms/s (``0.0001056`` s -> ``105.6 us``), sizes in B/KiB/MiB/GiB/TiB when measured in a
    binary unit or in bytes (1 MiB = 1024 KiB, as the runner measures them) and in KB/MB/GB/TB
    when in a decimal one, under 1 KiB (1 KB) as whole bytes (:mod:`allele.units`), rates per
    second with k/M/G (``12.35k/s``); any other unit (``""``, ``tokens``) as a plain number
    followed by the unit, from 10,000 on whole and with thousands separators (a median of
    instruction counts: ``24,012,346``). The one formatter of measured values for tables,
    reports and dashboards."""
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return number(v, digits, missing=missing)
    if unit in _TIME_SCALE:
        if v == 0:
            return f"0 {unit}"
        return _scaled(v * _TIME_SCALE[unit], _TIME_STEPS, digits, " ")
    steps = size_ladder(unit)
    if steps is not None:
        if v == 0:
            return f"0 {unit}"
        return _scaled(v * BYTES_PER[unit], steps, digits, " ", whole="B")
    if unit == "1/s":
        if v == 0:
            return "0/s"
        return _scaled(float(v), _RATE_STEPS, digits, "")
    if unit == "%":
        return f"{v:.{digits}g}%"
    text = number(v, digits, sci_above=1e12)
    if 1e4 <= abs(v) < 1e15:  # counts in full (a median of instructions 2.4e+07 hid its digits)
        text = f"{round(v):,}"
    return f"{text} {unit}" if unit else text


def metric_value(v: float | None, metric: str, unit: str | None = None,
                 digits: int = 4, *, missing: str = MISSING) -> str:
    """A value of ``metric`` in its unit (``unit`` when declared, else the catalogue's)."""
    from allele.bench.metrics import unit_of

    return quantity(v, unit_of(metric) if unit is None else unit, digits, missing=missing)
