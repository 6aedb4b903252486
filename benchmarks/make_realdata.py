"""Record the real-data fixture of ``benchmarks/analytics_real.py`` (``benchmarks/data/``).

Two parts, both copied or recorded once and committed (the harness never downloads anything):

1. ``public/``: real public series that installed statsmodels ships, copied as CSV (a ``value``
   column, plus ``time``): co2 (weekly Mauna Loa CO2, 1958-2001), elec_equip (monthly
   electrical-equipment orders index, 1996-2012), sunspots (yearly, 1700-2008), nile (yearly
   flow at Aswan, 1871-1970, a known change point in 1898), macrodata (quarterly US realgdp,
   unemp, infl, 1959-2009) and ``mstl_elec_vic.csv`` from statsmodels' own test data: 3,600
   hourly electricity-demand points of Victoria, Australia (2012), with daily (24) and weekly
   (168) seasons.
2. ``histories/``: ``--runs`` (default 16) runs of the quick preset of
   ``benchmarks/seed-matrix.yaml`` recorded on this machine (the agent cells left out: each of
   its replies costs seconds of the local LLM), each exported with ``allele bench export`` in
   the project's JSON export format (:mod:`allele.bench.export`), which does not change when the
   store's schema does.

    python benchmarks/make_realdata.py [--runs 16] [--skip-public] [--skip-histories]

The runs go to a throw-away store in a temporary directory; the machine's other work is part of
the noise they record (say so when quoting figures).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SPEC = HERE / "seed-matrix.yaml"


def _write_csv(path: Path, times: list[str], values: np.ndarray) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["time", "value"])
        for t, v in zip(times, values, strict=True):
            w.writerow([t, "" if not np.isfinite(v) else repr(float(v))])


def copy_public(out: Path) -> None:
    """Copy the statsmodels series into ``out`` (one CSV each)."""
    import statsmodels
    import statsmodels.api as sm
    from statsmodels.datasets import elec_equip

    out.mkdir(parents=True, exist_ok=True)
    co2 = sm.datasets.co2.load_pandas().data["co2"]
    _write_csv(out / "co2.csv", [str(t.date()) for t in co2.index], co2.to_numpy())
    elec = elec_equip.load_pandas().data.iloc[:, 0]
    _write_csv(out / "elec_equip.csv", [str(t.date()) for t in elec.index], elec.to_numpy())
    sun = sm.datasets.sunspots.load_pandas().data
    _write_csv(out / "sunspots.csv", [str(int(y)) for y in sun["YEAR"]],
               sun["SUNACTIVITY"].to_numpy())
    nile = sm.datasets.nile.load_pandas().data
    _write_csv(out / "nile.csv", [str(int(y)) for y in nile["year"]], nile["volume"].to_numpy())
    macro = sm.datasets.macrodata.load_pandas().data
    quarters = [f"{int(y)}Q{int(q)}" for y, q in zip(macro["year"], macro["quarter"],
                                                     strict=True)]
    for col in ("realgdp", "unemp", "infl"):
        _write_csv(out / f"macro_{col}.csv", quarters, macro[col].to_numpy())
    src = (Path(statsmodels.__file__).parent / "tsa" / "stl" / "tests" / "results"
           / "mstl_elec_vic.csv")
    rows = list(csv.reader(src.read_text(encoding="utf-8").splitlines()))
    header, body = rows[0], rows[1:]
    col = header.index("y") if "y" in header else 1
    tcol = header.index("ds") if "ds" in header else 0
    _write_csv(out / "elec_vic_hourly.csv", [r[tcol] for r in body],
               np.array([float(r[col]) for r in body]))
    (out / "SOURCE.txt").write_text(
        f"Copied from statsmodels {statsmodels.__version__} (BSD-3-Clause) by "
        "benchmarks/make_realdata.py: datasets co2, elec_equip, sunspots, nile, macrodata "
        "(realgdp, unemp, infl) and tsa/stl/tests/results/mstl_elec_vic.csv.\n",
        encoding="utf-8")


def record_histories(out: Path, runs: int) -> None:
    """Run the quick matrix ``runs`` times into a temporary store and export every run."""
    out.mkdir(parents=True, exist_ok=True)
    allele = [sys.executable, "-c", "from allele.cli import main; main()"]
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{tmp}/results.db"
        for i in range(runs):
            name = f"quick-{i + 1:02d}"
            subprocess.run([*allele, "bench", "run", str(SPEC), "--preset", "quick", "--store",
                            store, "--name", name, "--quiet", "--no-live",
                            "-f", "benchmark=evolution", "-f", "benchmark=kraken"],
                           check=True, cwd=tmp)
            target = out / f"{name}.json"
            subprocess.run([*allele, "bench", "export", name, "--store", store,
                            "--output", str(target)], check=True, cwd=tmp)
            _compact(target)
            print(f"recorded {target.name}", flush=True)


def _compact(path: Path) -> None:
    """The same JSON document without indentation and without per-cell profiles (size)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    for cell in doc["cells"]:
        cell["profile"] = None
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--skip-public", action="store_true")
    ap.add_argument("--skip-histories", action="store_true")
    args = ap.parse_args()
    if not args.skip_public:
        copy_public(DATA / "public")
    if not args.skip_histories:
        record_histories(DATA / "histories", args.runs)


if __name__ == "__main__":
    main()
