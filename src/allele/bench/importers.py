"""Bring pytest-benchmark results into the result store.

pytest-benchmark saves one JSON document per session (``--benchmark-save`` / ``--benchmark-json``)
with a ``benchmarks`` list. Each benchmark becomes one cell of one run:

* target ``pytest:<test path>::<test name>`` (the test's full name without its parametrisation),
  params the benchmark's ``params`` (or ``{"param": <id>}`` when only an id is known), so the
  same test keeps the same cell key across sessions and its history can be followed;
* with raw data (``--benchmark-save-data``; always in ``--benchmark-json``): one ``wall_s``
  sample per round (seconds per iteration, ``repeat`` = round index), so the comparison gets real
  samples to test;
* without raw data only the statistics exist: they are stored as one sample each of ``wall_s``
  (the median), ``wall_s_mean``, ``wall_s_min``, ``wall_s_stddev`` (seconds, lower is better)
  and ``ops`` (calls per second, higher is better), declared so in the run's spec document
  (:data:`STATISTICS`) like a target's ``Metric`` values, so tables show units and comparisons
  do not guess directions. A comparison then has no noise estimate (one sample) and says
  ``inconclusive``; the change-point history works on them as usual.

Benchmarks that raised are stored as failed cells. The JSON's ``machine_info``, ``commit_info``,
``datetime`` and ``version`` go into the run's environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from allele.bench.metrics import MetricInfo, declaration, declarations_to_doc
from allele.errors import ValidationError
from allele.store.model import CellResult, Sample, cell_key

if TYPE_CHECKING:
    from allele.store import ResultStore

SOURCE = "pytest-benchmark"

STATISTICS: dict[str, MetricInfo] = {
    **{m: declaration(m, "lower", "s")
       for m in ("wall_s_mean", "wall_s_min", "wall_s_stddev")},
    "ops": declaration("ops", "higher", "1/s"),
}
"""The declarations of the statistics stored for a benchmark saved without raw data."""


def _target(bench: Mapping[str, Any]) -> str:
    fullname = str(bench.get("fullname") or bench.get("name") or "")
    if not fullname:
        raise ValidationError("a pytest-benchmark entry has neither 'fullname' nor 'name'")
    base = fullname.split("[", 1)[0]
    return f"pytest:{base}"


def _params(bench: Mapping[str, Any]) -> dict[str, Any]:
    params = bench.get("params")
    if isinstance(params, Mapping) and params:
        return {str(k): (v if isinstance(v, int | float | str | bool) or v is None else str(v))
                for k, v in params.items()}
    param = bench.get("param")
    return {"param": str(param)} if param not in (None, "") else {}


def _timestamp(doc: Mapping[str, Any]) -> float:
    raw = doc.get("datetime")
    if not isinstance(raw, str):
        return 0.0
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return 0.0


def cell_from_benchmark(bench: Mapping[str, Any], *, when: float = 0.0,
                        error: bool = False) -> CellResult:
    """One pytest-benchmark entry (the dict of ``Metadata.as_dict``) as a :class:`CellResult`."""
    target = _target(bench)
    params = _params(bench)
    if group := bench.get("group"):
        params.setdefault("group", str(group))
    key = cell_key(target, params)
    if error:
        return CellResult(key, target, params, "failed", [],
                          error="the benchmarked test raised", started_at=when, finished_at=when)
    st = bench.get("stats")
    if not isinstance(st, Mapping):
        raise ValidationError(f"benchmark {_label(bench)} has no 'stats'")
    samples: list[Sample] = []
    data = st.get("data")
    if isinstance(data, list) and data:
        samples = [Sample("wall_s", float(v), 0, i) for i, v in enumerate(data)]
    else:
        try:
            median = float(st["median"])
            mean = float(st["mean"])
            summary = {
                "wall_s": median,
                "wall_s_mean": mean,
                "wall_s_min": float(st["min"]),
                "wall_s_stddev": float(st.get("stddev", 0.0)),
                "ops": float(st.get("ops") or (1.0 / mean if mean else 0.0)),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"benchmark {_label(bench)}: stats lack {exc}") from None
        samples = [Sample(m, v, 0, 0) for m, v in summary.items()]
    return CellResult(key, target, params, "ok", samples, started_at=when, finished_at=when)


def _label(bench: Mapping[str, Any]) -> str:
    """How an error names a benchmark entry: its full name, else its name, else that it has
    neither."""
    name = bench.get("fullname") or bench.get("name")
    return repr(name) if name else "(with no 'fullname' or 'name')"


def load_pytest_benchmark(path: str | Path) -> dict[str, Any]:
    """Read and check a pytest-benchmark JSON file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{p}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ValidationError(f"{p}: not a pytest-benchmark file (no 'benchmarks' list)")
    return doc


