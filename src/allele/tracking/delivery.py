"""Delivering spool-format records to MLflow, and telling a refusal from an outage.

One :class:`Applier` serves the live tracker and :func:`~allele.tracking.sync.sync_spool` alike:
a record is the same dict whether it is delivered at once or replayed from the spool a week
later. Runs are found by their ``allele.run_key`` tag, never by name, so a replayed
``create_run`` after a lost acknowledgement finds the run it already made instead of making a
second one; the run key -> run id map is cached per tracking URI.

A failure is one of three kinds (:func:`classify`): the backend is ``unavailable`` (try again
later), the ``target`` cannot take records at all (it cannot be opened, the experiment cannot be
resolved or is deleted, the database is broken, a run is at another tracking URI: no record is to
blame), or MLflow ``refused`` this one record (give it up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from allele.errors import TrackingError
from allele.tracking._common import (
    TAG_HOST,
    TAG_NOTE,
    TAG_PARENT,
    TAG_PID,
    TAG_PID_STARTED,
    TAG_RUN_KEY,
    brief_error,
    default_artifact_location,
    exception_chain,
    is_database_error,
    is_unavailable,
)
from allele.tracking._sqlite import open_client
from allele.tracking.spool import Record


class Refused(Exception):
    """A record the backend refused for good (it will not be retried)."""


class TargetError(TrackingError):
    """The tracking target cannot take records at all: no record is to blame, so none is
    rejected; they wait for the target to be fixed or for the right one."""


@contextmanager
def _target_errors(what: str) -> Iterator[None]:
    """An error inside, other than an outage (kept as it is, to be retried later) or a
    :class:`TargetError` already, is the target's: ``TargetError("<what>: <the error>")``."""
    try:
        yield
    except TargetError:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise
        raise TargetError(f"{what}: {brief_error(exc)}") from exc


