"""Stores that cannot be written, do not exist, are damaged or are being run by someone else
(issue 16, items 10 and 12): every read command works on a read-only store, a read command on a
missing store creates nothing, a damaged value is one line, and two resumes of one run never
run the same cells twice."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.errors import StoreError
from allele.store import ResultStore, open_store
from allele.store import schema as S
from allele.store.model import CellResult, Sample
from tests.faults.cli import allele, one_line_error
from tests.faults.processes import Cli, wait_for_file

T = "tests.faults.targets"
ENV = {"test": True}


def _cell(i: int, status: str = "ok") -> CellResult:
    now = time.time()
    return CellResult(f"t|{{\"i\":{i}}}", "t", {"i": i}, status,  # type: ignore[arg-type]
                      [Sample("wall_s", 0.1 * (i + 1) + 0.01 * s, s, 0) for s in range(5)],
                      None if status == "ok" else "boom", now, now)


def _old_store(path: Path) -> str:
    """A store as an older Allele left it: schema version 2, two finished runs."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    with engine.begin() as conn:
        S.schema_version.create(conn)
        for migration in S.MIGRATIONS[:2]:
            migration(conn)
        conn.execute(S.schema_version.insert().values(version=2))
    engine.dispose()
    # write its runs through today's code but keep the version at 2 (no new tables used)
    with open_store(url) as st:
        for name in ("a", "b"):
            run_id = st.create_run(name, "spec", "t", {}, {"cpu": {"model": "x"}})
            st.save_cells(run_id, [_cell(i) for i in range(3)])
            st.finish_run(run_id, "finished")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE run_leases"))
        conn.execute(text("DROP TABLE cell_deliveries"))
        conn.execute(S.schema_version.update().values(version=2))
    engine.dispose()
    return url


READS = [("bench", "list"), ("bench", "show", "b"), ("bench", "export", "b"),
         ("bench", "compare", "a", "b", "--fail-on", "never"), ("bench", "regressions"),
         ("bench", "report", "b", "--format", "markdown", "-o", "-")]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a[:2]) for a in READS])
def test_every_read_command_serves_a_read_only_store_of_an_older_schema(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    db = tmp_path / "old.db"
    _old_store(db)
    before = db.read_bytes()
    ro = f"sqlite:///file:{db}?mode=ro&uri=true"
    # regressions reads both runs and answers that two cannot hold a change point
    ok = ((2, "too short for change points: 2 runs") if args[1] == "regressions" else (0, ""))
    code, out, err = allele(*args, "--store", ro)
    assert code == ok[0] and ok[1] in err, err
    assert "Traceback" not in out + err
    code, out, err = allele(*args, "--store", f"sqlite:///{db}")  # a plain URL: read-only too
    assert code == ok[0] and ok[1] in err, err
    assert db.read_bytes() == before  # not migrated, not written
    with open_store(f"sqlite:///{db}", read_only=True) as st:
        assert st.schema_version() == 2


def test_a_write_to_a_read_only_store_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _old_store(db)
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ntarget: {T}:tiny\nisolation: inline\nseeds: 1\n")
    code, out, err = allele("bench", "run", str(spec), "-q", "--store",
                            f"sqlite:///file:{db}?mode=ro&uri=true")
    assert one_line_error(code, out, err) and "readonly" in err.replace("-", "")


MISSING_READS = [("bench", "list"), ("bench", "show", "latest"), ("bench", "regressions"),
                 ("bench", "export", "latest"), ("bench", "compare", "a", "b"),
                 ("bench", "report", "latest", "-o", "-"), ("bench", "explain", "latest"),
                 ("analyze", "recommend", "latest"), ("analyze", "forecast", "m"),
                 ("dashboard", "--port", "0"), ("top",)]


@pytest.mark.parametrize("args", MISSING_READS, ids=[" ".join(a[:2]) for a in MISSING_READS])
@pytest.mark.parametrize("form", ["url", "path", "relative path"])
def test_a_read_command_on_a_missing_store_creates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...],
        form: str) -> None:
    import uvicorn

    from allele.dashboard.tui.app import TopApp

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: None)  # never serve here
    monkeypatch.setattr(TopApp, "run", lambda *a, **k: None)
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    ref = {"url": f"sqlite:///{missing}", "path": str(missing),
           "relative path": "nonexistent/dir/x.db"}[form]
    code, out, err = allele(*args, "--store", ref)
    assert one_line_error(code, out, err), (args, err)
    shown = "nonexistent/dir/x.db" if form == "relative path" else str(missing)
    assert err.startswith(f"error: no result store at {shown}: the file does not exist"), err
    assert list(tmp_path.iterdir()) == []  # no directory, no empty database


