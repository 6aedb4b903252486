"""Randomized kill points (issue 16, acceptance): real runs tracked in a real MLflow server,
each hit by one fault (the runner, its process group, the store's writer, the MLflow writer, the
workers or the MLflow server killed at a random point), recovered and checked: every stored
cell once, every cell once in MLflow (one child run per cell, its samples as stored), no process
left behind within 5 s of the runner's death, no run left ``running``, no lease left held; and
``observe serve`` alerting through a webhook whose receiver is killed (or down) at a random
point: every alert delivered at least once, under one stable id, never two contents under one
id. The kinds take turns; the kill points are drawn at random (see ``tests/faults/trials.py``).

``ALLELE_FAULT_TRIALS`` (default 50) and ``ALLELE_FAULT_SEED`` (default 16) choose the trials,
``ALLELE_FAULT_JOBS`` (default 2) how many run at once (each in a driver process of its own); a
failure names each trial with its kill point, so it can be replayed alone."""

from __future__ import annotations

import json
import os
import random
import traceback
from pathlib import Path

import pytest

from tests.faults.servers import Server
from tests.faults.trials import KINDS, Trial, run_trial

pytestmark = pytest.mark.slow

TRIALS = int(os.environ.get("ALLELE_FAULT_TRIALS", "50"))
SEED = int(os.environ.get("ALLELE_FAULT_SEED", "16"))
JOBS = int(os.environ.get("ALLELE_FAULT_JOBS", "2"))


def _drive(trials: list[Trial], root: Path, server: Server, out: Path) -> None:
    """Run ``trials`` one after the other (in a driver process) and write what they found."""
    from mlflow import MlflowClient

    import allele.bench.runner
    import allele.cli.bench
    import allele.cli.tracking
    import allele.tracking.mlflow  # noqa: F401  (warm: every forked allele starts with them)

    client = MlflowClient(tracking_uri=server.url)
    results = []
    for trial in trials:
        try:
            run_trial(trial, root / f"t{trial.index}", server, client)
        except Exception:
            trial.problems.append(traceback.format_exc(limit=3))
        results.append({"index": trial.index, "problems": trial.problems,
                        "seconds": trial.seconds, "phases": trial.phases})
    out.write_text(json.dumps(results))


def test_randomized_kill_points_keep_every_invariant(mlflow_server: Server,
                                                     tmp_path: Path) -> None:
    rng = random.Random(SEED)
    trials = [Trial.draw(i, rng) for i in range(TRIALS)]
    drivers = []
    for job in range(JOBS):
        out = tmp_path / f"driver{job}.json"
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a driver process
            code = 1
            try:
                _drive(trials[job::JOBS], tmp_path, mlflow_server, out)
                code = 0
            finally:
                os._exit(code)
        drivers.append((pid, out))
    for pid, out in drivers:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0 and out.exists(), f"driver {pid} died"
        for result in json.loads(out.read_text()):
            trial = trials[result["index"]]
            trial.problems, trial.seconds = result["problems"], result["seconds"]
            trial.phases = result["phases"]
    failed = [t for t in trials if t.problems]
    kinds = {k: sum(t.kind == k for t in trials) for k in KINDS}
    print(f"\n{len(trials)} randomized kill points ({kinds}); every invariant held in "
          f"{len(trials) - len(failed)}; {sum(t.seconds for t in trials):.0f} s of trials "
          f"in {JOBS} driver(s); by phase: "
          + ", ".join(f"{p} {sum(t.phases.get(p, 0.0) for t in trials):.0f} s"
                      for p in ("run", "orphans", "resume", "sync", "check")))
    assert not failed, "\n".join(f"{t}: {'; '.join(t.problems)}" for t in failed)
