"""The JSON-lines spool (no MLflow involved): append, done and rejected marks, crash tolerance."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from allele.errors import TrackingError
from allele.tracking.spool import Spool, new_key


def _rec(i: int, run: str = "r1") -> dict[str, object]:
    return {"key": f"k{i}", "target": "sqlite:///x.db", "experiment": "e", "op": "log",
            "run": run, "metrics": [["m", float(i), 1000 + i, i]], "params": {}, "tags": {}}


def test_pending_excludes_done_and_rejected_and_keeps_order(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.jsonl")
    assert sp.read().pending == []  # no file yet: an empty spool
    sp.append([_rec(i) for i in range(5)])
    sp.mark_done("k1")
    sp.mark_rejected("k3", "bad value")
    state = sp.read()
    assert [r["key"] for r in state.pending] == ["k0", "k2", "k4"]
    assert state.done == {"k1"} and state.rejected == {"k3": "bad value"}
    assert state.pending[1]["metrics"] == [["m", 2.0, 1002, 2]]
    assert state.pending_run_keys() == {"r1"}


def test_a_duplicated_record_line_is_pending_once(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.jsonl")
    sp.append([_rec(0), _rec(0), _rec(1)])
    assert [r["key"] for r in sp.read().pending] == ["k0", "k1"]


def test_run_id_hints_are_remembered_per_target(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.jsonl")
    sp.note_run_id("http://a", "r1", "abc")
    sp.note_run_id("http://b", "r1", "def")
    assert sp.read().run_ids == {("http://a", "r1"): "abc", ("http://b", "r1"): "def"}


def test_a_truncated_last_line_is_ignored_but_corruption_inside_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    sp = Spool(path)
    sp.append([_rec(0), _rec(1)])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"t": "rec", "key": "k2", "targ')  # a crash mid-write
    assert [r["key"] for r in sp.read().pending] == ["k0", "k1"]
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    with pytest.raises(TrackingError, match="corrupt at line 2"):
        sp.read()


def test_stashed_artifacts_are_copies(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.jsonl")
    src = tmp_path / "report.html"
    src.write_text("<html>1</html>")
    key = new_key()
    copy = Path(sp.stash_artifact(src, key))
    src.write_text("<html>changed</html>")
    assert copy.read_text() == "<html>1</html>" and copy.name == "report.html"
    sp.drop_artifact(key)
    assert not copy.exists()


def _append_many(path: str, worker: int) -> None:
    sp = Spool(path)
    for i in range(50):
        sp.append([{"key": f"w{worker}-{i}", "target": "t", "experiment": "e", "op": "log",
                    "run": "r", "metrics": [["m", 1.0, 1, i]] * 20}])


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "s.jsonl")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = Path(path).read_text().splitlines()
    assert len(lines) == 150
    assert all(json.loads(line)["t"] == "rec" for line in lines)
    assert len(Spool(path).read().pending) == 150


def test_clear_refuses_while_records_are_pending(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.jsonl")
    sp.append([_rec(0)])
    sp.stash_artifact(__file__, "k0")
    with pytest.raises(TrackingError, match="still holds records"):
        sp.clear()
    sp.mark_done("k0")
    sp.clear()
    assert not sp.path.exists() and not sp.artifacts_dir.exists()
    assert sp.read().pending == []


def test_an_append_after_a_crash_mid_write_keeps_the_spool_readable(tmp_path: Path) -> None:
    """A crash left the last line without its newline; the next append used to glue its record
    onto it, and the spool was "corrupt at line 3" for good."""
    path = tmp_path / "s.jsonl"
    sp = Spool(path)
    sp.append([_rec(0), _rec(1)])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"t":"rec","key":"k2","targ')  # a crash mid-write
    sp.append([_rec(3)])
    sp.mark_done("k0")
    state = sp.read()
    assert [r["key"] for r in state.pending] == ["k1", "k3"]
    assert state.torn == [3]  # reported, not silently gone
    assert path.read_text().splitlines()[2:4] == ['{"t":"rec","key":"k2","targ', '{"t":"torn"}']
    # a complete last line that only lacks its newline is a record, not a torn one
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    sp.append([_rec(4)])
    assert [r["key"] for r in sp.read().pending] == ["k1", "k3", "k4"]
    assert sp.read().torn == [3]
    # a spool glued by an older version: the entry at the end of the line is recovered
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], '{"t":"rec","key":"k2","targ' + lines[4], *lines[5:]])
                    + "\n")
    state = sp.read()
    assert [r["key"] for r in state.pending] == ["k1", "k3", "k4"] and state.torn == [3]


def test_rejected_records_can_be_queued_again(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.jsonl")
    sp.append([_rec(0), _rec(1), _rec(2)])
    sp.mark_rejected("k0", "MlflowException: no such experiment")
    sp.mark_rejected("k2", "MlflowException: no such experiment")
    assert [r["key"] for r in sp.read().pending] == ["k1"]
    assert sp.requeue_rejected() == 2
    state = sp.read()
    assert [r["key"] for r in state.pending] == ["k0", "k1", "k2"] and state.rejected == {}
    sp.mark_rejected("k2", "refused again")
    assert sp.read().rejected == {"k2": "refused again"}


def test_a_relative_spool_path_stages_artifacts_by_absolute_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default spool (``.allele/...``) is relative: a replay from another directory found
    no staged artifact ("artifact file ... is gone")."""
    monkeypatch.chdir(tmp_path)
    sp = Spool(Path(".allele") / "s.jsonl")
    src = tmp_path / "report.html"
    src.write_text("<html></html>")
    staged = Path(sp.stash_artifact(src, "k0"))
    assert staged.is_absolute() and staged.read_text() == "<html></html>"
    assert staged == tmp_path / ".allele" / "s.jsonl.artifacts" / "k0" / "report.html"
