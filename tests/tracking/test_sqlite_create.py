"""A new MLflow SQLite database is created atomically: a Ctrl-C (or a kill) while MLflow runs its
migrations used to leave a half-created database that no command could open again (``table jobs
already exists``). Now the target file exists only once complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from allele.core.genome import Genome
from allele.errors import TrackingError
from allele.tracking._sqlite import create_sqlite_store, half_created_error, open_client


def _start_register(tmp_path: Path, db: Path) -> subprocess.Popen[str]:
    genome = tmp_path / "g.json"
    genome.write_text(Genome({"empathy": 0.9}).to_json())
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.Popen(
        [sys.executable, "-m", "allele.cli", "genome", "register", str(genome), "-n", "g",
         "--tracking-uri", f"sqlite:///{db}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
        # as a terminal's job: a shell's background job (CI under `nohup ... &`) ignores
        # SIGINT, which the child would inherit, and Python then never raises Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _being_created(folder: Path, db: Path) -> bool:
    """MLflow has started writing the database (at its temporary path, or, before the fix, at
    the target itself)."""
    return db.exists() or any(p.name.startswith(f".{db.name}.creating-") and any(p.iterdir())
                              for p in folder.iterdir())


def test_interrupted_creation_leaves_no_database(tmp_path: Path) -> None:
    """A real SIGINT to the process group (a terminal's Ctrl-C) and a SIGKILL, both while the
    migrations run: neither leaves a database file (so the next command is not stuck with a
    half-created one); after Ctrl-C the temporary directory is gone too."""
    interrupted, killed = tmp_path / "int" / "m.db", tmp_path / "kill" / "m.db"
    procs = {db: _start_register(tmp_path, db) for db in (interrupted, killed)}
    deadline = time.monotonic() + 60
    for db, sig in ((interrupted, signal.SIGINT), (killed, signal.SIGKILL)):
        db.parent.mkdir(exist_ok=True)
        proc = procs[db]
        while not _being_created(db.parent, db):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        # at once: the migrations take 1.5 s on a quiet machine (10 s on a busy one), and a
        # process that finished them first would have nothing to interrupt
        assert not db.exists()  # (only once complete)
        os.killpg(proc.pid, sig)
    _out, err = procs[interrupted].communicate(timeout=60)
    procs[killed].communicate(timeout=60)
    assert procs[interrupted].returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert list(interrupted.parent.iterdir()) == []  # the temporary directory removed
    assert not killed.exists()  # a SIGKILL leaves only the temporary directory
    assert [p.name.startswith(".m.db.creating-") for p in killed.parent.iterdir()] == [True]
    from allele.tracking.registry import list_genomes

    with pytest.raises(TrackingError, match="the file does not exist"):
        list_genomes(tracking_uri=f"sqlite:///{interrupted}")


class _FakeClient:
    """Stands in for MlflowClient: "creates" the database at its URI's path."""

    made: ClassVar[list[str]] = []
    meanwhile: Path | None = None

    def __init__(self, tracking_uri: str, registry_uri: str) -> None:
        path = Path(tracking_uri[len("sqlite:///"):])
        if not path.exists():
            path.write_text(f"complete {path.name}")
            _FakeClient.made.append(tracking_uri)
        if _FakeClient.meanwhile is not None:  # another process finishes first
            _FakeClient.meanwhile.write_text("theirs")


def test_a_database_created_meanwhile_is_kept(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setattr(mlflow, "MlflowClient", _FakeClient)
    monkeypatch.setattr(_FakeClient, "made", [])
    target = tmp_path / "sub" / "m.db"
    assert create_sqlite_store(f"sqlite:///{target}") is True
    assert target.read_text() == "complete m.db"  # built elsewhere, then put in place
    assert _FakeClient.made != [f"sqlite:///{target}"]
    assert list(target.parent.iterdir()) == [target]
    assert create_sqlite_store(f"sqlite:///{target}") is False  # exists: untouched
    other = tmp_path / "o.db"
    monkeypatch.setattr(_FakeClient, "meanwhile", other)
    assert create_sqlite_store(f"sqlite:///{other}") is False
    assert other.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.db", "sub"]
    for uri in ("sqlite:///:memory:", "http://127.0.0.1:5000", "sqlite://"):
        assert create_sqlite_store(uri) is False


def test_a_failed_creation_leaves_nothing(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    def interrupted(tracking_uri: str, registry_uri: str) -> Any:
        Path(tracking_uri[len("sqlite:///"):]).write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(mlflow, "MlflowClient", interrupted)
    with pytest.raises(KeyboardInterrupt):
        create_sqlite_store(f"sqlite:///{tmp_path / 'm.db'}")
    assert list(tmp_path.iterdir()) == []


def test_a_half_created_database_is_named(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """One made before this fix (or by plain MLflow): a one-line error naming the file."""
    import mlflow

    db = tmp_path / "b6.db"
    db.write_bytes(b"")

    def broken(tracking_uri: str, registry_uri: str) -> Any:
        raise RuntimeError("(sqlite3.OperationalError) table jobs already exists\n"
                           "[SQL: CREATE TABLE jobs (...)]")

    monkeypatch.setattr(mlflow, "MlflowClient", broken)
    with pytest.raises(TrackingError) as info:
        open_client(f"sqlite:///{db}")
    assert str(info.value) == (
        f"the MLflow database {db} is half-created (its creation was interrupted; MLflow: "
        f"(sqlite3.OperationalError) table jobs already exists): delete {db} and run again")
    from allele.tracking.registry import list_genomes

    with pytest.raises(TrackingError, match=f"half-created .* delete {db} and run again"):
        list_genomes(tracking_uri=f"sqlite:///{db}")
    assert half_created_error(f"sqlite:///{db}", RuntimeError("disk I/O error")) is None
    assert half_created_error(f"sqlite:///{tmp_path / 'none.db'}",
                              RuntimeError("table x already exists")) is None


def test_a_ctrl_c_that_sqlalchemy_turned_into_an_error_is_still_a_ctrl_c(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen with a real SIGINT: SQLAlchemy's cleanup of the interrupted migration failed with
    "Can't reconnect until invalid transaction is rolled back", which the command reported as
    an unusable registry (exit 2) instead of "interrupted" (exit 130)."""
    import mlflow

    def interrupted_then_cleanup_fails(tracking_uri: str, registry_uri: str) -> Any:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("Can't reconnect until invalid transaction is rolled back") \
                from None

    monkeypatch.setattr(mlflow, "MlflowClient", interrupted_then_cleanup_fails)
    with pytest.raises(KeyboardInterrupt):
        open_client(f"sqlite:///{tmp_path / 'm.db'}")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "m.db").write_bytes(b"")  # also when opening an existing database
    with pytest.raises(KeyboardInterrupt):
        open_client(f"sqlite:///{tmp_path / 'm.db'}")
    monkeypatch.setattr(mlflow, "MlflowClient", lambda **kw: (_ for _ in ()).throw(
        RuntimeError("disk I/O error")))
    with pytest.raises(RuntimeError, match="disk I/O error"):  # other errors stay themselves
        open_client(f"sqlite:///{tmp_path / 'm.db'}")
