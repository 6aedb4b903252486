"""A stored run as a file: JSON (one document, every raw sample) or CSV (one row per sample).

The JSON export is also the format of recorded histories kept as fixtures (it does not change
when the store's schema does).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from allele.store.model import RunInfo, RunRecord


def _info_dict(info: RunInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "spec_name": info.spec_name,
            "target": info.target, "status": info.status, "created_at": info.created_at,
            "finished_at": info.finished_at, "cell_count": info.cell_count,
            "failed_count": info.failed_count, "spec": info.spec,
            "environment": info.environment}


def export_json(record: RunRecord) -> str:
    """A run as one JSON document: ``{"run": {...}, "cells": [{..., "samples": [...]}]}``."""
    cells = [{
        "key": c.key, "target": c.target, "params": c.params, "status": c.status,
        "error": c.error, "started_at": c.started_at, "finished_at": c.finished_at,
        "profile": c.profile,
        "samples": [{"metric": s.metric, "value": _json_num(s.value), "seed": s.seed,
                     "repeat": s.repeat} for s in c.samples],
    } for c in record.cells]
    return json.dumps({"run": _info_dict(record.info), "cells": cells}, indent=2,
                      default=str) + "\n"


CSV_COLUMNS = ("run_id", "run_name", "cell_key", "target", "params", "status", "metric", "seed",
               "repeat", "value", "error")


def export_csv(record: RunRecord) -> str:
    """One row per raw sample (a failed cell without samples gets one row with its error)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    info = record.info
    for c in record.cells:
        params = json.dumps(c.params, sort_keys=True)
        if not c.samples:
            writer.writerow([info.id, info.name, c.key, c.target, params, c.status, "", "", "",
                             "", c.error or ""])
        for s in sorted(c.samples, key=lambda s: (s.metric, s.seed, s.repeat)):
            writer.writerow([info.id, info.name, c.key, c.target, params, c.status, s.metric,
                             s.seed, s.repeat, repr(float(s.value)), c.error or ""])
    return buf.getvalue()


def _json_num(v: float) -> float | str:
    return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
