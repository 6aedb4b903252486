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
    """A ratio as a signed relative change: 1.23 -> ``+23.0%``."""
    if math.isnan(ratio):
        return MISSING
    if math.isinf(ratio):
        return "+∞" if ratio > 0 else "-∞"
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
