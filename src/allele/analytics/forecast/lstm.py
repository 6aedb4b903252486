"""A small LSTM forecaster (PyTorch, the optional ``lstm`` extra; torch is imported on fit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from allele.analytics._common import FloatArray, check_positive_int
from allele.analytics.forecast.base import BaseForecaster, _z
from allele.analytics.forecast.baselines import _baseline_for
from allele.errors import AnalyticsError

__all__ = ["LSTMForecaster"]


class LSTMForecaster(BaseForecaster):
    """A small LSTM (PyTorch) trained on sliding windows, forecasting recursively.

    Needs the ``lstm`` extra (``pip install 'allele[lstm]'``); without torch, ``fit`` raises
    :class:`~allele.errors.AnalyticsError`. Training is seeded and deterministic on CPU: it runs
    inside a forked torch RNG seeded with ``seed``, with deterministic algorithms on and one
    thread (the previous global settings are restored afterwards).

    With ``difference=True`` (the default) the network models the first differences and the
    forecast integrates them from the last value: a network of saturating units cannot
    extrapolate a level it never saw, so on a trending series a model of the levels bends back
    towards the training range, while the differences of a trend plus a season are stationary.
    ``difference=False`` models the levels (for series without a trend). The modelled series
    is standardised; the interval comes from the in-sample one-step residuals (the same in
    levels and differences), widened with ``sqrt(h)``.

    Fallback (documented; ``model_`` says so): a constant series, or fewer than
    ``window + min_windows`` modelled observations -> :class:`NaiveForecaster`; differences that
    are all equal (a straight line) -> that line.
    """

    def __init__(
        self,
        window: int = 24,
        hidden_size: int = 16,
        epochs: int = 200,
        learning_rate: float = 0.01,
        seed: int = 0,
        level: float = 0.9,
        min_windows: int = 8,
        difference: bool = True,
    ) -> None:
        super().__init__(level)
        self.window = window
        self.hidden_size = hidden_size
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.seed = seed
        self.min_windows = min_windows
        self.difference = difference

    def _fit(self, y: FloatArray) -> None:
        w = check_positive_int(self.window, "window")
        check_positive_int(self.epochs, "epochs")
        self._fallback: BaseForecaster | None = None
        self._line: float | None = None
        if np.ptp(y) == 0:
            self._fallback = _baseline_for(y, None, self.level, "constant series")
            self.model_ = self._fallback.model_
            return
        series = np.diff(y) if self.difference else y
        if series.size < w + self.min_windows:
            self._fallback = _baseline_for(
                y, None, self.level,
                f"only {y.size} observations, LSTM needs "
                f"{w + self.min_windows + int(self.difference)}")
            self.model_ = self._fallback.model_
            return
        self._last = float(y[-1])
        if np.ptp(series) == 0:  # differences all equal: the series is a straight line
            self._line = float(series[0])
            self.model_ = "line (fallback: constant differences)"
            return
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise AnalyticsError(
                "LSTMForecaster needs PyTorch: pip install 'allele[lstm]'") from exc

        self._mu = float(np.mean(series))
        self._sd = float(np.std(series))
        z = (series - self._mu) / self._sd
        windows = np.lib.stride_tricks.sliding_window_view(z[:-1], w)
        targets = z[w:]
        threads = torch.get_num_threads()
        deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            torch.set_num_threads(1)
            torch.use_deterministic_algorithms(True)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                net = _make_lstm(self.hidden_size)
                xb = torch.tensor(windows[:, :, None], dtype=torch.float32)
                yb = torch.tensor(targets[:, None], dtype=torch.float32)
                opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
                loss_fn = torch.nn.MSELoss()
                for _ in range(self.epochs):
                    opt.zero_grad()
                    loss = loss_fn(net(xb), yb)
                    loss.backward()
                    opt.step()
                net.eval()
                with torch.no_grad():
                    fitted = net(xb).numpy()[:, 0].astype(np.float64)
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
        self._net = net
        self._resid_sd = float(np.std(targets - fitted))
        self._tail = z[-w:].copy()
        self.final_loss_ = float(np.mean((targets - fitted) ** 2))
        self.model_ = (f"LSTM(window={w}, hidden={self.hidden_size}"
                       f"{', differences' if self.difference else ''})")

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        if self._fallback is not None:
            return self._fallback._predict(horizon)
        steps = np.arange(1, horizon + 1, dtype=np.float64)
        if self._line is not None:
            line: FloatArray = self._last + self._line * steps
            return line, line.copy(), line.copy()
        import torch

        buf = list(self._tail)
        out = np.empty(horizon)
        with torch.no_grad():
            for i in range(horizon):
                x = torch.tensor(np.asarray(buf[-self.window:])[None, :, None],
                                 dtype=torch.float32)
                out[i] = float(self._net(x)[0, 0])
                buf.append(out[i])
        modelled = out * self._sd + self._mu
        mean = self._last + np.cumsum(modelled) if self.difference else modelled
        width = _z(self.level) * self._resid_sd * self._sd * np.sqrt(steps)
        return mean, mean - width, mean + width


def _make_lstm(hidden: int) -> Any:
    import torch

    class _Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(1, hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, 1)

        def forward(self, x: Any) -> Any:
            out, _ = self.lstm(x)
            return self.head(out[:, -1, :])

    return _Net()
