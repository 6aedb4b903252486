"""The analytics on real data, beside a chance baseline: ``--task anomaly`` (and the tasks that
other modules add, see TASK_MODULES).

Real data only (``benchmarks/data``, see :mod:`realdata`): the series statsmodels ships and the
benchmark histories recorded on this machine. None has labelled anomalies, so each series gets
labelled ones injected (:func:`realdata.inject`: spikes, level shifts, variance changes, a
drift, a regression that persists from a run on; sized in the series' own robust noise scale; seeded) and the detector is scored with the
event rule of :mod:`allele.analytics.synthetic` (3-point tolerance). Per series:

* F1, recall, precision over every injected kind and seed;
* false alarms per 1,000 scored points (flagged runs that touch no injected window);
* the chance baseline beside each: the same flags circularly shifted (``--shifts`` random
  offsets within the scored part), which keeps how many flags there are and how they cluster
  but not where they are;
* flags per 1,000 points on the series as recorded (no injection: real series may have real
  events, such as the Nile's 1898 change).

    python benchmarks/analytics_real.py [--task anomaly] [--seeds 3] [--methods robust]

A task added by another module: ``benchmarks/analytics_real_<task>.py`` with
``run(args) -> list[realdata.Row]`` or ``tasks(quick) -> list[realdata.Row]`` (and optionally
``add_arguments(parser)``), registered by name in TASK_MODULES; it is imported only when its task
runs (``--task answers`` runs RCA, recommendations, alert correlation and trend).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata import (
    INJECT_KINDS,
    RealSeries,
    Row,
    history_series,
    inject,
    print_rows,
    public_series,
)

from allele.analytics.anomaly import detect_series
from allele.analytics.synthetic import EventScore, evaluate_events, false_runs

TASK_MODULES: dict[str, str] = {
    "forecast": "analytics_real_forecast",
    "answers": "analytics_real_answers",
    "rca": "analytics_real_rca",
    "recommend": "analytics_real_recommend",
    "alerts": "analytics_real_alerts",
}
"""Tasks whose code lives in their own module (imported by name when the task runs)."""


def learn_length(n: int) -> int:
    """The learning period the harness gives a series of ``n`` points: the detector's default
    (150), or half a short series (the Nile has 100 points, a history 192)."""
    return min(150, n // 2)


def _shifted(flags: np.ndarray, lo: int, offset: int) -> np.ndarray:
    out = flags.copy()
    out[lo:] = np.roll(flags[lo:], offset)
    return out


def score_anomaly_series(s: RealSeries, method: str, seeds: int, shifts: int,
                         rng: np.random.Generator, by_run: Counter[int] | None = None
                         ) -> list[Row]:
    """F1, false alarms per 1,000 and their chance baselines for one real series; ``by_run``
    (a recorded history) counts its false runs by the recorded run they start in."""
    n = s.values.size
    learn = learn_length(n)
    total = EventScore(0, 0, 0, 0)
    chance = EventScore(0, 0, 0, 0)
    scored = 0
    for kind in INJECT_KINDS:
        for seed in range(seeds):
            inj = inject(s, kind, seed, learn=learn, align=s.run_length or 1)
            flags = detect_series(inj.values, method=method, learn=learn).flags  # type: ignore[arg-type]
            total = total + evaluate_events(flags, inj.events)
            if by_run is not None and s.run_length:
                by_run.update(a // s.run_length + 1 for a, _ in false_runs(flags, inj.events))
            scored += n - learn
            for off in rng.integers(1, n - learn, size=shifts):
                chance = chance + evaluate_events(_shifted(flags, learn, int(off)), inj.events)
    fa = 1000.0 * (total.runs - total.true_runs) / scored
    fa_chance = 1000.0 * (chance.runs - chance.true_runs) / (scored * shifts)
    raw = detect_series(s.values, method=method, learn=learn).flags  # type: ignore[arg-type]
    raw_runs = evaluate_events(raw, []).runs
    name = s.name
    return [
        Row("anomaly", name, "F1", total.f1, chance.f1,
            f"{total.detected}/{total.events} events, {total.true_runs}/{total.runs} runs"),
        Row("anomaly", name, "recall", total.recall, chance.recall),
        Row("anomaly", name, "false alarms/1000", fa, fa_chance),
        Row("anomaly", name, "flags/1000 as recorded", 1000.0 * raw_runs / (n - learn), None,
            f"n={n}, learning {learn}"),
    ]


def run_anomaly(args: argparse.Namespace) -> list[Row]:
    """The anomaly task over the public series and the recorded histories."""
    rows: list[Row] = []
    groups = {"public": public_series(), "history": history_series(min_points=100)}
    for method in args.methods:
        for group, series in groups.items():
            t0 = time.perf_counter()
            rng = np.random.default_rng(args.seed)
            part: list[Row] = []
            width = max(len(name) for name in series)
            print(f"anomaly / {group} series / method {method}: {args.seeds} injections per kind "
                  f"({', '.join(INJECT_KINDS)}), chance = flags circularly shifted")
            print(f"  {'series':{width}s}  {'n':>5s}  {'F1':>5s} {'chance':>6s}  {'recall':>6s} "
                  f"{'chance':>6s}  {'FA/1000':>7s} {'chance':>6s}  {'raw/1000':>8s}")
            by_run: Counter[int] = Counter()
            for s in series.values():
                got = score_anomaly_series(s, method, args.seeds, args.shifts, rng,
                                           by_run if group == "history" else None)
                f1, rec, fa, raw = got
                chance = (f1.chance or 0.0, rec.chance or 0.0, fa.chance or 0.0)
                print(f"  {s.name:{width}s}  {s.values.size:5d}  {f1.value:5.2f} {chance[0]:6.2f}"
                      f"  {rec.value:6.2f} {chance[1]:6.2f}  {fa.value:7.2f} {chance[2]:6.2f}"
                      f"  {raw.value:8.2f}")
                part += got
            print(f"  ({time.perf_counter() - t0:.1f} s)")
            rows += part
            if group == "history":
                _by_metric(part)
                _by_recorded_run(by_run, series)
            _summary(part, f"{group}/{method}")
    return rows


def _by_metric(rows: list[Row]) -> None:
    """Means over the cells of each recorded metric (the part after the last ':')."""
    acc: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in rows:
        if r.chance is not None:
            metric = r.series.rsplit(":", 1)[-1]
            acc.setdefault(metric, {}).setdefault(r.measure, []).append((r.value, r.chance))
    print(f"  by metric (means over cells)  {'cells':>5s}  {'F1':>5s} {'chance':>6s}  "
          f"{'FA/1000':>7s} {'chance':>6s}")
    for metric, m in sorted(acc.items()):
        f1 = np.mean(m["F1"], axis=0)
        fa = np.mean(m["false alarms/1000"], axis=0)
        print(f"  {metric:28s}  {len(m['F1']):5d}  {f1[0]:5.2f} {f1[1]:6.2f}  {fa[0]:7.2f} "
              f"{fa[1]:6.2f}")


def _by_recorded_run(by_run: Counter[int], series: dict[str, RealSeries]) -> None:
    """Where the histories' false runs start, by recorded run: a run-wide change of the
    machine (every cell slower in one run) shows as a cluster no injection explains."""
    first = next(iter(series.values()))
    if not first.run_length:
        return
    start = learn_length(first.values.size) // first.run_length + 1
    end = first.values.size // first.run_length
    total = sum(by_run.values())
    print(f"  false runs by the recorded run they start in (runs {start}-{end} are scored, "
          f"1/{end - start + 1} of the points each): "
          + ", ".join(f"run {r}: {by_run.get(r, 0)}" for r in range(start, end + 1))
          + f"; {total} in all")


def _summary(rows: list[Row], label: str) -> None:
    def mean(measure: str, chance: bool) -> float:
        vals = [(r.chance if chance else r.value) for r in rows if r.measure == measure]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        return float(np.mean(vals)) if vals else math.nan

    f1s = [r for r in rows if r.measure == "F1"]
    above = sum(1 for r in f1s if r.chance is not None and r.value > r.chance + 0.2)
    print(f"  summary {label}: mean F1 {mean('F1', False):.3f} (chance {mean('F1', True):.3f}); "
          f"mean false alarms/1000 {mean('false alarms/1000', False):.2f} "
          f"(chance {mean('false alarms/1000', True):.2f}); "
          f"F1 above chance + 0.2 on {above} of {len(f1s)} series\n")


TASKS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {"anomaly": run_anomaly}


def _task(name: str) -> Callable[[argparse.Namespace], list[Row]]:
    if name in TASKS:
        return TASKS[name]
    module = importlib.import_module(TASK_MODULES[name])
    if hasattr(module, "run"):
        run: Callable[[argparse.Namespace], list[Row]] = module.run
        return run

    def rows_of(args: argparse.Namespace) -> list[Row]:  # a module exposing tasks(quick)
        rows: list[Row] = module.tasks(quick=args.quick)
        print_rows(rows, f"{name} ({TASK_MODULES[name]}.py)")
        return rows

    return rows_of


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Analytics on real data beside chance baselines.")
    ap.add_argument("--task", choices=[*TASKS, *TASK_MODULES], action="append",
                    help="task to run (repeatable; default: anomaly)")
    ap.add_argument("--seeds", type=int, default=3, help="injections per kind and series")
    ap.add_argument("--shifts", type=int, default=20, help="circular shifts for the chance "
                    "baseline")
    ap.add_argument("--methods", default="robust",
                    help="comma-separated anomaly methods (robust, ensemble, iforest, ocsvm)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="fewer trials (tasks that have them)")
    for mod in TASK_MODULES.values():
        try:
            extra = importlib.import_module(mod)
        except ModuleNotFoundError:
            continue
        if hasattr(extra, "add_arguments"):
            extra.add_arguments(ap)
    args = ap.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print("real data: benchmarks/data (statsmodels series; histories recorded on this machine "
          "while other work shared it)\n")
    for name in args.task or ["anomaly"]:
        _task(name)(args)


if __name__ == "__main__":
    main()