def cells_from_document(doc: Mapping[str, Any]) -> list[CellResult]:
    """Every benchmark of a pytest-benchmark document as cells (duplicates keep the last)."""
    when = _timestamp(doc)
    cells: dict[str, CellResult] = {}
    for bench in doc.get("benchmarks", []):
        if not isinstance(bench, Mapping):
            raise ValidationError("a 'benchmarks' entry is not an object")
        cell = cell_from_benchmark(bench, when=when)
        cells[cell.key] = cell
    return list(cells.values())


def environment_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The run environment of a pytest-benchmark document: its ``machine_info`` and
    ``commit_info`` as they are, and what they say in the keys a recorded run uses (``cpu``,
    ``python``, ``git``, ``hostname``), so ``bench show``, reports and comparisons read an
    imported run's machine as they read a recorded one's."""
    machine = _mapping(doc.get("machine_info"))
    commit = _mapping(doc.get("commit_info"))
    cpu = _mapping(machine.get("cpu"))
    env: dict[str, Any] = {
        "source": SOURCE,
        "pytest_benchmark_version": doc.get("version"),
        "datetime": doc.get("datetime"),
        "machine_info": dict(machine),
        "commit_info": dict(commit),
    }
    model = cpu.get("brand_raw") or cpu.get("brand")
    if model or cpu.get("count"):
        env["cpu"] = {"model": model, "logical": cpu.get("count")}
    if machine.get("python_version"):
        env["python"] = {"version": machine.get("python_version"),
                         "implementation": machine.get("python_implementation")}
    if commit.get("id"):
        env["git"] = {"commit": commit.get("id"), "dirty": bool(commit.get("dirty")),
                      "branch": commit.get("branch")}
    if machine.get("node"):
        env["hostname"] = machine.get("node")
    return env


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is an object of the JSON, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def record_cells(store: ResultStore, cells: Sequence[CellResult], *, name: str,
                 spec: dict[str, Any], environment: dict[str, Any]) -> str:
    """Create a run holding ``cells`` and finish it; the run id. The statistics the cells
    hold are declared in the spec document's ``metrics`` (:data:`STATISTICS`)."""
    measured = {m for c in cells for m in c.metrics()}
    declared = declarations_to_doc({m: d for m, d in STATISTICS.items() if m in measured})
    if declared:
        spec = {**spec, "metrics": declared}
    run_id = store.create_run(name, SOURCE, SOURCE, spec, environment)
    try:
        store.save_cells(run_id, list(cells))
    except BaseException:
        store.finish_run(run_id, "failed")
        raise
    store.finish_run(run_id, "finished")  # failed cells are counted by the store
    return run_id


def import_pytest_benchmark(store: ResultStore, path: str | Path, *,
                            name: str | None = None) -> str:
    """Import one pytest-benchmark JSON file as a new run; the run id.

    The run name defaults to ``pytest-<file stem>`` (pytest-benchmark's saved files are named
    ``NNNN_<commit>_<date>.json``, unique per session).
    """
    doc = load_pytest_benchmark(path)
    try:
        cells = cells_from_document(doc)
    except ValidationError as exc:  # name the file, as the reader's own errors do
        raise ValidationError(f"{path}: {exc}") from None
    if not cells:
        raise ValidationError(f"{path}: the file holds no benchmarks")
    run_name = name or default_run_name(path)
    spec = {"source": SOURCE, "file": str(path),
            "raw_data": any("wall_s_mean" not in c.metrics() for c in cells if c.status == "ok")}
    return record_cells(store, cells, name=run_name, spec=spec, environment=environment_of(doc))


def default_run_name(path: str | Path) -> str:
    """The run name a file is imported as without ``--name``: ``pytest-<file stem>``."""
    return f"pytest-{Path(path).stem}"


def import_files(store: ResultStore, paths: Sequence[str | Path]) -> list[str]:
    """Import several files oldest first (by their ``datetime``), so histories run in order."""
    docs = [(p, _timestamp(load_pytest_benchmark(p))) for p in paths]
    return [import_pytest_benchmark(store, p) for p, _ in sorted(docs, key=lambda d: d[1])]
