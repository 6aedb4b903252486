"""Experiment tracking and a genome model registry in MLflow (optional: ``allele[mlflow]``).

Importing this package never imports MLflow; using tracking without MLflow installed raises one
:class:`~allele.errors.TrackingError` that says ``pip install 'allele[mlflow]'``.

Public names:

* :func:`autolog`: every evolution engine, Kraken network and agent created afterwards is
  tracked (one MLflow run each), through the core default-observer hook;
* :class:`MlflowTracker`, :class:`MlflowObserver`, :class:`TrackedRun`, :func:`sync_spool`
  (from :mod:`allele.tracking.mlflow`, which re-exports them from :mod:`~allele.tracking.tracker`,
  :mod:`~allele.tracking.runs` and :mod:`~allele.tracking.sync`);
* :func:`register_genome`, :func:`load_genome`, :func:`compare_versions`, :class:`GenomeModel`
  (from :mod:`allele.tracking.registry`).
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from allele.tracking.runs import MlflowObserver
    from allele.tracking.tracker import MlflowTracker

__all__ = [
    "GenomeModel",
    "MlflowObserver",
    "MlflowTracker",
    "TrackedRun",
    "autolog",
    "autolog_tracker",
    "compare_versions",
    "list_genomes",
    "load_genome",
    "register_genome",
    "sync_spool",
]

_LAZY = {
    "MlflowTracker": "allele.tracking.tracker",
    "MlflowObserver": "allele.tracking.runs",
    "TrackedRun": "allele.tracking.runs",
    "sync_spool": "allele.tracking.sync",
    "GenomeModel": "allele.tracking.registry",
    "register_genome": "allele.tracking.registry",
    "load_genome": "allele.tracking.registry",
    "compare_versions": "allele.tracking.registry",
    "list_genomes": "allele.tracking.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'allele.tracking' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


_lock = threading.Lock()
_active: dict[str, Any] = {}


def autolog(
    tracking_uri: str | None = None,
    experiment: str | None = None,
    *,
    disable: bool = False,
    **tracker_options: Any,
) -> MlflowTracker | None:
    """Track every EvolutionEngine, KrakenLNN and NLPAgent created from now on.

    Installs a process-wide default observer (``allele.core.observer.set_default_observer_factory``)
    that components constructed without an observer pick up; each component becomes one MLflow
    run, ended when the process exits (FINISHED; FAILED on an uncaught error; KILLED on Ctrl-C)
    or by ``autolog(disable=True)``. Calling it again with the same URI and experiment returns the
    same tracker; with others it closes the old one first. Returns the tracker (None on disable).
    """
    from allele.core.observer import set_default_observer_factory
    from allele.tracking.tracker import MlflowTracker

    with _lock:
        tracker: MlflowTracker | None = _active.get("tracker")
        if disable:
            if tracker is not None:
                set_default_observer_factory(_active.get("previous"))
                _active.clear()
                tracker.close()
            return None
        if tracker is not None:
            same = ((tracking_uri is None or tracking_uri == tracker.tracking_uri)
                    and (experiment is None or experiment == tracker.experiment))
            if same:
                return tracker
            set_default_observer_factory(_active.get("previous"))
            _active.clear()
            tracker.close()
        tracker = MlflowTracker(tracking_uri, experiment, **tracker_options)
        observer: MlflowObserver = tracker.observer()

        def factory(kind: str, name: str) -> MlflowObserver:
            observer.expect(name, kind)
            return observer

        _active["previous"] = set_default_observer_factory(factory)
        _active["tracker"] = tracker
        _active["observer"] = observer
        return tracker


def autolog_tracker() -> MlflowTracker | None:
    """The tracker :func:`autolog` installed, or None."""
    tracker: MlflowTracker | None = _active.get("tracker")
    return tracker
