"""Interleaved A/B sessions: the plan, the trees, the workers and a real session end to end.

The end-to-end tests build a small git repository with a CPU-bound user target, commit it as
BASE and change the working tree; the A/B session runs both versions in worker subprocesses
for real (marked slow).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import textwrap
from pathlib import Path

import psutil
import pytest
import typer
from typer.testing import CliRunner

from allele.bench import ab, ab_trees
from allele.bench.ab import DEFAULT_ROUNDS, MAX_AUTO_ROUNDS, ROUND_STRIDE, auto_rounds, plan_ab
from allele.bench.ab_trees import checkout, prune_stale, repo_root, tree_equals
from allele.bench.spec import SuiteSpec, loads_suite
from allele.cli.bench_analysis import register
from allele.errors import BenchmarkError, ConfigError
from allele.store import open_store

TARGET = textwrap.dedent('''
    def work(params, seed):
        n = int(params["n"]) * EXTRA.get(int(params["n"]), 1.0)
        acc = seed
        for i in range(int(n)):
            acc = (acc * 1103515245 + i) & 0xFFFFFFFF
        return {"checksum": float(seed)}

    EXTRA = {}
''')

SPEC = textwrap.dedent('''
    name: abtest
    target: abtarget:work
    seeds: 3
    repeats: 10
    matrix: {n: [300000, 400000, 500000]}
    alloc_peak: false   # the memory call is test_ab_session_calibrates_runs_setup_and_...'s;
                        # under tracemalloc this integer loop runs ~25x slower than timed
''')


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def _repo(tmp_path: Path, files: dict[str, str] | None = None, name: str = "proj") -> Path:
    """A git repository with one commit of ``files`` (default: abtarget.py and SPEC)."""
    repo = tmp_path / name
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.org")
    _git(repo, "config", "user.name", "t")
    for path, text in (files or {"abtarget.py": TARGET, "spec.yaml": SPEC}).items():
        (repo / path).write_text(text)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    return repo


def test_plan_spreads_every_call_over_the_rounds() -> None:
    suite = loads_suite("name: p\ntarget: allele.bench.targets:work\nseeds: 3\n"
                        "matrix: {n: [1, 2]}\n")
    cells = plan_ab(suite, 10)
    assert len(cells) == 2
    calls = [c for rnd in cells[0].calls for c in rnd]
    # 3 seeds x 1 repeat < 10 rounds: repeats raised to 4, every round gets a call
    assert sorted(calls) == sorted((s, r) for s in range(3) for r in range(4))
    assert all(len(rnd) >= 1 for rnd in cells[0].calls) and len(cells[0].calls) == 10
    with pytest.raises(ConfigError, match="rounds"):
        plan_ab(suite, 1)
    assert ROUND_STRIDE > 10_000  # above any spec's repeats


def test_default_rounds_give_each_pair_its_own_processes() -> None:
    """One round per call of the largest timed cell, within [10, 100]: the process effect
    averages over as many worker pairs as there are pairs of calls."""
    def suite(seeds: int, repeats: int) -> SuiteSpec:
        return loads_suite(f"name: p\ntarget: allele.bench.targets:work\nseeds: {seeds}\n"
                           f"repeats: {repeats}\nmatrix: {{n: [1, 2]}}\n")

    assert auto_rounds(suite(3, 1)) == DEFAULT_ROUNDS == 10
    assert auto_rounds(suite(4, 25)) == 100
    assert auto_rounds(suite(3, 10)) == 30
    assert auto_rounds(suite(50, 10)) == MAX_AUTO_ROUNDS == 100
    cells = plan_ab(suite(4, 25), auto_rounds(suite(4, 25)))
    assert all(len(rnd) == 1 for rnd in cells[0].calls)


def test_trees_from_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path)
    assert repo_root(repo / ".") == repo.resolve()
    assert tree_equals(repo, "HEAD")
    (repo / "abtarget.py").write_text(TARGET + "\nEXTRA[300000] = 1.1\n")
    assert not tree_equals(repo, "HEAD")
    tree = checkout(repo, "HEAD")
    try:
        assert tree.commit == _git(repo, "rev-parse", "HEAD").strip()
        assert "EXTRA[40000]" not in (tree.path / "abtarget.py").read_text()
    finally:
        tree.close()
    assert not tree.path.exists()
    assert "allele-ab" not in _git(repo, "worktree", "list")
    # a repository that takes no worktree (read-only): the files of git archive instead
    real = ab_trees._git

    def no_worktree(path: Path, *args: str, text: bool = True) -> subprocess.CompletedProcess:
        if args and args[0] == "worktree":
            return subprocess.CompletedProcess(args, 128, "", "read-only file system")
        return real(path, *args, text=text)

    monkeypatch.setattr(ab_trees, "_git", no_worktree)
    tree = checkout(repo, "HEAD")
    try:
        assert (tree.path / "spec.yaml").read_text() == SPEC
    finally:
        tree.close()
    with pytest.raises(ConfigError, match="not a commit"):
        checkout(repo, "no-such-ref")
    with pytest.raises(ConfigError, match="not inside a git repository"):
        repo_root(tmp_path)


def test_prune_removes_only_trees_whose_session_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree whose owner process ended (a killed session) goes; this process's own tree and a
    worktree that is not an A/B session's stay."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    repo = _repo(tmp_path)
    mine, orphan = checkout(repo, "HEAD"), checkout(repo, "HEAD")
    other = tmp_path / "mine"
    _git(repo, "worktree", "add", "--detach", str(other), "HEAD")
    gone = subprocess.Popen(["true"])
    gone.wait()
    (orphan.path.parent / "owner").write_text(f"{gone.pid} 1.0\n")
    try:
        assert prune_stale(repo) == [orphan.path.parent]
        assert not orphan.path.parent.exists() and mine.path.exists() and other.exists()
        listed = _git(repo, "worktree", "list")
        assert str(mine.path) in listed and str(other) in listed and str(orphan.path) not in listed
        assert prune_stale(repo) == []
    finally:
        mine.close()


def test_prune_removes_archive_trees_of_gone_sessions_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trees `git archive` made (a repository without worktrees) are found in the
    temporary directory: a killed session's goes; a running session's, one whose owner is not
    written yet, another repository's worktree and other folders stay."""
    repo = _repo(tmp_path)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = psutil.Process()

    def tree(name: str, owner: str | None, worktree: bool = False) -> Path:
        (temp / name / "tree").mkdir(parents=True)
        (temp / name / "tree" / ("x.py" if not worktree else ".git")).write_text("x")
        if owner is not None:
            (temp / name / "owner").write_text(owner)
        return temp / name

    dead = tree("allele-ab-dead", f"{gone.pid} 1.0\n")
    live = tree("allele-ab-live", f"{me.pid} {me.create_time()!r}\n")
    unwritten = tree("allele-ab-new", None)
    foreign = tree("allele-ab-other-repo", f"{gone.pid} 1.0\n", worktree=True)
    unrelated = tree("someone-else", f"{gone.pid} 1.0\n")
    assert prune_stale(repo) == [dead]
    assert not dead.exists()
    assert all(p.exists() for p in (live, unwritten, foreign, unrelated))


