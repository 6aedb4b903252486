"""pytest-benchmark JSON import: ordering, parsing and rejection of bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from allele.bench.importers import cell_from_benchmark, import_files, import_pytest_benchmark
from allele.errors import ValidationError
from allele.store import open_store
from allele.store.model import cell_key


def test_cell_from_benchmark_keys() -> None:
    bench = {"name": "test_x[a-1]", "fullname": "b/t.py::test_x[a-1]",
             "params": {"kind": "a", "n": 1}, "param": "a-1", "group": "ops",
             "stats": {"data": [0.5, 0.25]}}
    cell = cell_from_benchmark(bench)
    assert cell.target == "pytest:b/t.py::test_x"
    assert cell.params == {"kind": "a", "n": 1, "group": "ops"}
    assert cell.key == cell_key("pytest:b/t.py::test_x", {"group": "ops", "kind": "a", "n": 1})
    assert [(s.metric, s.value, s.seed, s.repeat) for s in cell.samples] == [
        ("wall_s", 0.5, 0, 0), ("wall_s", 0.25, 0, 1)]
    only_id = cell_from_benchmark({"name": "t[x]", "fullname": "t.py::t[x]", "params": None,
                                   "param": "x", "stats": {"data": [1.0]}})
    assert only_id.params == {"param": "x"}


def test_import_files_orders_by_datetime(tmp_path: Path) -> None:
    def doc(when: str, value: float) -> dict[str, Any]:
        return {"datetime": when, "version": "5.1.0", "machine_info": {}, "commit_info": {},
                "benchmarks": [{"name": "test_x", "fullname": "t.py::test_x", "params": None,
                                "param": None, "group": None,
                                "stats": {"data": [value, value * 1.01, value * 0.99]}}]}
    late = tmp_path / "late.json"
    early = tmp_path / "early.json"
    late.write_text(json.dumps(doc("2026-01-02T00:00:00+00:00", 2.0)))
    early.write_text(json.dumps(doc("2026-01-01T00:00:00+00:00", 1.0)))
    with open_store(f"sqlite:///{tmp_path / 'o.db'}") as store:
        ids = import_files(store, [late, early])
        names = [store.get_run(i).name for i in ids]
        cell = store.load_run(ids[0]).cells[0]
    assert names == ["pytest-early", "pytest-late"]
    assert cell.values("wall_s") == pytest.approx([1.0, 1.01, 0.99])
    assert cell.started_at == pytest.approx(1767225600.0)


def test_import_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"results": []}))
    nostats = tmp_path / "nostats.json"
    nostats.write_text(json.dumps({"benchmarks": [{"name": "t", "fullname": "t"}]}))
    with open_store(f"sqlite:///{tmp_path / 'b.db'}") as store:
        for path in (bad, other, nostats, tmp_path / "missing.json"):
            with pytest.raises(ValidationError):
                import_pytest_benchmark(store, path)
        assert store.list_runs() == []