def test_a_plain_path_store_is_written_by_run_and_read_by_every_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--store .allele/results.db`` (what ``--help`` gives as the default) is that file."""
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ntarget: {T}:tiny\nisolation: inline\nseeds: 1\n")
    code, out, err = allele("bench", "run", str(spec), "-q", "--name", "p1", "--store",
                            ".allele/results.db")
    assert code == 0, err
    assert (tmp_path / ".allele" / "results.db").is_file()  # the documented directory is made
    for ref in (".allele/results.db", str(tmp_path / ".allele" / "results.db")):
        code, out, err = allele("bench", "list", "--store", ref)
        assert code == 0 and "p1" in out, err
    code, out, err = allele("bench", "list")  # the default is the same store
    assert code == 0 and "p1" in out, err


def test_list_limit_must_be_positive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    open_store(url).close()
    code, out, err = allele("bench", "list", "--limit", "0", "--store", url)
    assert one_line_error(code, out, err) and "--limit must be >= 1" in err


def _damage(url: str, sql: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.mark.parametrize(("what", "sql"), [
    ("blob", "UPDATE samples SET vals = x'0102'"),
    ("metric list", "UPDATE samples SET metrics = '[\"wall_s'"),
    ("index", "UPDATE samples SET metric_idx = x'0900090009000900' || metric_idx"),
    ("params", "UPDATE cells SET params = '{\"i\": '"),
    ("environment", "UPDATE runs SET environment = '{not json'"),
])
def test_a_damaged_store_value_is_one_line(tmp_path: Path, what: str, sql: str) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with open_store(url) as st:
        for name in ("a", "b"):
            run_id = st.create_run(name, "spec", "t", {}, {"cpu": {"model": "x"}})
            st.save_cells(run_id, [_cell(i) for i in range(2)])
            st.finish_run(run_id, "finished")
    _damage(url, sql)
    for args in (("bench", "show", "b"), ("bench", "compare", "a", "b")):
        code, out, err = allele(*args, "--store", url)
        # the environment is read late (lazily): what came before it may already be printed
        last = err.splitlines()[-1] if err else ""
        assert code == 2 and "Traceback" not in out + err, (what, args, out, err)
        assert last.startswith("error: ") and "corrupt" in last
        assert sum(line.startswith("error:") for line in err.splitlines()) == 1


def test_the_lease_is_a_compare_and_swap(store: ResultStore) -> None:
    from allele.store.leases import Lease

    run_id = store.create_run("l", "s", "t", {}, {})
    dead = Lease("elsewhere", 1, 1.0)
    me = Lease("here", os.getpid(), 2.0)
    assert store.swap_lease(run_id, dead, None) is None
    assert store.swap_lease(run_id, me, None) == store.lease(run_id)  # it is not free any more
    assert store.swap_lease(run_id, me, dead) is None  # taken over from the holder seen
    held = store.lease(run_id)
    assert held is not None and me.same_holder(held)
    store.release_lease(run_id, dead)  # somebody else's release does nothing
    assert store.lease(run_id) is not None
    store.release_lease(run_id, me)
    assert store.lease(run_id) is None


def test_a_live_holder_is_named_and_a_dead_one_is_replaced(sqlite_store: ResultStore) -> None:
    from allele.bench.lease import RunBusyError, RunLease
    from allele.store.leases import Lease

    run_id = sqlite_store.create_run("busy", "s", "t", {}, {})
    mine = RunLease(sqlite_store, run_id, "busy")
    mine.acquire()
    other = RunLease(sqlite_store, run_id, "busy")
    other.me = Lease(other.me.host, other.me.pid + 1, other.me.pid_started)  # another process
    with pytest.raises(RunBusyError, match=rf"run 'busy' is being run by process {os.getpid()}"):
        other.acquire()
    mine.release()
    dead = Lease(mine.me.host, 2**22 + 7, 1.0)  # a pid that does not run
    assert sqlite_store.swap_lease(run_id, dead, None) is None
    mine.acquire()  # the dead holder does not block
    assert mine.held
    mine.release()  # its heartbeat thread would outlive the fixture's store and log errors


def test_two_resumes_at_once_run_nothing_twice(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ntarget: {T}:sleeps\nisolation: inline\nseeds: 1\n"
                    f"order: sequential\nmatrix: {{a: [1, 2, 3]}}\n"
                    f"include: [{{a: 1, hold: {str(hold)!r}}}]\n")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    env = {"ALLELE_DATA_DIR": str(tmp_path / "data")}
    first = Cli(["bench", "run", str(spec), "--store", url, "-q", "--name", "r"], env=env,
                cwd=tmp_path, out=tmp_path / "first.out")
    wait_for_file(Path(str(hold) + ".started"))  # the first cell runs, held open
    code, out, err = allele("bench", "run", "--resume", "latest", "--store", url, "-q")
    assert one_line_error(code, out, err), err
    assert f"run 'r' is being run by process {first.pid}" in err
    hold.unlink()
    assert first.wait() == 0, first.output
    with open_store(url) as st:
        rec = st.load_run("r")
        assert rec.info.status == "finished" and rec.info.cell_count == 3
        assert st.lease(rec.info.id) is None  # given up at the end
    code, _, err = allele("bench", "run", "--resume", "latest", "--store", url, "-q")
    assert code == 0 and "0 cells run, 3 already done" in err


def test_a_resume_after_a_kill_takes_the_dead_runners_lease(sqlite_url: str) -> None:
    from allele.store.leases import Lease

    suite = loads_suite(f"name: k\ntarget: {T}:tiny\nseeds: 1\nmatrix: {{a: [1, 2]}}\n")
    with open_store(sqlite_url) as st:
        run_id = st.create_run("k", "k", "t", {"format": 1, "suite": suite.model_dump(
            mode="json"), "filters": []}, {})
        assert st.swap_lease(run_id, Lease(os.uname().nodename, 2**22 + 9, 5.0), None) is None
        summary = Runner(st, executor="inline", environment=ENV).resume("k")
        assert summary.status == "finished" and summary.executed == 2
        assert st.lease(run_id) is None
        assert json.loads(json.dumps(st.get_run("k").spec))["format"] == 1


def test_store_urls_that_cannot_be_parsed_are_one_line() -> None:
    with pytest.raises(StoreError, match="invalid store URL"):
        open_store("postgresql+psycopg://u@h:notaport/db")
