"""Forecast errors of Table II: RMSE, MAE, WAPE (our reading of the paper's "error rate"), MAPE and R^2.

Pure numpy over matching arrays of forecasts and actual values (any shape; non-finite actual values are
left out). MAPE is taken over the actual values that are not zero (an idle server's load is 0), and the
share of values it covers is reported beside it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

METRICS = ("rmse", "mae", "wape", "mape", "r2")


def forecast_errors(predicted: ArrayLike, actual: ArrayLike) -> dict[str, float]:
    """``rmse``, ``mae``, ``wape`` = sum|e| / sum|y|, ``mape`` = mean |e| / |y| over y != 0 (both as fractions),
    ``r2`` = 1 - SSE / SST, plus ``n`` (values compared) and ``mape_coverage`` (share with y != 0)."""
    p = np.asarray(predicted, dtype=np.float64).ravel()
    y = np.asarray(actual, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{p.shape[0]} forecasts for {y.shape[0]} actual values")
    keep = np.isfinite(y) & np.isfinite(p)
    p, y = p[keep], y[keep]
    if not len(y):
        raise ValueError("no finite actual value to compare forecasts with")
    err = p - y
    abs_err = np.abs(err)
    nonzero = y != 0
    sst = float(((y - y.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt((err**2).mean())),
        "mae": float(abs_err.mean()),
        "wape": float(abs_err.sum() / max(np.abs(y).sum(), 1e-300)),
        "mape": float((abs_err[nonzero] / np.abs(y[nonzero])).mean()) if nonzero.any() else float("nan"),
        "r2": float(1.0 - (err**2).sum() / sst) if sst > 0 else float("nan"),
        "n": float(len(y)),
        "mape_coverage": float(nonzero.mean()),
    }
