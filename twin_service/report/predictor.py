"""Table II per block of the held-out days: a predictor's errors on each block, the episodes of its intervals.

A held-out day is replayed under the hosting policy the predictor was trained under (its manifest's; the load
series are cached by ``envs.load_series``), every window of it is forecast through the serving path
(:meth:`~twin_service.predict.neural.NeuralForecaster.forecast_values`), and the errors are computed per block of
``block_s`` seconds (by the time of the forecast value). Every predictor sees the same blocks, so comparisons of
two networks are paired, block by block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from twin_service.envs.load_series import cached_day_series
from twin_service.envs.sim import scenario_of
from twin_service.predict.metrics import forecast_errors
from twin_service.predict.naive import persistence_forecast, window_mean_forecast
from twin_service.predict.neural import NeuralForecaster
from twin_service.predict.series import windows

METRICS = ("rmse", "mae", "wape", "r2")
NAIVE = ("persistence", "window mean")
"""The naive forecasts Table II is shown beside (not the paper's: ours, as a floor)."""
NAIVE_WINDOW = 6
"""The window the naive forecasts look back over (ticks)."""


def _series(recording: Path, hosting: str) -> tuple[np.ndarray, float]:
    sc = scenario_of([recording])
    load, hosted = cached_day_series(sc, recording, migration_policy=hosting)
    return np.stack([load, hosted], axis=-1), float(sc.params.simulation.tick_s)


def _per_block(pred: np.ndarray, actual: np.ndarray, at_s: np.ndarray, block_s: float) -> list[dict[str, Any]]:
    blocks = (at_s // block_s).astype(np.int64)
    rows = []
    for k in np.unique(blocks):
        sel = blocks == k
        errors = forecast_errors(pred[sel], actual[sel])
        rows.append({"block": int(k), "start_s": float(k * block_s), **{m: errors[m] for m in METRICS}})
    return rows


def block_errors(folder: Path, recording: Path, block_s: float) -> list[dict[str, Any]]:
    """A trained predictor's RMSE, MAE, WAPE and R^2 on each block of a held-out day (original scale, bits)."""
    f = NeuralForecaster.load(folder)
    values, step_s = _series(recording, f.manifest.data.migration_policy)
    x, y, last = windows(values, f.window, f.horizon)
    pred = f.forecast_values(x)
    return _per_block(pred, y, (last + f.horizon) * step_s, block_s)


def naive_block_errors(name: str, recording: Path, block_s: float, window: int, hosting: str) -> list[dict[str, Any]]:
    """The same for persistence or the window mean (horizon 1)."""
    values, step_s = _series(recording, hosting)
    x, y, last = windows(values, window, 1)
    pred = persistence_forecast(x) if name == "persistence" else window_mean_forecast(x, window)
    return _per_block(pred, y, (last + 1) * step_s, block_s)
