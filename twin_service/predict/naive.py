"""The two naive forecasts every honest forecasting table carries: persistence and the window mean.

Both read raw windows ``(..., T, M, F)`` (the target is feature 0) exactly as the networks do, so that the
table compares like with like; :class:`WindowMeanForecaster` serves the window mean by name
(``window-mean``), as :class:`~twin_service.predict.base.PersistenceForecaster` serves persistence.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from twin_service.predict.base import LoadWindow

NAIVE_FORECASTS = ("persistence", "window-mean")


def persistence_forecast(values: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(..., M)``: the target's last value."""
    return np.asarray(values, dtype=np.float64)[..., -1, :, 0]


def window_mean_forecast(values: NDArray[np.floating], window: int) -> NDArray[np.float64]:
    """``(..., M)``: the target's mean over the last ``window`` steps (fewer at a run's start)."""
    x = np.asarray(values, dtype=np.float64)[..., -window:, :, 0]
    return x.mean(axis=-2)


class WindowMeanForecaster:
    """Each server's load over the next ticks is its mean over the last ``window`` ticks (paper A's T = 6)."""

    name = "window-mean"
    version = "1"

    def __init__(self, window: int = 6, horizon: int = 1) -> None:
        self.window = window
        self.horizon = horizon

    def forecast(self, history: LoadWindow) -> NDArray[np.float64]:
        return history.load_bits[-self.window :].mean(axis=0).astype(np.float64)