def test_tree_equals_compares_with_the_ref_not_only_with_head(tmp_path: Path) -> None:
    """A clean tree one commit ahead of BASE does not equal BASE; a commit that restores
    BASE's files does; an untracked file or a staged change makes the tree differ."""
    repo = _repo(tmp_path)
    (repo / "abtarget.py").write_text(TARGET + "\nEXTRA[300000] = 2.0\n")
    _git(repo, "commit", "-qam", "slower")
    assert tree_equals(repo, "HEAD") and not tree_equals(repo, "HEAD~1")
    _git(repo, "revert", "--no-edit", "HEAD")  # the same files as HEAD~2
    assert tree_equals(repo, "HEAD~2") and not tree_equals(repo, "HEAD~1")
    (repo / "notes.txt").write_text("x")
    assert not tree_equals(repo, "HEAD")
    _git(repo, "add", "notes.txt")
    assert not tree_equals(repo, "HEAD")
    with pytest.raises(ConfigError, match="not a commit"):
        tree_equals(repo, "no-such-ref")


def test_run_if_clean_runs_the_session_when_base_is_an_older_commit(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--run-if-clean --base HEAD~1` on a clean tree one commit ahead: the tree is not BASE,
    so the A/B session runs (here stopped at its start), not a plain run."""
    repo = _repo(tmp_path)
    (repo / "abtarget.py").write_text(TARGET + "\nEXTRA[300000] = 2.0\n")
    _git(repo, "commit", "-qam", "slower")
    monkeypatch.chdir(repo)
    started: list[str] = []

    def session(*args: object, base: str, **kwargs: object) -> None:
        started.append(base)
        raise ConfigError("session started")

    monkeypatch.setattr(ab, "run_ab", session)
    res = CliRunner().invoke(_app(), ["ab", "spec.yaml", "--base", "HEAD~1", "--run-if-clean",
                                      "--store", sqlite_url])
    assert started == ["HEAD~1"] and "a plain run" not in res.output
    assert res.exit_code == 2 and "session started" in res.output


def test_ab_checks_the_spec_and_refs_before_creating_a_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path)
    (repo / "bad.yaml").write_text(SPEC.replace("seeds: 3", "seeds: 0"))
    monkeypatch.chdir(repo)
    db = tmp_path / "new" / "s.db"
    (tmp_path / "afile").write_text("")  # not a directory (root writes any directory)
    for args, fragment in (
            (["bad.yaml"], "bad.yaml: seeds:"),
            (["bad.yaml", "--run-if-clean"], "bad.yaml: seeds:"),
            (["spec.yaml", "--base", "nope"], "error: --base 'nope': not a commit of"),
            (["spec.yaml", "--head", "nope"], "error: --head 'nope': not a commit of"),
            # refused only after the whole session (q), or ignored (--experiment), before
            (["spec.yaml", "--q", "2"], "Invalid value for '--q': a false-discovery rate in "
                                        "(0, 1) (0.05 is 5%), got 2.0"),
            (["spec.yaml", "--q", "0"], "got 0.0"),
            (["spec.yaml", "--experiment", "x"], "error: --experiment names an MLflow "
                                                 "experiment: give --mlflow URI too"),
            (["spec.yaml", "--report", str(tmp_path / "afile" / "r.html")],
             "is not a writable directory")):
        res = CliRunner().invoke(_app(), ["ab", *args, "--store", f"sqlite:///{db}"])
        text = " ".join(res.output.replace("│", " ").split())  # typer's usage box, unwrapped
        assert res.exit_code == 2 and fragment in text, res.output
        assert not db.parent.exists()


def test_a_taken_session_name_is_refused_before_any_tree(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path)
    monkeypatch.setattr(ab, "checkout", lambda *a: pytest.fail("checked out a tree"))
    with open_store(sqlite_url) as st:
        st.create_run("dup-head", "abtest", "x", {}, {})
        session = ab.AbSession(st, loads_suite(SPEC), base="HEAD", cwd=repo, name="dup")
        with pytest.raises(ConfigError, match=r"^--name dup: a run named 'dup-base'|"
                                              r"^--name dup: a run named 'dup-head' already "
                                              r"exists in the store; choose another session "
                                              r"name$"):
            session.run()


def test_a_worker_error_names_the_users_line_not_the_import_machinery(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from allele.bench.ab_worker import _error, resolve

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "badmod_ab.py").write_text("x = 1\nraise ValueError('at import')\n")
    errors = []
    for ref in ("nosuchmod_ab:fn", "badmod_ab:fn"):
        with pytest.raises(Exception) as info:
            resolve(ref)
        exc = info.value  # the traceback from resolve() on, as in the worker's serve loop
        errors.append(_error(exc.with_traceback(exc.__traceback__.tb_next)))
    assert errors == ["ModuleNotFoundError: No module named 'nosuchmod_ab'",
                      "ValueError: at import (badmod_ab.py:2)"]


def test_a_target_missing_in_base_is_one_clear_error(tmp_path: Path, sqlite_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path)
    (repo / "newtarget.py").write_text(TARGET)  # only in the working tree
    (repo / "spec2.yaml").write_text(SPEC.replace("abtarget:work", "newtarget:work"))
    monkeypatch.chdir(repo)
    res = CliRunner().invoke(_app(), ["ab", "spec2.yaml", "--base", "HEAD", "--store",
                                      sqlite_url])
    assert res.exit_code == 2, res.output
    assert "a target cannot be imported: newtarget:work in base (HEAD)" in res.output
    assert "ModuleNotFoundError: No module named 'newtarget'" in res.output
    assert "<frozen" not in res.output and "_bootstrap" not in res.output
    with open_store(sqlite_url) as st:
        assert st.list_runs() == []  # nothing started


@pytest.mark.slow
@pytest.mark.serial
def test_ab_flags_the_cell_with_more_work_alone(tmp_path: Path, sqlite_url: str,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """`allele bench ab SPEC --base HEAD` on a working tree with more work in one cell exits 1
    and flags that cell alone (3 cells of 60-100 ms a call, 3 seeds x 10 repeats: 30 pairs a
    cell, in the default rounds: one per pair). 60% more work here: with four other jobs on the
    two cores one pair differs by ~19% in CPU time, and a CI machine once showed ~29% (identical
    cells off by up to 12%), where 30% more work went unflagged; 60% stands 9 standard errors
    clear of that. The 10% case, with the rounds it needs, is benchmarks/aa_real.py's."""
    repo = _repo(tmp_path)
    (repo / "abtarget.py").write_text(TARGET + "\nEXTRA[400000] = 1.60\n")
    monkeypatch.chdir(repo)
    res = CliRunner().invoke(_app(), ["ab", "spec.yaml", "--base", "HEAD", "--store",
                                      sqlite_url, "--json", "--name", "s1"])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert doc["mode"] == "ab"
    flagged = [(r["params"]["n"], r["metric"]) for r in doc["rows"]
               if r["verdict"] in ("regressed", "improved")]
    assert (400000, "cpu_user_s") in flagged or (400000, "wall_s") in flagged
    assert all(n == 400000 for n, _ in flagged), flagged
    row = next(r for r in doc["rows"] if r["params"]["n"] == 400000
               and r["metric"] == "cpu_user_s")
    assert 1.35 < row["ratio"] < 1.9 and row["design"] == "ab"
    checksum = [r for r in doc["rows"] if r["metric"] == "checksum"]
    assert all(r["verdict"] == "unchanged" for r in checksum)
    with open_store(sqlite_url) as st:
        runs = {r.name: r for r in st.list_runs()}
        assert set(runs) == {"s1-base", "s1-head"}
        assert runs["s1-base"].spec["ab"]["role"] == "base"
        assert runs["s1-head"].spec["ab"]["head_ref"] == "working tree"
        head = st.load_run("s1-head")
        assert {s.repeat // ROUND_STRIDE for s in head.cells[0].samples} == set(range(30))
    # the report of HEAD compares it with its BASE half as an A/B session
    res = CliRunner().invoke(_app(), ["report", "s1-head", "--baseline", "s1-base",
                                      "--format", "markdown", "-o", "-", "--store", sqlite_url])
    assert res.exit_code == 0 and "regressed" in res.stdout


@pytest.mark.slow
def test_run_if_clean_makes_a_plain_run(tmp_path: Path, sqlite_url: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run`'s choice: an unchanged working tree gets a plain run compared with the
    previous run; the second of two such runs exits 0 (the run-level model takes the
    machine's drift)."""
    repo = _repo(tmp_path)
    (repo / "spec.yaml").write_text(SPEC.replace("repeats: 10", "repeats: 2")
                                    + "isolation: inline\n")
    _git(repo, "commit", "-qam", "inline")
    monkeypatch.chdir(repo)
    for _ in range(2):
        res = CliRunner().invoke(_app(), ["ab", "spec.yaml", "--run-if-clean", "--store",
                                          sqlite_url, "--report", str(tmp_path / "r.html")])
        assert res.exit_code == 0, res.output
        assert "a plain run" in res.output
    assert "against abtest-" in res.output and "0 regressed, 0 improved" in res.output
    with open_store(sqlite_url) as st:
        assert len(st.list_runs()) == 2 and all("ab" not in r.spec for r in st.list_runs())
    assert (tmp_path / "r.html").exists()


def test_worker_protocol_round_trip(tmp_path: Path) -> None:
    """One worker of a tree: resolves, measures, reports a failing call, stops."""
    repo = _repo(tmp_path)
    worker = ab.AbWorker(repo, repo)
    try:
        answer = worker.ask({"op": "resolve", "targets": ["abtarget:work", "abtarget:nope"]},
                            60.0)
        assert answer["abtarget:work"] is None and "no function 'nope'" in answer["abtarget:nope"]
        out = worker.ask({"op": "call", "key": "k", "target": "abtarget:work",
                          "params": {"n": 1000}, "seed": 1, "warmup": 1}, 60.0)
        assert set(out["values"]) == {"wall_s", "cpu_user_s", "cpu_sys_s", "peak_rss_mb",
                                      "checksum"}
        bad = worker.ask({"op": "call", "key": "k2", "target": "abtarget:work",
                          "params": {}, "seed": 1, "warmup": 0}, 60.0)
        assert bad["error"].startswith("KeyError")
    finally:
        worker.close()
    assert worker.proc.returncode == 0
    slow = ab.AbWorker(repo, repo)
    try:
        with pytest.raises(BenchmarkError, match="timeout"):
            slow.ask({"op": "call", "key": "k", "target": "abtarget:work",
                      "params": {"n": 10**12}, "seed": 1, "warmup": 0}, 0.5)
    finally:
        slow.close()


def test_base_halves_stay_out_of_histories_and_baselines(sqlite_url: str) -> None:
    from allele.bench.history import load_history, recent_history
    from allele.bench.select import previous_run
    from allele.store.model import CellResult, Sample

    cell = CellResult("t|{}", "t", {}, "ok", [Sample("wall_s", 1.0, 0, 0)])
    with open_store(sqlite_url) as st:
        ids = {}
        for name, doc in (("plain", {}), ("s-base", {"ab": {"session": "s", "role": "base"}}),
                          ("s-head", {"ab": {"session": "s", "role": "head"}})):
            ids[name] = st.create_run(name, "spec", "t", doc, {})
            st.save_cells(ids[name], [cell])
            st.finish_run(ids[name], "finished")
        head = st.get_run(ids["s-head"])
        assert [r.name for r in load_history(st, head).runs] == ["plain", "s-head"]
        assert len(load_history(st, head, include_ab_base=True).runs) == 3
        assert "s-base" not in [r.name for r in recent_history(st).runs]
        prev = previous_run(st, head)
        assert prev is not None and prev.name == "plain"
        # A plain run after the session is held against the plain run, not the session's HEAD
        # (a session measures peak RSS and allocations differently).
        later = st.create_run("plain-2", "spec", "t", {}, {})
        st.save_cells(later, [cell])
        st.finish_run(later, "finished")
        prev = previous_run(st, st.get_run(later))
        assert prev is not None and prev.name == "plain"
        # ... and its run-level history is made of plain runs alone
        assert [r.name for r in load_history(st, st.get_run(later)).runs] == ["plain", "plain-2"]


def test_a_session_head_leaves_a_plain_runs_memory_verdicts_as_they_were(tmp_path: Path
                                                                           ) -> None:
    """Eight plain runs of 6 cells (peak RSS ~66 MB, the last +6 %), and the same with an A/B
    session's HEAD (430 MB: its peak spans a round of calls) among them: the last comparison
    is the same, every cell regressed. With the HEAD in the history, its run-level variance
    left one cell inconclusive."""
    import numpy as np

    from allele.bench.compare import compare_runs
    from allele.bench.history import load_history
    from allele.store.model import CellResult, Sample

    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.002, (9, 6, 5))

    def cells(i: int, level: float) -> list[CellResult]:
        return [CellResult(f"t|{k}", "t", {"k": k}, "ok",
                           [Sample("peak_rss_mb", level * (1 + noise[i, k, sd]), sd, 0)
                            for sd in range(5)]) for k in range(6)]

    verdicts = []
    for with_head in (False, True):
        with open_store(f"sqlite:///{tmp_path / f'h{with_head}.db'}") as st:
            ids = []
            for i in range(8):
                if with_head and i == 5:
                    rid = st.create_run("s-head", "spec", "t",
                                        {"ab": {"session": "s", "role": "head"}}, {})
                    st.save_cells(rid, cells(8, 430.0))
                    st.finish_run(rid, "finished")
                rid = st.create_run(f"p{i}", "spec", "t", {}, {})
                st.save_cells(rid, cells(i, 66.0 * (1.06 if i == 7 else 1.0)))
                st.finish_run(rid, "finished")
                ids.append(rid)
            base, head = st.load_run(ids[-2]), st.load_run(ids[-1])
            comp = compare_runs(base, head, history=load_history(st, head.info))
            verdicts.append([(r.verdict, r.estimate.ci_low, r.estimate.ci_high) for r in comp.rows])
    assert verdicts[0] == verdicts[1]
    assert [v for v, _, _ in verdicts[1]] == ["regressed"] * 6


SETUP_TARGET = textwrap.dedent('''
    CALLS = []


    def make(params, seed):
        return list(range(int(params["n"])))


    def total(params, seed, state):
        CALLS.append(len(state))
        return {"total": float(sum(state)), "calls_so_far": float(len(CALLS))}


    def keep(params, seed):
        kept = bytearray(int(params["mb"]) * 1024 * 1024)
        return {"kept": float(len(kept))}


    def pysort(params, seed):
        import random
        rng = random.Random(seed)
        items = sorted(rng.random() for _ in range(int(params["n"])))
        return {"first": items[0]}
''')


def test_worker_runs_setup_loops_calibration_and_the_memory_call(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "settarget.py").write_text(SETUP_TARGET)
    worker = ab.AbWorker(repo, repo)
    req = {"key": "k", "target": "settarget:total", "params": {"n": 50}, "seed": 0,
           "warmup": 2, "setup": "settarget:make", "teardown": None}
    try:
        fast = worker.ask({**req, "op": "calibrate"}, 60.0)["per_call_s"]
        assert 0 < fast < 1e-3
        out = worker.ask({**req, "op": "call", "loops": 7}, 60.0)["values"]
        assert out["loops"] == 7 and out["total"] == sum(range(50))
        # 2 warm-up calls, the calibrating calls, then this sample's 7: the state reached each
        assert out["calls_so_far"] >= 2 + 1 + 7
        mem = worker.ask({"op": "memory", "key": "m", "target": "settarget:keep",
                          "params": {"mb": 40}, "seed": 0, "warmup": 0}, 60.0)["values"]
        # a 40 MiB buffer made and dropped inside the call: traced and resident
        assert 39 < mem["tracemalloc_peak_mb"] < 45 and 39 < mem["alloc_peak_mb"] < 45
        bad = worker.ask({**req, "op": "call", "setup": "settarget:nope"}, 60.0)
        assert "no function 'nope'" in bad["error"]
    finally:
        worker.close()


def test_the_workers_first_memory_call_measures_what_the_others_do(tmp_path: Path) -> None:
    """A pure-Python sort needs the same memory for every seed; the worker's first memory
    call used to add tracemalloc's own tables to it (seed 0 2-3x the others)."""
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "settarget.py").write_text(SETUP_TARGET)
    worker = ab.AbWorker(repo, repo)
    req = {"key": "s", "target": "settarget:pysort", "params": {"n": 100_000}, "warmup": 0}
    try:
        worker.ask({**req, "op": "call", "seed": 0}, 60.0)  # the round's timed call
        peaks = [worker.ask({**req, "op": "memory", "seed": seed}, 60.0)["values"]
                 ["alloc_peak_mb"] for seed in range(3)]
    finally:
        worker.close()
    assert peaks[0] > 1 and max(peaks) <= 1.05 * min(peaks), peaks


