"""A matrix on a Dask cluster made of separate processes, as on several machines: ``dask
scheduler`` and two ``dask worker`` processes started by the test on loopback, and ``allele bench
run --executor dask://HOST:PORT`` (the CLI, in its own process) sending every cell there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from allele.store import open_store

from .dashboard_server import free_port

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SPEC = """
name: cluster
order: randomized
benchmarks:
  - name: echo
    target: tests.bench.runner_targets:echo
    matrix: {x: [1, 2, 3, 4, 5, 6], y: [10, 20, 30]}
    fixed: {sleep_s: 0.05}
    seeds: [1, 2]
"""


def _dask() -> str:
    exe = Path(sys.executable).with_name("dask")
    if not exe.exists():
        found = shutil.which("dask")
        if found is None:
            pytest.skip("the dask command (dask[distributed]) is not installed")
        return found
    return str(exe)


def _env() -> dict[str, str]:
    # the workers import allele and the test targets from this checkout
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    logs = [open(tmp_path / f"{n}.log", "w") for n in ("scheduler", "worker-1", "worker-2")]  # noqa: SIM115
    procs = [subprocess.Popen([_dask(), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=_env(), cwd=tmp_path,
                              stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        for log in logs[1:]:
            procs.append(subprocess.Popen(
                [_dask(), "worker", f"tcp://{address}", "--nthreads", "1", "--nworkers", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "30"],
                env=_env(), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))
        _wait_for_workers(address, 2)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def _wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(f"tcp://{address}", timeout=5) as client:  # type: ignore[no-untyped-call]
                client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                return
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise


def test_a_matrix_on_a_scheduler_and_two_worker_processes(cluster: str, tmp_path: Path
                                                           ) -> None:
    spec = tmp_path / "cluster.yaml"
    spec.write_text(SPEC)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", "from allele.cli import main; main()", "bench", "run", str(spec), "--executor",
         f"dask://{cluster}", "--store", url, "--quiet", "--no-live", "--name", "on-cluster"],
        env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open_store(url) as st:
        rec = st.load_run("on-cluster")
    assert rec.info.status == "finished"
    assert len(rec.cells) == 18
    assert sorted((c.params["x"], c.params["y"]) for c in rec.cells) == [
        (x, y) for x in range(1, 7) for y in (10, 20, 30)]
    for c in rec.cells:
        assert c.status == "ok", c.error
        assert c.values("x") == [float(c.params["x"])] * 2
        assert sorted(c.values("seed_seen")) == [1.0, 2.0]
    pids = {v for c in rec.cells for v in c.values("pid")}
    assert len(pids) == 2  # both worker processes ran cells, none ran in the CLI's process
