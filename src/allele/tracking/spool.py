"""The local spool: tracking records that could not reach MLflow, kept until replayed.

The spool is one append-only JSON-lines file. Every line is one of

* ``{"t": "rec", "key": K, "target": URI, ...record}``: a record (create a run, log a batch,
  log an artifact, end a run) with a unique idempotency ``key`` and the tracking URI it was meant
  for;
* ``{"t": "done", "key": K}``: record ``K`` was delivered (it is never replayed again);
* ``{"t": "rej", "key": K, "error": E}``: the server refused record ``K`` for good (it is kept for
  inspection and not replayed again, unless re-queued);
* ``{"t": "retry", "key": K}``: rejected record ``K`` was re-queued (``allele tracking sync
  --retry-rejected``): it is pending again;
* ``{"t": "run", "target": URI, "run": RK, "run_id": ID}``: the Allele run key ``RK`` is the
  MLflow run ``ID`` on that server;
* ``{"t": "torn"}``: the line before it was cut short by a crash mid-write (see below).

Nothing is ever rewritten in place, so a crash can at worst leave a truncated last line without
its newline. The next writer ends that line first and appends a ``torn`` mark after it: the
fragment stays a line of its own, which every reader skips and reports
(:attr:`SpoolState.torn`). (Appending without ending it glued the new record onto the fragment,
and the spool was unreadable from then on; a spool glued that way by an older version is still
read: the complete entry at the end of such a line is recovered, the fragment before it reported
as torn.) A line that parses but
is not a valid entry (a record without its ``key``, ``op``, ``target`` or ``experiment``; a mark
without its key) is skipped and counted in :attr:`SpoolState.malformed`, never a crash of
``allele tracking sync``; any other line that is not JSON is an error naming it. Writers and the
replayer take an exclusive ``flock`` on ``<spool>.lock``, so several processes can share one
spool. Artifacts of spooled records are copied into ``<spool>.artifacts/<key>/``; the spool's
path is made absolute, so a record names its artifact wherever it is replayed from.

This module has no MLflow dependency; :func:`allele.tracking.sync.sync_spool` replays.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allele.errors import TrackingError

Record = dict[str, Any]


def new_key() -> str:
    """A fresh idempotency key."""
    return uuid.uuid4().hex


def default_spool_path() -> Path:
    """``<data_dir>/tracking-spool.jsonl`` from the settings (``.allele/`` by default)."""
    from allele.config import load_settings

    return Path(load_settings().data_dir) / "tracking-spool.jsonl"


@dataclass
class SpoolState:
    """What a spool file holds, as read at one moment."""

    pending: list[Record] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    rejected: dict[str, str] = field(default_factory=dict)
    run_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    """(target URI, run key) -> MLflow run id."""
    malformed: list[int] = field(default_factory=list)
    """Line numbers (from 1) of lines that are not valid spool entries (skipped)."""
    torn: list[int] = field(default_factory=list)
    """Line numbers (from 1) of lines cut short by a crash mid-write (skipped: their record is
    lost; a bench run's cell is sent again by ``bench run --resume``)."""

    def pending_run_keys(self) -> set[str]:
        """Run keys that still have undelivered records."""
        return {str(r["run"]) for r in self.pending if "run" in r}

    def pending_by_target(self) -> dict[str, int]:
        """How many records wait for each tracking URI, by URI."""
        counts: dict[str, int] = {}
        for rec in self.pending:
            target = str(rec.get("target"))
            counts[target] = counts.get(target, 0) + 1
        return dict(sorted(counts.items()))


_NEEDS: dict[str, tuple[str, ...]] = {
    "rec": ("key", "op", "target", "experiment"),
    "done": ("key",),
    "rej": ("key",),
    "retry": ("key",),
    "run": ("target", "run", "run_id"),
    "torn": (),
}
_TORN_MARK = '{"t":"torn"}'
_ENTRY_START = '{"t":'
"""How every line this module writes starts (``t`` is always the first key)."""
_RECORD_NEEDS: dict[str, tuple[str, ...]] = {
    "create_run": ("run", "start_time"),
    "log": ("run",),
    "artifact": ("run", "path"),
    "end": ("run", "status", "end_time"),
}


def _valid(item: object) -> bool:
    """Whether a parsed line is a spool entry with the fields its kind needs."""
    if not isinstance(item, dict):
        return False
    needs = _NEEDS.get(str(item.get("t")))
    if needs is None or any(item.get(k) in (None, "") for k in needs):
        return False
    if item["t"] == "rec":
        op_needs = _RECORD_NEEDS.get(str(item["op"]))
        return op_needs is not None and all(item.get(k) is not None for k in op_needs)
    return True


class Spool:
    """An append-only JSON-lines spool file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_spool_path()
        if not self.path.name or self.path.is_dir():
            raise TrackingError(f"tracking spool {str(path)!r} is not a file path")
        # absolute: the artifacts it stages are named by path in its records, and a replay may
        # run from another working directory
        self.path = Path(os.path.abspath(self.path))
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.artifacts_dir = self.path.with_name(self.path.name + ".artifacts")

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r})"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the spool's exclusive inter-process lock."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TrackingError(f"cannot open tracking spool lock {self.lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _torn_tail(self) -> str:
        """What to write before appending (the lock held): nothing when the file ends with a
        newline; else a newline, so that the new lines are not glued onto the unterminated last
        line, plus a ``torn`` mark after it when that line is a fragment (a crash mid-write)
        rather than a complete entry that only lacks its newline."""
        try:
            with open(self.path, "rb") as fh:
                if fh.seek(0, os.SEEK_END) == 0:
                    return ""
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) == b"\n":
                    return ""
                fh.seek(0)
                data = fh.read()  # rare (once after a crash): the last line may be long
        except FileNotFoundError:
            return ""
        try:
            json.loads(data[data.rfind(b"\n") + 1:])
            return "\n"
        except ValueError:  # not JSON (nor UTF-8): a fragment
            return "\n" + _TORN_MARK + "\n"

    def _write_lines(self, lines: Sequence[Record]) -> None:
        if not lines:
            return
        text = "".join(json.dumps(line, separators=(",", ":"), allow_nan=True) + "\n"
                       for line in lines)
        try:
            text = self._torn_tail() + text
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise TrackingError(f"cannot write tracking spool {self.path}: {exc}") from exc

    def append(self, records: Sequence[Record], *, locked: bool = False) -> None:
        """Append records (each needs ``key`` and ``target``); ``locked``: caller holds the lock."""
        lines = [{"t": "rec", **r} for r in records]
        if locked:
            self._write_lines(lines)
        else:
            with self.lock():
                self._write_lines(lines)

    def mark_done(self, key: str, *, locked: bool = False) -> None:
        """Record that ``key`` was delivered; it will never be replayed."""
        self._mark([{"t": "done", "key": key}], locked)

    def mark_rejected(self, key: str, error: str, *, locked: bool = False) -> None:
        """Record that the server refused ``key`` for good."""
        self._mark([{"t": "rej", "key": key, "error": error}], locked)

    def requeue_rejected(self, *, locked: bool = False) -> int:
        """Make every rejected record pending again (its ``rej`` mark stays, for the record);
        returns how many. For records rejected by a target that could not take them at all,
        before ``allele tracking sync`` told the two apart, or after fixing what MLflow refused."""
        if not locked:
            with self.lock():
                return self.requeue_rejected(locked=True)
        keys = list(self.read().rejected)
        self._write_lines([{"t": "retry", "key": k} for k in keys])
        return len(keys)

    def note_run_id(self, target: str, run_key: str, run_id: str, *, locked: bool = False) -> None:
        """Remember that run key ``run_key`` is MLflow run ``run_id`` on ``target``."""
        self._mark([{"t": "run", "target": target, "run": run_key, "run_id": run_id}], locked)

    def _mark(self, lines: list[Record], locked: bool) -> None:
        if locked:
            self._write_lines(lines)
        else:
            with self.lock():
                self._write_lines(lines)

    def read(self) -> SpoolState:
        """Parse the spool file (a missing file is an empty spool)."""
        state = SpoolState()
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return state
        except (OSError, UnicodeDecodeError) as exc:
            raise TrackingError(f"cannot read tracking spool {self.path}: {exc}") from None
        records: list[Record] = []
        lines = raw.split("\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            item = self._parse(lines, i, state)
            if item is None:
                continue
            if not _valid(item):
                state.malformed.append(i + 1)
                continue
            kind = item.get("t")
            if kind == "rec":
                records.append(item)
            elif kind == "done":
                state.done.add(str(item["key"]))
            elif kind == "rej":
                state.rejected[str(item["key"])] = str(item.get("error", ""))
            elif kind == "retry":
                state.rejected.pop(str(item["key"]), None)
            elif kind == "run":
                state.run_ids[(str(item["target"]), str(item["run"]))] = str(item["run_id"])
        seen: set[str] = set()
        for rec in records:
            key = str(rec["key"])
            if key in state.done or key in state.rejected or key in seen:
                continue
            seen.add(key)
            state.pending.append(rec)
        return state

    def _parse(self, lines: list[str], i: int, state: SpoolState) -> Any:
        """Line ``i`` parsed; None for a line cut short by a crash (noted in ``state.torn``):
        the last line, one followed by a ``torn`` mark, or the fragment before a complete entry
        glued onto it (by versions that appended without ending a torn line first)."""
        line = lines[i]
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            pass
        start = line.find(_ENTRY_START, 1)
        while start > 0:
            try:
                item = json.loads(line[start:])
            except json.JSONDecodeError:
                item = None
            if isinstance(item, dict) and item.get("t") in _NEEDS:
                state.torn.append(i + 1)
                return item
            start = line.find(_ENTRY_START, start + 1)
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        # followed by its mark (or by the start of one, itself cut short), or the last line
        if (nxt and _TORN_MARK.startswith(nxt)) or not "".join(lines[i + 1:]).strip():
            state.torn.append(i + 1)
            return None
        raise TrackingError(f"tracking spool {self.path} is corrupt at line {i + 1}")

    def clear(self, *, locked: bool = False) -> None:
        """Delete the spool file and staged artifacts (only when nothing is pending or rejected:
        :func:`~allele.tracking.sync.sync_spool` calls it after a complete replay)."""
        if locked:
            self._clear()
        else:
            with self.lock():
                self._clear()

    def _clear(self) -> None:
        state = self.read()
        if state.pending or state.rejected:
            raise TrackingError(f"tracking spool {self.path} still holds records; not clearing")
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.artifacts_dir, ignore_errors=True)

    def stash_artifact(self, src: str | os.PathLike[str], key: str) -> str:
        """Copy an artifact file into the spool's artifact folder; return the copy's path."""
        dest_dir = self.artifacts_dir / key
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
            dest = dest_dir / Path(src).name
            shutil.copyfile(src, dest)
        except OSError as exc:
            raise TrackingError(f"cannot stage artifact {src} in {dest_dir}: {exc}") from exc
        return str(dest)  # absolute, as the spool's path

    def drop_artifact(self, key: str) -> None:
        """Remove a staged artifact folder once its record was delivered."""
        shutil.rmtree(self.artifacts_dir / key, ignore_errors=True)
