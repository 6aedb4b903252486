"""Experiment tracking in MLflow: runs, observer metrics, matrix runs, spooling and replay.

This module is the public face of the MLflow tracking; the machinery lives in one module per job:

* :mod:`allele.tracking.tracker`: :class:`MlflowTracker`, the background writer (it queues,
  batches with ``log_batch`` and goes offline to the spool when the server is unreachable);
* :mod:`allele.tracking.runs`: :class:`TrackedRun` (params, tags, metrics, artifacts) and
  :class:`MlflowObserver` (the core observer Protocol: every component it watches, an evolution
  engine, a Kraken network or an agent, becomes a run);
* :mod:`allele.tracking.matrix`: a benchmark matrix run as a parent run with one nested child run
  per cell (:meth:`MlflowTracker.start_matrix_run`, :meth:`~MlflowTracker.log_cell`,
  :meth:`~MlflowTracker.end_matrix_run`), and the bridge from the bench runner
  (:class:`MlflowProgress`, :func:`run_matrix_tracked`);
* :mod:`allele.tracking.sync`: :func:`sync_spool` (``allele tracking sync``) replays the spool
  exactly once: every record has an idempotency key and is marked done once delivered, runs are
  found again by their ``allele.run_key`` tag instead of being created twice, and metrics carry
  the timestamp of the event, so MLflow's own duplicate check makes even a replay after a lost
  acknowledgement a no-op; :func:`reap_stale_runs`;
* :mod:`allele.tracking.delivery`: delivering one record to MLflow, and telling an outage from a
  refusal;
* :mod:`allele.tracking._common`: the tags, limits, end statuses and the owning process.

Run lifecycle: runs end ``FINISHED``, ``FAILED`` (the error in the ``allele.error`` tag) or
``KILLED`` (KeyboardInterrupt). Every run carries its owner's host, pid and pid start time; a new
tracker marks runs of dead processes still ``RUNNING`` as ``FAILED`` with an ``allele.note`` tag.

Importing this module does not import MLflow.
"""

from __future__ import annotations

from allele.tracking._common import (
    END_STATUSES,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_LENGTH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_LENGTH,
    MAX_TAGS_PER_BATCH,
    TAG_ERROR,
    TAG_HOST,
    TAG_KIND,
    TAG_NOTE,
    TAG_PARENT,
    TAG_PID,
    TAG_PID_STARTED,
    TAG_RUN_KEY,
    RunEndStatus,
    default_artifact_location,
    end_status_for,
    owner_tags,
)
from allele.tracking.matrix import MlflowProgress, environment_fingerprint, run_matrix_tracked
from allele.tracking.runs import MlflowObserver, TrackedRun
from allele.tracking.sync import SyncReport, reap_stale_runs, sync_spool
from allele.tracking.tracker import MlflowTracker

__all__ = [
    "END_STATUSES",
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_PER_BATCH",
    "MAX_PARAM_LENGTH",
    "MAX_TAGS_PER_BATCH",
    "MAX_TAG_LENGTH",
    "TAG_ERROR",
    "TAG_HOST",
    "TAG_KIND",
    "TAG_NOTE",
    "TAG_PARENT",
    "TAG_PID",
    "TAG_PID_STARTED",
    "TAG_RUN_KEY",
    "MlflowObserver",
    "MlflowProgress",
    "MlflowTracker",
    "RunEndStatus",
    "SyncReport",
    "TrackedRun",
    "default_artifact_location",
    "end_status_for",
    "environment_fingerprint",
    "owner_tags",
    "reap_stale_runs",
    "run_matrix_tracked",
    "sync_spool",
]
