"""The one screen ``make run`` ends with (``bench ab --brief``): what ran, the verdict counts
and reasons, the top findings with their change and interval, and where to look next."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from rich.console import Console

from allele.bench.compare import compare_runs
from allele.cli.summary import print_summary
from allele.store.model import CellResult, RunInfo, RunRecord, RunStatus, Sample, cell_key


def _run(name: str, t: float, slow: dict[int, float], status: RunStatus = "finished",
         seed: int = 0) -> RunRecord:
    """Six cells of ``t`` (20 seeds of ``wall_s`` around 1 s with 1% noise), cell k slower by
    ``slow[k]``; cell 5 failed."""
    rng = np.random.default_rng(seed)
    cells = []
    for k in range(6):
        params = {"k": k}
        if k == 5:
            cells.append(CellResult(cell_key("t", params), "t", params, "crashed", [],
                                    error="boom"))
            continue
        values = (1.0 + 0.1 * k) * slow.get(k, 1.0) * rng.lognormal(0.0, 0.01, 20)
        cells.append(CellResult(cell_key("t", params), "t", params, "ok",
                                [Sample("wall_s", float(v), s, 0) for s, v in enumerate(values)]))
    return RunRecord(RunInfo(id=f"id-{name}", name=name, spec_name="s", target="t",
                             status=status, created_at=t), cells)


def _screen(comp: object, run: RunRecord, report: Path | None = None,
            store: str | None = None) -> list[str]:
    out = io.StringIO()
    print_summary(Console(file=out, width=200, color_system=None), comp, run,  # type: ignore[arg-type]
                  report, store)
    return out.getvalue().splitlines()


def test_the_screen_names_what_ran_the_verdicts_and_the_regression(tmp_path: Path) -> None:
    """Two runs and no history: +30% on one cell is a regression; the run-level model cannot
    tell +10% from run-to-run noise on one pair of runs, and the screen says so."""
    base = _run("before", 0.0, {})
    head = _run("after", 1.0, {1: 1.30, 3: 1.10}, seed=1)
    comp = compare_runs(base, head)
    lines = _screen(comp, head, tmp_path / "r.html")
    assert lines[0] == "ran 6 cells (t 6), 1 failed"
    assert lines[1] == "verdict against before: 1 regressed, 0 improved, 3 inconclusive, 1 unchanged"
    assert lines[2] == "  inconclusive because: 3 run-level noise"
    assert lines[3] == "top findings:"
    (found,) = [line for line in lines if line.startswith("  regressed")]
    assert found.startswith("  regressed t wall_s +2") and found.endswith('[t|{"k":1}]')
    assert "(95% CI +" in found  # the interval lies above 0, as the verdict says
    assert lines[-3] == f"report:    {(tmp_path / 'r.html').resolve()}"
    assert lines[-1] == "tables:    allele bench compare id-before id-after --all"
    # the commands it suggests reach the store the user named (pasted, they failed without it)
    lines = _screen(comp, head, None, "my runs/r.db")
    assert lines[-2:] == [
        "dashboard: allele dashboard --store 'my runs/r.db'  (then http://127.0.0.1:8050/)",
        "tables:    allele bench compare id-before id-after --all --store 'my runs/r.db'"]


def test_nothing_to_compare_and_an_interrupted_run_are_said() -> None:
    head = _run("cut", 1.0, {}, status="interrupted")
    lines = _screen(None, head)
    assert lines[0] == "ran 6 cells (t 6), 1 failed, interrupted before the end"
    assert lines[1] == "no earlier run of this spec: the next run is compared with this one"
    assert not any(line.startswith(("tables:", "report:")) for line in lines)


def test_identical_noise_gives_no_findings() -> None:
    base, head = _run("a", 0.0, {}, seed=2), _run("b", 1.0, {}, seed=3)
    lines = _screen(compare_runs(base, head), head)
    assert lines[1].startswith("verdict against a: 0 regressed, 0 improved")
    assert "top findings: none beyond the noise" in lines
