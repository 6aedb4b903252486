"""A runner killed outright takes its whole process tree down (issue 16, item 8): workers stuck
in cells that ignore their timeout signal or hold the GIL in C, the forkserver and the resource
tracker are all gone within 5 s of the runner's ``kill -9``."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.faults.processes import Cli, left_behind, processes_marked, wait_for_file

pytestmark = pytest.mark.slow


def test_kill_9_of_the_runner_leaves_no_process_behind(tmp_path: Path) -> None:
    spec = tmp_path / "hang.yaml"
    spec.write_text(f"""
name: hang
target: tests.faults.targets:hangs
seeds: 1
timeout_s: 600
matrix: {{how: [sigalrm_blocked, gil]}}
fixed: {{dir: {str(tmp_path)!r}}}
""")
    mark = f"orphans-{tmp_path}"
    runner = Cli(["bench", "run", str(spec), "--store", f"sqlite:///{tmp_path / 'r.db'}",
                  "-q", "--workers", "2"], cwd=tmp_path, out=tmp_path / "run.out",
                 env={"ALLELE_FAULT_MARK": mark})
    for how in ("sigalrm_blocked", "gil"):
        wait_for_file(tmp_path / f"{how}.started", timeout=120)
    tree = processes_marked(mark)
    names = " ".join(" ".join(p.cmdline()) for p in tree)
    # the resource tracker, the forkserver and two workers (the runner, forked from this test
    # process, is watched through its pid)
    assert len(tree) == 4, names
    assert "forkserver" in names and "resource_tracker" in names
    os.kill(runner.pid, signal.SIGKILL)  # the runner alone, as the OOM killer would
    assert runner.wait(timeout=30) == -9
    assert left_behind(mark, within_s=5.0) == []