@pytest.mark.slow
def test_ab_session_calibrates_runs_setup_and_measures_memory(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "proj"
    repo.mkdir()
    for args in (("init", "-q"), ("config", "user.email", "t@example.org"),
                 ("config", "user.name", "t")):
        _git(repo, *args)
    (repo / "settarget.py").write_text(SETUP_TARGET)
    spec = repo / "spec.yaml"
    spec.write_text("name: st\nbenchmarks:\n"
                    "  - {name: summed, target: 'settarget:total', setup: 'settarget:make',"
                    " seeds: 2, matrix: {n: [100]}}\n"
                    "  - {name: kept, target: 'settarget:keep', seeds: 2, inner_loops: 1,"
                    " matrix: {mb: [8]}}\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    monkeypatch.chdir(repo)
    from allele.bench.live import RunLive
    from allele.store.live import read_events

    with open_store(sqlite_url) as st:
        live = RunLive(st)
        try:
            res = ab.run_ab(st, spec, base="HEAD", rounds=3, live=live)
        finally:
            live.close()
        assert res.status == "finished" and not res.failed
        # `allele top` and the dashboard follow the session as its HEAD run: 2 cells x 3 rounds
        events = read_events(st, 0, run_id=res.head_run)
        kinds = [e.kind for e in events]
        assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
        assert events[0].data["cells"] == 6
        assert kinds.count("cell_finished") == kinds.count("cell_stored") == 6
        assert [e.data["done"] for e in events if e.kind == "cell_stored"] == [1, 2, 3, 4, 5, 6]
        assert events[-1].data["status"] == "finished" and events[-1].data["executed"] == 6
        assert st.read_metric_points("allele_bench_cells_done")[-1].value == 6
        for run_id in (res.base_run, res.head_run):
            cells = {c.params.get("n", c.params.get("mb")): c
                     for c in st.load_run(run_id).cells}
            loops = {s.value for s in cells[100].samples if s.metric == "loops"}
            assert len(loops) == 1 and loops.pop() >= 10  # sub-microsecond calls are looped
            assert not any(s.metric == "loops" for s in cells[8].samples)  # inner_loops: 1
            alloc = [s for s in cells[8].samples if s.metric == "alloc_peak_mb"]
            assert sorted(s.seed for s in alloc) == [0, 1] and all(s.repeat == 0 for s in alloc)
            assert all(7.5 < s.value < 10 for s in alloc)


DECLARING = textwrap.dedent('''
    from allele.bench import Metric

    FACTOR = 1.0


    def life(params, seed):
        x = sum(range(20000))  # a little work to time
        return {"battery_life_s": Metric(100.0 * FACTOR * (1 + seed / 100) + x * 0,
                                         unit="s", direction="higher")}
''')


def test_ab_reads_what_targets_declare_and_names_each_halfs_commit(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A target returning ``Metric(..., direction="higher")`` whose value fell 30 %: the A/B
    session stores the declaration and calls it a regression (it guessed "lower is better"
    from the name and said improved), and the BASE half records BASE's commit (both halves
    recorded HEAD's)."""
    repo = _repo(tmp_path, {"lifetarget.py": DECLARING,
                            "spec.yaml": "name: life\ntarget: lifetarget:life\nseeds: 3\n"
                                         "alloc_peak: false\nmatrix: {k: [1, 2, 3]}\n"},
                 "decl")
    base_commit = _git(repo, "rev-parse", "HEAD").strip()
    (repo / "lifetarget.py").write_text(DECLARING.replace("FACTOR = 1.0", "FACTOR = 0.7"))
    _git(repo, "commit", "-qam", "shorter life")
    head_commit = _git(repo, "rev-parse", "HEAD").strip()
    monkeypatch.chdir(repo)
    res = CliRunner().invoke(_app(), ["ab", "spec.yaml", "--base", base_commit, "--head",
                                      head_commit, "--rounds", "3", "--store", sqlite_url,
                                      "--json", "--name", "d", "--fail-on", "never"])
    assert res.exit_code == 0, res.output
    rows = [r for r in json.loads(res.stdout)["rows"] if r["metric"] == "battery_life_s"]
    assert len(rows) == 3
    assert all(r["verdict"] == "regressed" and not r["direction_guessed"] for r in rows), rows
    with open_store(sqlite_url) as st:
        runs = {r.name: r for r in st.list_runs()}
        assert runs["d-head"].spec["metrics"]["battery_life_s"] == {"unit": "s",
                                                                    "direction": "higher"}
        assert runs["d-base"].environment["git"]["commit"] == base_commit
        assert runs["d-head"].environment["git"]["commit"] == head_commit


def test_an_interrupted_session_says_how_many_of_its_rounds_ran(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped in its 5th of 6 rounds, a session printed ``interrupted, 6 rounds``: the plan,
    read as if every round had run. It says ``interrupted after 4 of 6 rounds`` now."""
    from allele.bench import environment
    from allele.cli.bench_analysis import _ab_line

    monkeypatch.setattr(ab, "repo_root", lambda cwd: tmp_path)
    monkeypatch.setattr(environment, "fingerprint", lambda: {})
    suite = loads_suite("name: s\ntarget: tests.bench.runner_targets:echo\nseeds: 2\n"
                        "matrix: {a: [1, 2]}\n")
    ran: list[int] = []

    def one_round(rnd: int, sides: object, rng: object) -> None:
        if rnd == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the 5th round
        ran.append(rnd)

    with open_store(sqlite_url) as st:
        session = ab.AbSession(st, suite, base="HEAD", rounds=6, cwd=tmp_path, name="abint")
        monkeypatch.setattr(session, "_preflight", lambda sides: None)
        monkeypatch.setattr(session, "_round", one_round)
        tree = ab_trees.Tree(tmp_path, None, "working tree")
        res = session._run(ab._Side("base", tree), ab._Side("head", tree))
    assert (res.status, res.rounds, res.rounds_done, ran) == ("interrupted", 6, 4,
                                                              [0, 1, 2, 3])
    assert _ab_line(res).startswith("A/B session abint: interrupted after 4 of 6 rounds, ")
    done = ab.AbResult("b", "h", "abf", "finished", 6, 1.0, rounds_done=6)
    assert _ab_line(done).startswith("A/B session abf: finished, 6 rounds, 1.0 s")
