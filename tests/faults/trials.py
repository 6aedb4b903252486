"""One fault-injection trial: a real matrix run into a SQLite store, tracked in a real
``mlflow server``, hit by one fault at a deterministic point, recovered the way a user would
(restart what died, ``bench run --resume latest``, ``tracking sync``), then checked against every
invariant.

Faults (each at the k-th occurrence of its point, see :mod:`allele.failpoints`):

``runner``        SIGKILL of the runner right after its k-th committed cell
``group``         SIGKILL of the runner's process group (runner, forkserver, workers)
``writer``        SIGKILL of the runner inside the store's k-th write transaction, uncommitted
``tracker``       SIGKILL of the runner right after its MLflow writer delivered k records
``worker``        SIGKILL of each worker at its k-th cell (the run goes on: crashed cells)
``server``        the MLflow server killed at the k-th committed cell, restarted afterwards
``server+runner`` both: the server killed at the k-th commit, the runner inside a later write
``receiver``      (``observe serve`` with a webhook) the webhook receiver killed right after it
                  recorded the k-th notification, before answering, restarted a moment later
``receiver-down`` the webhook receiver down when the alerts fire, started a moment later

The MLflow server of a trial is a real ``mlflow server`` (shared by the trials) seen through a
TCP proxy of the trial's own: "killing the server" kills the proxy with SIGKILL (connections
reset, new ones refused, what the tracker sees of a server killed with ``kill -9``), and the
restart starts it again on the same port, in a fraction of a second instead of the server's
start-up time. ``tests/faults/test_mlflow_crash.py`` kills and restarts the server itself.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults.invariants import mlflow_problems, store_problems, webhook_problems
from tests.faults.processes import Cli, left_behind, wait_for_file
from tests.faults.servers import Proxy, Receiver, Server, free_port

KINDS = ("runner", "group", "writer", "tracker", "worker", "server", "server+runner",
         "receiver", "receiver-down")
ALERTS = 5
"""Rules of a webhook trial: each fires once, at the first evaluation, and stays firing."""
CELLS = 6

SPEC = """
name: faults
order: randomized
order_seed: {seed}
defaults: {{seeds: 2, metrics: [v]}}
benchmarks:
  - name: tiny
    target: tests.faults.targets:tiny
    rounds: {rounds}
    matrix: {{a: [1, 2, 3], b: [x, y]}}
