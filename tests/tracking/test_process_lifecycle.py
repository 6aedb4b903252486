"""Run lifecycle across real processes: a process killed with SIGKILL leaves its run RUNNING
until the next tracker start marks it FAILED with a note; with autolog, an uncaught Ctrl-C ends
the runs KILLED and an uncaught error ends them FAILED with the error as a tag."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from allele.tracking.mlflow import TAG_ERROR, TAG_NOTE, MlflowTracker
from tests.tracking.conftest import runs_of

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _start(code: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_crash_autolog_interrupt_and_error(mlflow_uri: str, tmp_path: Path, client: Any) -> None:
    crash = _start(f"""
        import os, signal
        from allele.core.evolution import EvolutionConfig, EvolutionEngine
        from allele.core.fitness import target_personality
        from allele.tracking.mlflow import MlflowTracker
        tr = MlflowTracker({mlflow_uri!r}, "lifecycle-crash", spool_path={str(tmp_path / 's1')!r})
        obs = tr.observer()
        engine = EvolutionEngine(EvolutionConfig(population_size=10, generations=5, seed=0),
                                 target_personality({{"empathy": 1.0}}), observer=obs)
        engine.run()
        print(obs.runs()[engine.name].run_id(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """, tmp_path)
    body = """
        from allele.core.datasets import mackey_glass
        from allele.core.kraken import KrakenLNN
        from allele.tracking import autolog
        autolog({uri!r}, {exp!r}, spool_path={spool!r})
        net = KrakenLNN(reservoir_size=20, seed=0, name="kraken-lifecycle")
        s = mackey_glass(200, seed=0)
        net.fit(s[:149], s[1:150], warmup=10)
        raise {exc}
    """
    interrupted = _start(body.format(uri=mlflow_uri, exp="lifecycle-ctrl-c",
                                     spool=str(tmp_path / "s2"), exc="KeyboardInterrupt"),
                         tmp_path)
    failed = _start(body.format(uri=mlflow_uri, exp="lifecycle-error",
                                spool=str(tmp_path / "s3"), exc="RuntimeError('reservoir on fire')"),
                    tmp_path)
    out, err = crash.communicate(timeout=300)
    assert crash.returncode == -9, err
    crashed_run = out.strip().splitlines()[-1]
    assert client.get_run(crashed_run).info.status == "RUNNING"  # stuck, as a crash leaves it
    tr = MlflowTracker(mlflow_uri, "lifecycle-crash", spool_path=tmp_path / "s4")
    tr.close()
    assert tr.reaped == [crashed_run]
    r = client.get_run(crashed_run)
    assert r.info.status == "FAILED" and "ended without closing this run" in r.data.tags[TAG_NOTE]
    assert len(client.get_metric_history(crashed_run, "best")) == 6  # what it logged survives

    _, err = interrupted.communicate(timeout=300)
    assert interrupted.returncode != 0 and "KeyboardInterrupt" in err
    (k,) = runs_of(client, "lifecycle-ctrl-c")
    assert k.info.status == "KILLED" and k.info.run_name == "kraken-lifecycle"
    assert k.data.metrics["readout_samples"] == 139.0

    _, err = failed.communicate(timeout=300)
    assert failed.returncode == 1 and "reservoir on fire" in err
    (f,) = runs_of(client, "lifecycle-error")
    assert f.info.status == "FAILED"
    assert f.data.tags[TAG_ERROR] == "RuntimeError: reservoir on fire"
