"""Delivering spool-format records to MLflow, and telling a refusal from an outage.

One :class:`Applier` serves the live tracker and :func:`~allele.tracking.sync.sync_spool` alike:
a record is the same dict whether it is delivered at once or replayed from the spool a week
later. Runs are found by their ``allele.run_key`` tag, never by name, so a replayed
``create_run`` after a lost acknowledgement finds the run it already made instead of making a
second one; the run key -> run id map is cached per tracking URI.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from allele.errors import TrackingError
from allele.tracking._common import (
    TAG_HOST,
    TAG_PARENT,
    TAG_PID,
    TAG_PID_STARTED,
    TAG_RUN_KEY,
    default_artifact_location,
    is_unavailable,
)
from allele.tracking._sqlite import open_client
from allele.tracking.spool import Record


class Refused(Exception):
    """A record the backend refused for good (it will not be retried)."""


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
            client = open_client(target)  # a new SQLite database is created atomically
            self._clients[target] = client
        return client

    def experiment_id(self, target: str, name: str) -> str:
        """The id of experiment ``name`` at ``target``, created when missing."""
        cached = self._experiments.get((target, name))
        if cached is not None:
            return cached
        client = self.client(target)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                exp_id = str(client.create_experiment(
                    name, artifact_location=default_artifact_location(target)))
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                exp = client.get_experiment_by_name(name)  # created concurrently
                if exp is None:
                    raise
                exp_id = str(exp.experiment_id)
        else:
            if exp.lifecycle_stage != "active":
                raise TrackingError(f"MLflow experiment {name!r} at {target} is deleted; restore "
                                    "it or choose another experiment name")
            exp_id = str(exp.experiment_id)
        self._experiments[(target, name)] = exp_id
        return exp_id

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
        from mlflow.entities import RunTag

        owner = {k: str(v) for k, v in rec.get("tags", {}).items()
                 if k in (TAG_HOST, TAG_PID, TAG_PID_STARTED)}
        if owner:
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in owner.items()],
                             synchronous=True)
        client.update_run(run_id, status="RUNNING")


def classify(exc: BaseException) -> Literal["refused", "unavailable"]:
    """``unavailable`` (keep the record, try again later) or ``refused`` (give it up)."""
    if isinstance(exc, Refused):
        return "refused"
    if is_unavailable(exc):
        return "unavailable"
    return "refused"
