"""pytest-benchmark JSON import: ordering, parsing and rejection of bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from allele.bench.importers import cell_from_benchmark, import_files, import_pytest_benchmark
from allele.bench.metrics import declarations_from_doc
from allele.cli.bench import app
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


def test_import_reads_the_machine_and_names_the_file_of_a_bad_entry(tmp_path: Path) -> None:
    """pytest-benchmark's machine_info and commit_info land in the keys a recorded run uses,
    so `bench show` names the machine (it printed '? x?, Python ?'); an entry without stats
    is an error naming the file and the entry (it read "benchmark None has no 'stats'")."""
    doc = {"datetime": "2026-01-01T00:00:00+00:00", "version": "5.1.0",
           "machine_info": {"node": "box", "python_version": "3.11.7",
                            "python_implementation": "CPython",
                            "cpu": {"brand_raw": "Example CPU 9000", "count": 4}},
           "commit_info": {"id": "0123456789abcdef", "dirty": True, "branch": "main"},
           "benchmarks": [{"name": "test_x", "fullname": "t.py::test_x", "params": None,
                           "param": None, "group": None, "stats": {"data": [1.0, 1.1]}}]}
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**doc, "benchmarks": [{"name": "test_y"}]}))
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with open_store(url) as store:
        env = store.get_run(import_pytest_benchmark(store, good, name="imp")).environment
        with pytest.raises(ValidationError, match=r"bad\.json: benchmark 'test_y' has no 'stats'"):
            import_pytest_benchmark(store, bad)
    assert env["cpu"] == {"model": "Example CPU 9000", "logical": 4}
    assert env["python"]["version"] == "3.11.7"
    assert env["git"] == {"commit": "0123456789abcdef", "dirty": True, "branch": "main"}
    assert env["machine_info"]["node"] == "box" and env["hostname"] == "box"
    shown = CliRunner().invoke(app, ["show", "imp", "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "Example CPU 9000 x4, Python 3.11.7, git 0123456789+dirty" in shown.output


def _stats_only(mean: float) -> dict[str, Any]:
    """A pytest-benchmark file saved without its rounds (statistics only)."""
    stats = {"min": 0.00119, "max": 0.01, "mean": mean, "stddev": 0.00136, "rounds": 158,
             "median": 0.001238, "ops": 1.0 / mean}
    return {"datetime": "2026-01-01T00:00:00+00:00", "version": "5.1.0",
            "benchmarks": [{"name": "test_big", "fullname": "t.py::test_big", "params": None,
                            "param": None, "group": None, "stats": stats}]}


def test_statistics_are_imported_with_units_and_directions(tmp_path: Path) -> None:
    """Statistics without raw rounds are declared (seconds, lower is better; ops 1/s, higher
    is better): `show` prints them with units and `compare` does not mark them guessed."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    for name, mean in (("nd1", 0.001793), ("nd2", 0.001793)):
        (tmp_path / f"{name}.json").write_text(json.dumps(_stats_only(mean)))
        with open_store(url) as store:
            import_pytest_benchmark(store, tmp_path / f"{name}.json", name=name)
    with open_store(url) as store:
        decl = declarations_from_doc(store.get_run("nd1").spec)
    assert {m: (d.direction, d.unit, d.declared) for m, d in decl.items()} == {
        "ops": ("higher", "1/s", True), "wall_s_mean": ("lower", "s", True),
        "wall_s_min": ("lower", "s", True), "wall_s_stddev": ("lower", "s", True)}
    res = CliRunner().invoke(app, ["show", "nd1", "--store", url])
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[3].strip(): line.split("│")[5].strip()
            for line in res.stdout.splitlines() if line.count("│") > 6}
    assert rows == {"ops": "557.7/s", "wall_s_mean": "1.793 ms", "wall_s_min": "1.19 ms",
                    "wall_s_stddev": "1.36 ms", "wall_s": "1.238 ms"}
    res = CliRunner().invoke(app, ["compare", "nd1", "nd2", "--all", "--store", url])
    assert res.exit_code == 0, res.output
    assert "557.7/s" in res.stdout and "guessed" not in res.stdout


def test_importing_a_file_twice_names_the_name_option(tmp_path: Path) -> None:
    """The second import said only "choose another name", not how: it names --name now."""
    doc = {"datetime": "2026-01-01T00:00:00+00:00", "machine_info": {}, "commit_info": {},
           "benchmarks": [{"name": "test_x", "fullname": "t.py::test_x", "params": None,
                           "stats": {"data": [1.0, 1.1]}}]}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    url = f"sqlite:///{tmp_path / 'i.db'}"
    cli = CliRunner()
    assert cli.invoke(app, ["import", str(path), "--store", url]).exit_code == 0
    twice = cli.invoke(app, ["import", str(path), "--store", url])
    assert twice.exit_code == 2
    assert twice.stderr == (f"error: {path}: a run named 'pytest-b' already exists in the "
                            "store (the file was imported before?); import it with --name "
                            "NAME to keep both\n")
    named = cli.invoke(app, ["import", str(path), "--store", url, "--name", "pytest-b"])
    assert named.exit_code == 2 and named.stderr == (
        "error: --name pytest-b: a run named 'pytest-b' already exists in the store; choose "
        "another name\n")
    assert cli.invoke(app, ["import", str(path), "--store", url, "-n", "b2"]).exit_code == 0
    with open_store(url) as store:
        assert sorted(r.name for r in store.list_runs()) == ["b2", "pytest-b"]