class Applier:
    """Applies spool-format records to MLflow backends; knows run keys -> run ids."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self._experiments: dict[tuple[str, str], str] = {}
        self.run_ids: dict[tuple[str, str], str] = {}

    def client(self, target: str) -> Any:
        """The (cached) ``MlflowClient`` of tracking URI ``target``."""
        client = self._clients.get(target)
        if client is None:
            with _target_errors(f"cannot open MLflow at {target}"):
                client = open_client(target)  # a new SQLite database is created atomically
            self._clients[target] = client
        return client

    def experiment_id(self, target: str, name: str) -> str:
        """The id of experiment ``name`` at ``target``, created when missing."""
        cached = self._experiments.get((target, name))
        if cached is not None:
            return cached
        with _target_errors(f"MLflow at {target} cannot resolve experiment {name!r}"):
            exp_id = self._resolve_experiment(target, name)
        self._experiments[(target, name)] = exp_id
        return exp_id

    def _resolve_experiment(self, target: str, name: str) -> str:
        client = self.client(target)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                return str(client.create_experiment(
                    name, artifact_location=default_artifact_location(target)))
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                exp = client.get_experiment_by_name(name)  # created concurrently
                if exp is None:
                    raise
        if exp.lifecycle_stage != "active":
            raise TargetError(f"MLflow experiment {name!r} at {target} is deleted; restore "
                              "it or choose another experiment name")
        return str(exp.experiment_id)

    def find_run(self, target: str, experiment: str, run_key: str) -> str | None:
        """The MLflow id of the run tagged with ``run_key``, or None."""
        cached = self.run_ids.get((target, run_key))
        if cached is not None:
            return cached
        exp_id = self.experiment_id(target, experiment)
        runs = self.client(target).search_runs(
            [exp_id], filter_string=f"tags.`{TAG_RUN_KEY}` = '{run_key}'", max_results=2)
        if not runs:
            return None
        run_id = str(runs[0].info.run_id)
        self.run_ids[(target, run_key)] = run_id
        return run_id

    def _require_run(self, target: str, rec: Record) -> str:
        run_id = self.find_run(target, str(rec["experiment"]), str(rec["run"]))
        if run_id is None:
            elsewhere = sorted(t for t, rk in self.run_ids if rk == rec["run"] and t != target)
            if elsewhere:  # replayed to another tracking URI than the one the run went to
                raise TargetError(f"run {rec['run']} was created at {elsewhere[0]}, not at "
                                  f"{target}: replay its records to {elsewhere[0]}")
            raise Refused(f"run {rec['run']} does not exist at {target} (its creation failed)")
        return run_id

    def apply(self, rec: Record, target: str | None = None, *, trust_new: bool = False) -> bool:
        """Deliver one record; True when it created a new MLflow run. With ``trust_new`` a
        ``create_run`` record marked ``new`` skips the search for an existing run (the live
        tracker's first attempt; a replay never trusts it)."""
        target = target or str(rec["target"])
        op = rec["op"]
        client = self.client(target)
        if op == "create_run":
            existing = (None if trust_new and rec.get("new") else
                        self.find_run(target, str(rec["experiment"]), str(rec["run"])))
            if existing is not None:
                if rec.get("reopen"):  # a resumed run: running again, owned by its new process
                    self._reopen(client, existing, rec)
                return False
            tags = {str(k): str(v) for k, v in rec.get("tags", {}).items()}
            tags[TAG_RUN_KEY] = str(rec["run"])
            parent = rec.get("parent")
            if parent:
                parent_id = self.find_run(target, str(rec["experiment"]), str(parent))
                if parent_id is None:
                    raise Refused(f"parent run {parent} of {rec['run']} does not exist")
                tags[TAG_PARENT] = parent_id
            run = client.create_run(
                self.experiment_id(target, str(rec["experiment"])),
                start_time=int(rec["start_time"]),
                tags=tags,
                run_name=rec.get("run_name"),
            )
            self.run_ids[(target, str(rec["run"]))] = str(run.info.run_id)
            return True
        run_id = self._require_run(target, rec)
        if op == "log":
            from mlflow.entities import Metric, Param, RunTag

            client.log_batch(
                run_id,
                metrics=[Metric(str(k), float(v), int(ts), int(step))
                         for k, v, ts, step in rec.get("metrics", [])],
                params=[Param(str(k), str(v)) for k, v in rec.get("params", {}).items()],
                tags=[RunTag(str(k), str(v)) for k, v in rec.get("tags", {}).items()],
                synchronous=True,
            )
        elif op == "artifact":
            path = str(rec["path"])
            if not os.path.exists(path):
                raise Refused(f"artifact file {path} is gone")
            client.log_artifact(run_id, path, rec.get("artifact_path"))
        elif op == "end":
            tags = rec.get("tags", {})
            if tags:
                from mlflow.entities import RunTag

                client.log_batch(run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()],
                                 synchronous=True)
            client.set_terminated(run_id, status=str(rec["status"]), end_time=int(rec["end_time"]))
        else:
            raise Refused(f"unknown record op {op!r}")
        return False


    @staticmethod
    def _reopen(client: Any, run_id: str, rec: Record) -> None:
        """Set a resumed run RUNNING again, owned by its new process; its ``allele.note`` (a
        reaper's "ended without closing this run ... marked FAILED", which no longer holds
        once the run goes on) says it was resumed instead."""
        from mlflow.entities import RunTag

        tags = {k: str(v) for k, v in rec.get("tags", {}).items()
                if k in (TAG_HOST, TAG_PID, TAG_PID_STARTED)}
        if tags:
            when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            tags[TAG_NOTE] = (f"resumed by process {tags.get(TAG_PID, '?')} on "
                              f"{tags.get(TAG_HOST, '?')} at {when}")
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()],
                             synchronous=True)
        client.update_run(run_id, status="RUNNING")


def classify(exc: BaseException) -> Literal["refused", "unavailable", "target"]:
    """``unavailable`` (keep the record, try again later), ``target`` (keep the record: the
    target cannot take any, see :class:`TargetError`) or ``refused`` (give this record up)."""
    if isinstance(exc, Refused):
        return "refused"
    if any(isinstance(e, TargetError) for e in exception_chain(exc)):
        return "target"
    if is_unavailable(exc):
        return "unavailable"
    if is_database_error(exc):
        return "target"
    return "refused"
