"""Predictions of a component's metrics for configurations, from one run's cells
(:class:`~allele.analytics.predict.PerformancePredictor`): what ``allele analyze predict``
prints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from allele.analytics.predict import MetricPrediction, PerformancePredictor, PredictorValidation
from allele.errors import AnalyticsError
from allele.store.model import RunRecord

__all__ = ["Predictions", "predict_configurations"]


@dataclass(frozen=True, slots=True)
class Predictions:
    """A component's metrics predicted for configurations from a run's cells, with how the
    predictor did on held-out cells of that run."""

    component: str
    configurations: list[dict[str, Any]]
    predictions: list[dict[str, MetricPrediction]]
    validation: dict[str, PredictorValidation]
    observations: int

    def extrapolation(self, index: int) -> tuple[str, ...]:
        """The parameters of configuration ``index`` outside the measured cells (empty: inside
        them); every metric's prediction of a configuration names the same."""
        return next(iter(self.predictions[index].values())).extrapolation

    def warning(self) -> str | None:
        """One sentence when a configuration lies outside the measured cells, None otherwise:
        those numbers are the model's guess where no cell checks it."""
        outside = dict.fromkeys(r for i in range(len(self.predictions))
                                for r in self.extrapolation(i))
        if not outside:
            return None
        gp = any(p.model == "gp" for pred in self.predictions for p in pred.values())
        return (f"extrapolated (marked): {'; '.join(outside)}; no cell checks a prediction "
                "there" + (", and beyond the cells a Gaussian process returns to their mean"
                           if gp else ""))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"component": self.component, "observations": self.observations,
                "validation": {m: v.to_dict() for m, v in self.validation.items()},
                "predictions": [{"params": c, "extrapolates": bool(self.extrapolation(i)),
                                 "extrapolation": list(self.extrapolation(i)),
                                 **{m: {"mean": p.mean, "lower": p.lower, "upper": p.upper,
                                        "model": p.model} for m, p in pred.items()}}
                                for i, (c, pred) in enumerate(zip(
                                    self.configurations, self.predictions, strict=True))]}


def predict_configurations(record: RunRecord, metrics: Sequence[str],
                           configurations: Sequence[Mapping[str, Any]], *,
                           target: str | None = None, level: float = 0.9,
                           seed: int = 0) -> Predictions:
    """Predict ``metrics`` for ``configurations`` from the ok cells of one component of a run
    (:class:`~allele.analytics.predict.PerformancePredictor`).

    Every run of a cell (seed and repeat) with all the metrics is one observation, so the
    intervals cover a new run. A configuration gives the parameters that vary across the cells;
    the others take the cells' value. ``target`` chooses the component when the run has several.
    """
    comps = sorted({c.target for c in record.cells if c.status == "ok"})
    if target is None and len(comps) > 1:
        raise AnalyticsError(f"the run has several components ({', '.join(comps)}); "
                             "choose one with --target")
    comp = target if target is not None else (comps[0] if comps else "")
    params, values = _observations(record, comp, metrics)
    if not params:
        raise AnalyticsError(f"no ok cell of {comp!r} with {', '.join(metrics)} in the run")
    keys = sorted({k for p in params for k in p})
    varying = [k for k in keys if len({repr(p.get(k)) for p in params}) > 1]
    full = []
    for conf in configurations:
        missing = [k for k in varying if k not in conf]
        if missing:
            raise AnalyticsError(f"give {', '.join(missing)} in the configuration (the "
                                 f"parameters that vary across the cells: {', '.join(varying)})")
        full.append({**params[0], **conf})
    pp = PerformancePredictor(level=level, seed=seed).fit(params, values)
    return Predictions(comp, full, pp.predict(full), pp.validation_, len(params))


def _observations(record: RunRecord, component: str, metrics: Sequence[str]
                  ) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    params: list[dict[str, Any]] = []
    values: dict[str, list[float]] = {m: [] for m in metrics}
    for cell in record.cells:
        if cell.status != "ok" or cell.target != component:
            continue
        runs: dict[tuple[int, int], dict[str, float]] = {}
        for smp in cell.samples:
            if smp.metric in values:
                runs.setdefault((smp.seed, smp.repeat), {})[smp.metric] = float(smp.value)
        for obs in runs.values():
            if len(obs) == len(values):
                params.append(dict(cell.params))
                for m in metrics:
                    values[m].append(obs[m])
    return params, values
