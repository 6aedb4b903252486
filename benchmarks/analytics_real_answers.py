"""Analyses that may answer "nothing here" (issue 14, parts 4 and 6, and the trend item): their
figures on realistic synthetic noise and on the real-data fixture (``benchmarks/data``).

Run: ``PYTHONPATH=src python benchmarks/analytics_real_answers.py [--quick]``; with
``--store URL`` it only writes the recorded runs into a store, for ``allele analyze``. The harness
(``benchmarks/analytics_real.py``) imports :func:`tasks` and prints the same rows.

* RCA of parameters: "no clear cause" rate on pure noise (18-cell matrix, 3 seeds, run-wide
  shifts, per-seed effects, Student-t(3) noise, a numeric parameter unique per cell) and the rate
  at which a 20% shift in one parameter level is named first; the same on the synthetic quick
  matrix (6 + 4 cells, 12 seeds: too few cells to permute, the weighted F test of
  ``allele.analytics.rca_small`` decides) with +20%, +50% and +100%; on real A/A pairs of the
  16 recorded quick-matrix runs (pairs of runs of one spec: no cause exists; seeds paired as
  ``allele analyze rca`` pairs them) and with those shifts injected into one parameter level of
  the second run. Chance baseline for "named first": 1 / the number of candidate parameters.
* RCA of metrics: a listed cause among 8 AR(0.9) metrics with no cause (false-cause rate).
* Recommendations: no recommendation on pure noise (20 trials); the optimum of the known
  surface recovered; on the recorded runs (evolution: best_fitness vs wall_s, 12 seeds each),
  each run's answer from its cheapest cell and from population 50 with rank selection.
* Alert correlation: pairwise precision and recall on the labelled mixed-noise incident set,
  beside the former behaviour (DBSCAN at eps 0.5 = single linkage, no host rule).
* Trend: reported trends on constant series with float noise, and on the recorded series.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata import Row, history_runs, history_series, print_rows

from allele.analytics.correlate import AlertCorrelator
from allele.analytics.rca import explain_parameter_change, rank_metric_causes
from allele.analytics.recommend import ConfigurationRecommender
from allele.analytics.synthetic_answers import (
    ar_metrics_trial,
    matrix_trial,
    mixed_incidents,
    pair_scores,
    quick_matrix_trial,
    seed_surface,
)
from allele.analytics.trend import theil_sen_trend

CHEAP = {"population": 50, "mutation_rate": 0.01, "crossover": "blend"}


def rca_synthetic(trials: int) -> list[Row]:
    """Pure-noise and 20%-shift trials of the 18-cell matrix."""
    quiet = named = 0
    for seed in range(trials):
        rows, before, after, _ = matrix_trial(seed)
        quiet += explain_parameter_change(rows, before, after, seed=seed).status != "cause"
        rows, before, after, cause = matrix_trial(seed, shift=0.2)
        v = explain_parameter_change(rows, before, after, seed=seed)
        named += v.status == "cause" and v.causes[0].name == cause
    ar_quiet = 0
    for seed in range(trials):
        metrics, target, at = ar_metrics_trial(seed)
        ar_quiet += not rank_metric_causes(metrics, at, target)
    note = f"{trials} trials"
    return [Row("rca", "synthetic 18 cells x 3 seeds, noise", "no clear cause", quiet / trials,
                None, note),
            Row("rca", "synthetic, +20% in one level", "named first", named / trials, 1 / 4,
                note + "; chance 1/4 candidates"),
            Row("rca", "synthetic 8 AR(0.9) metrics", "nothing listed", ar_quiet / trials, None,
                note)]


def rca_quick_synthetic(trials: int, shifts: tuple[float, ...] = (0.2, 0.5, 1.0)) -> list[Row]:
    """Pure-noise and injected-shift trials of the quick matrix (6 + 4 cells, 12 seeds): every
    candidate has too few arrangements to permute, so the weighted F test decides."""
    quiet = sum(explain_parameter_change(*quick_matrix_trial(seed)[:3], seed=seed).status
                != "cause" for seed in range(trials))
    out = [Row("rca", "synthetic quick matrix 6+4 cells x 12 seeds, noise", "no clear cause",
               quiet / trials, None, f"{trials} trials; run shift sd 0.3, cell drift sd 0.1, "
               "t(3) seed noise sd 0.4")]
    for shift in shifts:
        named = 0
        for seed in range(trials):
            rows, before, after, cause = quick_matrix_trial(seed, shift=shift)
            v = explain_parameter_change(rows, before, after, seed=seed)
            named += v.status == "cause" and v.causes[0].name == cause
        out.append(Row("rca", f"synthetic quick matrix, +{shift:.0%} in one level",
                       "named first", named / trials, 1 / 5, "chance 1/5 candidates"))
    return out


def _seed_values(doc: dict[str, Any], metric: str
                 ) -> dict[str, tuple[dict[str, Any], dict[int, float]]]:
    """Per ok cell: its parameters (with the target) and the median over repeats per seed."""
    out = {}
    for cell in doc["cells"]:
        by_seed: dict[int, list[float]] = {}
        for s in cell["samples"]:
            if s["metric"] == metric and not isinstance(s["value"], str):
                by_seed.setdefault(int(s["seed"]), []).append(float(s["value"]))
        if cell["status"] == "ok" and by_seed:
            out[cell["key"]] = ({"target": cell["target"], **cell["params"]},
                                {sd: float(statistics.median(v)) for sd, v in by_seed.items()})
    return out


def _paired_rows(a: dict[str, Any], b: dict[str, Any]
                 ) -> tuple[list[dict[str, Any]], Any, Any, int]:
    """One row per shared cell and seed (as ``allele analyze rca`` pairs them)."""
    params, before, after = [], [], []
    keys = sorted(set(a) & set(b))
    for key in keys:
        for sd in sorted(set(a[key][1]) & set(b[key][1])):
            params.append(a[key][0])
            before.append(a[key][1][sd])
            after.append(b[key][1][sd])
    return params, np.array(before), np.array(after), len(keys)


def rca_real(max_pairs: int, metric: str = "wall_s",
             shifts: tuple[float, ...] = (0.2, 0.5, 1.0)) -> list[Row]:
    """A/A pairs of the recorded runs (no cause), and the same pairs with ``shifts`` injected
    into one level of one random candidate, seeds paired."""
    runs = history_runs()
    pairs = list(itertools.combinations(range(len(runs)), 2))
    rng = np.random.default_rng(0)
    pairs = [pairs[i] for i in rng.permutation(len(pairs))[:max_pairs]]
    quiet = total = cells = 0
    named = dict.fromkeys(shifts, 0)
    n_cands: list[int] = []
    spread: list[float] = []
    for k, (i, j) in enumerate(pairs):
        params, before, after, cells = _paired_rows(_seed_values(runs[i], metric),
                                                    _seed_values(runs[j], metric))
        v = explain_parameter_change(params, before, after, seed=k)
        spread.append(float(np.std(np.log(after / before))))
        quiet += v.status != "cause"
        # sorted, not in the verdict's order: every method gets the same injected shifts
        names = sorted(c.name for c in v.candidates)
        n_cands.append(len(names))
        cause = names[int(rng.integers(0, len(names)))]
        levels = sorted({repr(p.get(cause)) for p in params if cause in p})
        bad = levels[int(rng.integers(0, len(levels)))]
        hit = np.array([cause in p and repr(p[cause]) == bad for p in params])
        for shift in shifts:
            v2 = explain_parameter_change(params, before, after * np.where(hit, 1 + shift, 1.0),
                                          seed=k)
            named[shift] += v2.status == "cause" and v2.causes[0].name == cause
        total += 1
    note = (f"{total} A/A pairs of {len(runs)} recorded runs, {cells} cells x 12 seeds paired, "
            f"{metric}")
    out = [Row("rca", f"real A/A pairs, {metric}", "no clear cause", quiet / total, None, note)]
    out += [Row("rca", f"real, {metric} +{shift:.0%} in one level", "named first",
                named[shift] / total, 1 / float(np.mean(n_cands)),
                f"chance 1/candidates; seed-level sd of log(new/base) "
                f"{statistics.median(spread):.2f} (median over pairs)") for shift in shifts]
    return out


def recommend_synthetic(trials: int) -> list[Row]:
    """Pure-noise trials and the known surface."""
    quiet = 0
    for seed in range(trials):
        p, q, c, s, _ = seed_surface(seed=seed, null=True)
        quiet += ConfigurationRecommender().fit(p, q, c, s).advise(CHEAP).status != "recommend"
    best = first = 0
    surf = max(trials // 2, 1)
    r2 = []
    for seed in range(surf):
        p, q, c, s, opt = seed_surface(seed=seed)
        rec = ConfigurationRecommender().fit(p, q, c, s)
        best += rec.best() == opt
        adv = rec.advise(CHEAP)
        first += bool(adv.recommendations) and adv.recommendations[0].params == opt
        r2.append(adv.cv_r2)
    return [Row("recommend", "synthetic pure noise", "no recommendation", quiet / trials, None,
                f"{trials} trials"),
            Row("recommend", "synthetic surface", "best() = optimum", best / surf, 1 / 72,
                f"{surf} trials; chance 1/72 cells"),
            Row("recommend", "synthetic surface", "first rec = optimum", first / surf, 1 / 72,
                f"surrogate CV R^2 median {statistics.median(r2):.2f}")]


def _evolution_rows(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[float],
                                                  list[float], list[int]]:
    params, quality, cost, seeds = [], [], [], []
    for cell in doc["cells"]:
        if cell["target"] != "evolution" or cell["status"] != "ok":
            continue
        by_seed: dict[int, dict[str, float]] = {}
        for smp in cell["samples"]:
            if smp["metric"] in ("best_fitness", "wall_s"):
                by_seed.setdefault(smp["seed"], {})[smp["metric"]] = float(smp["value"])
        for sd, m in sorted(by_seed.items()):
            if len(m) == 2:
                params.append(dict(cell["params"]))
                quality.append(m["best_fitness"])
                cost.append(m["wall_s"])
                seeds.append(sd)
    return params, quality, cost, seeds


def recommend_real() -> list[Row]:
    """Each recorded run's answer for its evolution cells (best_fitness vs wall_s): from the
    cheapest cell (population 50, tournament; in the first run the best other cell gains
    +0.16% best_fitness for +15% wall_s), and from population 50 with rank selection
    (tournament selection gains about 1% there at no extra cost)."""
    runs = history_runs()
    from_cheapest = from_rank = tournament = 0
    for doc in runs:
        rec = ConfigurationRecommender().fit(*_evolution_rows(doc))
        cheapest = min(range(len(rec.configs_)), key=lambda i: rec.cost_[i])
        from_cheapest += bool(rec.advise(rec.configs_[cheapest]).recommendations)
        start = next(c for c in rec.configs_ if c["population_size"] == 50
                     and c["selection"] == "rank")
        recs = rec.advise(start).recommendations
        from_rank += bool(recs)
        tournament += bool(recs) and recs[0].params["selection"] == "tournament"
    n = len(runs)
    note = f"{n} runs x 6 cells x 12 seeds"
    return [Row("recommend", "real runs, from the cheapest cell", "runs with a recommendation",
                from_cheapest / n, None, note + "; run 1: +0.16% for +15% cost at best"),
            Row("recommend", "real runs, from population 50 + rank", "runs with a recommendation",
                from_rank / n, None, note),
            Row("recommend", "real runs, from population 50 + rank", "top = tournament",
                tournament / n, 1 / 5, "chance 1/5 other cells")]


def correlate_rows(trials: int) -> list[Row]:
    """Pairwise precision/recall on the labelled mixed-noise set (seeds 100..)."""
    out = []
    for label, kw in (("complete linkage + host rule", {}),
                      ("former: single linkage eps 0.5, no host rule",
                       {"eps": 0.5, "linkage": "single", "identity_labels": ()})):
        ps, rs = [], []
        for seed in range(100, 100 + trials):
            alerts = mixed_incidents(seed)
            truth = {a.fingerprint: a.incident for a in alerts}
            groups = AlertCorrelator(retention_s=1e9, **kw).correlate(alerts)  # type: ignore[arg-type]
            p, r = pair_scores([g.fingerprints for g in groups], truth)
            ps.append(p)
            rs.append(r)
        out += [Row("correlate", label, "pair precision", float(np.mean(ps)), None,
                    f"{trials} labelled sets"),
                Row("correlate", label, "pair recall", float(np.mean(rs)), None, "")]
    return out


def trend_rows(trials: int) -> list[Row]:
    """Trends reported on float-noise constants and on the recorded series."""
    rng = np.random.default_rng(0)
    flat = sum(theil_sen_trend(1.0 + rng.normal(0, 1e-16, 200)).direction != "none"
               for _ in range(trials))
    ramp = theil_sen_trend(1.0 + np.arange(200) * 6.5e-18).direction != "none"
    series = history_series()
    found = {k: theil_sen_trend(s.values).direction != "none" for k, s in series.items()}
    # Where the recorded trends are: a metric a seed fixes repeats the same values in every run
    # (so seed order cannot make a trend across runs), a timing depends on the shared machine.
    timing = {k for k in series if k.endswith(("_s", ":steps_per_s"))}
    runs = {k: np.median(np.asarray(s.values)[: s.values.size // 16 * 16].reshape(16, -1),
                         axis=1) for k, s in series.items() if k in timing}
    by_run = sum(found[k] and theil_sen_trend(m).direction != "none" for k, m in runs.items())
    rest = len(series) - len(timing)
    return [Row("trend", "1.0 + N(0, 1e-16) noise", "trend reported", flat / trials, None,
                f"{trials} series"),
            Row("trend", "1.0 + 6.5e-18 per step", "trend reported", float(ramp), None, ""),
            Row("trend", "recorded series", "trend reported",
                sum(found.values()) / max(len(series), 1), None,
                f"{len(series)} series, every sample of 16 runs"),
            Row("trend", "recorded timings", "trend reported",
                sum(found[k] for k in timing) / max(len(timing), 1), None,
                f"{len(timing)} series (wall, CPU, fit times, steps per second)"),
            Row("trend", "recorded timings", "trend also in the 16 run medians",
                by_run / max(len(timing), 1), None, ""),
            Row("trend", "recorded quality and memory", "trend reported",
                sum(found[k] for k in series if k not in timing) / max(rest, 1), None,
                f"{rest} series (fitness, diversity, error, peak RSS)")]


def tasks(quick: bool = False) -> list[Row]:
    """Every row of this module (``quick``: fewer trials)."""
    n = 10 if quick else 50
    pairs = 20 if quick else 120
    return (rca_synthetic(n) + rca_quick_synthetic(n) + rca_real(pairs)
            + rca_real(pairs, "cpu_user_s")
            + recommend_synthetic(6 if quick else 20) + recommend_real()
            + correlate_rows(10 if quick else 50) + trend_rows(n))


def load_history_store(url: str) -> list[str]:
    """Write the recorded runs into the store at ``url`` (under their own names), so that
    ``allele analyze rca quick-01 quick-02`` and ``allele analyze recommend quick-01`` run on
    them; returns the run names."""
    from allele.store import open_store
    from allele.store.model import CellResult, Sample

    names = []
    with open_store(url) as st:
        for doc in history_runs():
            run = doc["run"]
            rid = st.create_run(run["name"], run["spec_name"], run["target"], run["spec"],
                                run.get("environment") or {})
            cells = [CellResult(c["key"], c["target"], c["params"], c["status"],
                                [Sample(x["metric"], float(x["value"]), int(x["seed"]),
                                        int(x["repeat"])) for x in c["samples"]
                                 if not isinstance(x["value"], str)])
                     for c in doc["cells"]]
            st.save_cells(rid, cells)
            st.finish_run(rid, "finished")
            names.append(run["name"])
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials")
    ap.add_argument("--store", help="only write the recorded runs into this store URL")
    args = ap.parse_args()
    if args.store:
        names = load_history_store(args.store)
        print(f"{len(names)} recorded runs written to {args.store}: {', '.join(names)}")
        return
    print_rows(tasks(args.quick), "answers that can say 'nothing here' (issue 14)")


if __name__ == "__main__":
    main()
