"""An A/B session holds the leases of its two runs: killed with SIGKILL, both halves show
``interrupted`` (not ``running`` for ever) and ``--resume`` refuses them; stopped with SIGTERM
(what Ctrl-C does) before both versions measured a cell, it says there is nothing to compare and
exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from allele.bench.ab_trees import prune_stale
from allele.bench.views import run_list
from allele.store import open_store
from tests.faults.cli import allele, one_line_error
from tests.faults.processes import Cli, wait_for_file

pytestmark = pytest.mark.slow

TARGET = textwrap.dedent('''
    import time
    from pathlib import Path

    def held(params, seed):
        hold = Path(params["hold"])
        if params["a"] >= params["held_from"]:
            Path(str(hold) + ".started").touch()
            while hold.exists():
                time.sleep(0.02)
        return {"x": float(params["a"])}
''')


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _session(tmp: Path, name: str, held_from: int = 1) -> tuple[Cli, Path, str]:
    """An ``allele bench ab`` of a target in a fresh repository (a comment changed in the
    working tree) whose cells from ``a = held_from`` on hold, waiting until a call holds."""
    repo = tmp / "proj"
    repo.mkdir()
    for args in (("init", "-q"), ("config", "user.email", "t@example.org"),
                 ("config", "user.name", "t")):
        _git(repo, *args)
    hold = tmp / "hold"
    hold.touch()
    (repo / "heldtarget.py").write_text(TARGET)
    (repo / "spec.yaml").write_text(f"name: h\ntarget: heldtarget:held\nseeds: 2\n"
                                    f"matrix: {{a: [1, 2]}}\nfixed: {{hold: {str(hold)!r}, "
                                    f"held_from: {held_from}}}\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    with (repo / "heldtarget.py").open("a") as f:
        f.write("# changed\n")
    url = f"sqlite:///{tmp / 'r.db'}"
    cli = Cli(["bench", "ab", "spec.yaml", "--base", "HEAD", "--rounds", "2", "--name", name,
               "--store", url], cwd=repo, out=tmp / "ab.out", env={})
    wait_for_file(Path(str(hold) + ".started"), timeout=120)
    return cli, hold, url


def _worktrees(repo: Path) -> list[Path]:
    out = subprocess.run(["git", "-C", str(repo), "worktree", "list", "--porcelain"],
                         check=True, capture_output=True, text=True).stdout
    return [Path(line.removeprefix("worktree ")).resolve() for line in out.splitlines()
            if line.startswith("worktree ")]


def _end(cli: Cli, hold: Path) -> None:
    hold.unlink(missing_ok=True)
    if cli.returncode is None:
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait(timeout=30)
    deadline = time.monotonic() + 30  # the session's workers (its process group) end too
    while time.monotonic() < deadline:
        try:
            os.killpg(cli.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(cli.pid, signal.SIGKILL)


def test_a_killed_session_shows_interrupted_and_is_not_resumed(tmp_path: Path) -> None:
    cli, hold, url = _session(tmp_path, "abk")
    try:
        with open_store(url) as st:  # alive: both halves are running
            assert sorted((r["name"], r["status"]) for r in run_list(st)["runs"]) == [
                ("abk-base", "running"), ("abk-head", "running")]
        os.kill(cli.pid, signal.SIGKILL)
        assert cli.wait(timeout=30) == -9
    finally:
        _end(cli, hold)
    with open_store(url) as st:
        assert st.get_run("abk-head").status == "running"  # as the killed session left it
        assert sorted((r["name"], r["status"]) for r in run_list(st)["runs"]) == [
            ("abk-base", "interrupted"), ("abk-head", "interrupted")]
    code, out, _ = allele("bench", "list", "--store", url)
    rows = [line for line in out.splitlines() if "abk-" in line]
    assert code == 0 and len(rows) == 2
    assert all("interrupted" in r and "running" not in r for r in rows)
    code, out, err = allele("bench", "run", "--resume", "abk-head", "--store", url)
    assert one_line_error(code, out, err), err
    assert "head half of A/B session 'abk'" in err and "allele bench ab" in err
    # the killed session's checkout of BASE is still there; the next session removes it
    repo = (tmp_path / "proj").resolve()
    left = [p for p in _worktrees(repo) if p != repo]
    assert len(left) == 1 and left[0].exists()
    assert [p.resolve() for p in prune_stale(repo)] == [left[0].parent]
    assert _worktrees(repo) == [repo] and not left[0].parent.exists()


def test_sigterm_before_any_pair_exits_130_with_both_runs_interrupted(tmp_path: Path) -> None:
    cli, hold, url = _session(tmp_path, "abt")
    try:
        os.kill(cli.pid, signal.SIGTERM)
        assert cli.wait(timeout=60) == 130, cli.output[-2000:]
    finally:
        _end(cli, hold)
    assert "nothing to compare" in cli.output and "Traceback" not in cli.output
    assert "A/B session abt: interrupted" in cli.output
    with open_store(url) as st:
        assert {st.get_run(n).status for n in ("abt-base", "abt-head")} == {"interrupted"}
        assert st.lease(st.get_run("abt-head").id) is None  # given up on the way out


def test_sigterm_after_some_pairs_prints_their_verdicts_and_exits_130(tmp_path: Path) -> None:
    cli, hold, url = _session(tmp_path, "abp", held_from=2)
    try:
        os.kill(cli.pid, signal.SIGTERM)
        assert cli.wait(timeout=60) == 130, cli.output[-2000:]
    finally:
        _end(cli, hold)
    out = cli.output
    assert "A/B session abp: interrupted" in out and "Traceback" not in out
    assert "interrupted: the verdicts below cover only the calls that ran" in out
    # cell a=1 was only calibrated when the session stopped: no sample to compare, said so
    assert "no metric measured in both runs, nothing compared" in out
    assert "unchanged" not in out
    with open_store(url) as st:
        assert {st.get_run(n).status for n in ("abp-base", "abp-head")} == {"interrupted"}