"""


@dataclass
class Trial:
    """One randomized kill point."""

    index: int
    kind: str
    k: int
    executor: str
    rounds: int
    seed: int
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each phase (run, orphans, resume, sync, check)."""

    def clock(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - since
        return now

    @classmethod
    def draw(cls, index: int, rng: random.Random) -> Trial:
        kind = KINDS[index % len(KINDS)]  # every kind equally often, the points at random
        k = {"tracker": rng.randint(1, 20), "worker": rng.randint(1, 3),
             "receiver": rng.randint(1, ALERTS), "receiver-down": rng.randint(0, 12)}.get(
            kind, rng.randint(1, CELLS - 1))
        executor = "inline" if kind not in ("group", "worker") and rng.random() < 0.5 \
            else "local"
        return cls(index, kind, k, executor, rng.choice([1, 2]), rng.randrange(1000))

    def __str__(self) -> str:
        return (f"trial {self.index}: {self.kind} k={self.k} {self.executor} "
                f"rounds={self.rounds}")


def _failpoints(trial: Trial, pause: Path) -> str:
    k = trial.k
    return {
        "runner": f"runner.cell_committed={k}:kill",
        "group": f"runner.cell_committed={k}:killpg",
        "writer": f"store.save_cells={k}:kill",
        "tracker": f"tracker.delivered={k}:kill",
        "worker": f"worker.task={k}:kill",
        "server": f"runner.cell_committed={k}:pause={pause}",
        "server+runner": (f"runner.cell_committed={k}:pause={pause},"
                          f"store.save_cells={min(k + 2, CELLS)}:kill"),
    }[trial.kind]


def run_trial(trial: Trial, root: Path, server: Server, client: Any) -> Trial:
    """Run one trial in ``root``; its problems (broken invariants) end up in the trial."""
    t0 = time.perf_counter()
    root.mkdir(parents=True)
    if trial.kind.startswith("receiver"):
        return _webhook_trial(trial, root, t0)
    spec = root / "spec.yaml"
    spec.write_text(SPEC.format(seed=trial.seed, rounds=trial.rounds))
    url = f"sqlite:///{root / 'results.db'}"
    experiment = f"trial-{trial.index}-{root.name}"
    mark = f"{root}"
    env = {"ALLELE_DATA_DIR": str(root / "data"), "ALLELE_FAULT_MARK": mark}
    mlflow = Proxy(root, free_port(), server.port)
    mlflow.start()
    args = ["--store", url, "--mlflow", mlflow.url, "--experiment", experiment, "-q",
            "--executor", trial.executor, "--workers", "2"]
    pause = root / "paused"
    first = Cli(["bench", "run", str(spec), *args], cwd=root, out=root / "run.out",
                env={**env, "ALLELE_FAILPOINTS": _failpoints(trial, pause)})
    if trial.kind.startswith("server"):
        wait_for_file(pause, timeout=120)
        mlflow.kill()
        pause.unlink()
    code = first.wait(timeout=180)
    t = trial.clock("run", t0)
    # the runner is gone (killed or done): nothing it started may outlive it by 5 s
    trial.problems += [f"left behind: {p}" for p in left_behind(mark, within_s=5.0)]
    t = trial.clock("orphans", t)
    if trial.kind.startswith("server"):
        mlflow.start()
    if code != 0 or trial.kind == "worker":
        resumed = Cli(["bench", "run", "--resume", "latest", *args], cwd=root,
                      out=root / "resume.out", env=env)
        if resumed.wait(timeout=180) != 0:
            trial.problems.append(f"resume failed: {resumed.output[-500:]}")
    t = trial.clock("resume", t)
    sync = Cli(["tracking", "sync"], cwd=root, out=root / "sync.out", env=env)
    if sync.wait(timeout=120) != 0:
        trial.problems.append(f"sync failed: {sync.output[-500:]}")
    t = trial.clock("sync", t)
    rec, problems = store_problems(url, planned=CELLS)
    trial.problems += problems
    if rec is not None:
        trial.problems += mlflow_problems(client, experiment, rec)
    mlflow.kill()
    trial.clock("check", t)
    trial.seconds = time.perf_counter() - t0
    return trial


RULES = "rules:\n" + "".join(
    f"  - {{name: Always{i}, metric: allele_process_rss_bytes, op: '>', threshold: {i}}}\n"
    for i in range(ALERTS))


def _webhook_trial(trial: Trial, root: Path, t0: float) -> Trial:
    """``observe serve`` with a webhook whose receiver dies (or is down) at the trial's point:
    every alert must arrive at least once, under one stable id, never with two contents."""
    rules = root / "rules.yaml"
    rules.write_text(RULES)
    receiver = Receiver(root, free_port())
    if trial.kind == "receiver":
        receiver.start(die_after=trial.k)
    env = {"ALLELE_OBSERVE__SAMPLE_INTERVAL_S": "0.1", "ALLELE_FAULT_MARK": str(root)}
    serve = Cli(["observe", "serve", "--port", "0", "--interval", "0.1", "--rules", str(rules),
                 "--webhook", receiver.url], cwd=root, out=root / "serve.out", env=env)
    if trial.kind == "receiver":
        deadline = time.monotonic() + 60
        while receiver.proc is not None and receiver.proc.poll() is None:
            if time.monotonic() > deadline:  # the kill point was never reached
                trial.problems.append(f"the receiver never got notification {trial.k}")
                break
            time.sleep(0.02)
    time.sleep(trial.k * 0.1 if trial.kind == "receiver-down" else 0.2)  # a moment down
    receiver.start()
    t = trial.clock("run", t0)
    deadline = time.monotonic() + 60  # the notifier's backoff catches up with the receiver
    while len({r["key"] for r in receiver.received()}) < ALERTS and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(serve.pid, signal.SIGTERM)
    if serve.wait(timeout=60) != 0:
        trial.problems.append(f"serve did not stop cleanly: {serve.output[-500:]}")
    receiver.kill()
    trial.problems += [f"left behind: {p}" for p in left_behind(str(root), within_s=5.0)]
    t = trial.clock("orphans", t)
    trial.problems += webhook_problems(receiver.received(), serve.output)
    trial.clock("check", t)
    trial.seconds = time.perf_counter() - t0
    return trial
