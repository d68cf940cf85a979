"""The model's input and output, built by one function for training and for serving.

A predictor reads, for every series (server), the last ``window`` steps of a few features and forecasts the
first feature ``horizon`` steps after the last one. For the city the features are each server's load S'_m
(Eq. 8, backlog included, bits) and the twins it hosts (paper A's flow c_m); for a series file there is one
feature, the value itself.

:func:`model_input` turns raw values into the network's scaled input and :func:`decode_forecast` turns the
network's output back into a forecast on the original scale. Training builds every window of every day
with these two functions and serving builds the window of the current tick with them, so the two cannot
drift apart. Scaling is fitted on the training part only (:meth:`Scaler.fit`).

Networks predict the change of the target over the horizon in units of its scale (``target="delta"``)
or the target's scaled level (``target="level"``); the same for every network of a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from twin_service.predict.base import LoadWindow

CITY_FEATURES = ("load_bits", "hosted")
"""What the city predictor reads of each server per tick: its load S'_m (the target) and twins hosted."""
SERIES_FEATURES = ("value",)
"""A series file has one feature per column: the value itself (the target)."""

Target = Literal["delta", "level"]
Scaling = Literal["global", "per-series"]


@dataclass(frozen=True)
class Scaler:
    """Standardisation of each feature, ``(x - mean) / std``, fitted on the training part only.

    ``mean`` and ``std`` are ``(1, F)`` (one scale for all series: ``global``) or ``(M, F)`` (one per series:
    ``per-series``); they broadcast over the series axis of a window.
    """

    mean: NDArray[np.float64]
    std: NDArray[np.float64]

    @classmethod
    def fit(cls, parts: Sequence[NDArray[np.floating]], scaling: Scaling = "global") -> Scaler:
        """Fit on the training parts, each ``(N, M, F)``; non-finite values (gaps) are ignored."""
        if not parts:
            raise ValueError("no training data to fit the scaling on")
        data = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts], axis=0)
        axis: tuple[int, ...] = (0, 1) if scaling == "global" else (0,)
        finite = np.isfinite(data)
        count = finite.sum(axis=axis, keepdims=True)
        if not count.any():
            raise ValueError("the training part holds no finite value")
        filled = np.where(finite, data, 0.0)
        mean = filled.sum(axis=axis, keepdims=True) / np.maximum(count, 1)
        var = (np.where(finite, data - mean, 0.0) ** 2).sum(axis=axis, keepdims=True) / np.maximum(count, 1)
        std = np.sqrt(var)
        # A constant (or never observed) feature keeps unit scale: its scaled value is then simply 0.
        std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
        return cls(mean=mean[0].astype(np.float64), std=std[0].astype(np.float64))

    @property
    def per_series(self) -> bool:
        return self.mean.shape[0] > 1

    def to_dict(self) -> dict[str, list[list[float]]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict[str, list[list[float]]]) -> Scaler:
        mean = np.asarray(values["mean"], dtype=np.float64)
        std = np.asarray(values["std"], dtype=np.float64)
        if mean.ndim != 2 or mean.shape != std.shape or not (std > 0).all():
            raise ValueError("a scaler needs mean and std of the same (series, features) shape, std > 0")
        return cls(mean, std)


def window_values(history: LoadWindow, features: Sequence[str] = CITY_FEATURES) -> NDArray[np.float64]:
    """``(T, M, F)``: the features a predictor reads, from the servers' recent history (oldest tick first)."""
    columns = {"load_bits": history.load_bits, "hosted": history.hosted}
    unknown = [f for f in features if f not in columns]
    if unknown:
        raise ValueError(f"a server-load window has no feature {unknown}; it has {list(columns)}")
    return np.stack([np.asarray(columns[f], dtype=np.float64) for f in features], axis=-1)


def model_input(values: NDArray[np.floating], scaler: Scaler, window: int) -> NDArray[np.float32]:
    """The network's input from raw values: ``(..., T', M, F)`` -> ``(..., M, window, F)``, scaled, float32.

    The last ``window`` steps are used; a shorter history (a run's first ticks) is padded by repeating its
    oldest step, so that the first forecasts of a run are persistence-like rather than wrong.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim < 3:
        raise ValueError(f"values must be (..., T, M, F), got shape {x.shape}")
    steps = x.shape[-3]
    if steps == 0:
        raise ValueError("no step of history to forecast from")
    if steps >= window:
        x = x[..., steps - window :, :, :]
    else:
        first = np.take(x, [0], axis=-3)
        x = np.concatenate([np.repeat(first, window - steps, axis=-3), x], axis=-3)
    scaled = (x - scaler.mean) / scaler.std
    return np.ascontiguousarray(np.swapaxes(scaled, -3, -2), dtype=np.float32)


def decode_forecast(
    output: NDArray[np.floating], last_values: NDArray[np.floating], scaler: Scaler, target: Target
) -> NDArray[np.float64]:
    """The forecast on the original scale from the network's output ``(..., M)``.

    ``last_values`` ``(..., M)`` is the target's last observed raw value (what ``delta`` adds to).
    """
    out = np.asarray(output, dtype=np.float64)
    mean, std = scaler.mean[:, 0], scaler.std[:, 0]
    if target == "delta":
        return np.asarray(last_values, dtype=np.float64) + out * std
    return out * std + mean


def training_target(
    future: NDArray[np.floating], last_values: NDArray[np.floating], scaler: Scaler, target: Target
) -> NDArray[np.float32]:
    """What the network is trained to output for a raw future target value: the inverse of :func:`decode_forecast`."""
    mean, std = scaler.mean[:, 0], scaler.std[:, 0]
    fut = np.asarray(future, dtype=np.float64)
    if target == "delta":
        return ((fut - np.asarray(last_values, dtype=np.float64)) / std).astype(np.float32)
    return ((fut - mean) / std).astype(np.float32)
