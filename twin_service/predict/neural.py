"""Stored predictors: save and load ``models/<name>/`` (manifest + safetensors), and forecast with one.

This is the serving side: it imports no training code. Weights are read with ``safetensors`` (no pickle,
so a model file cannot run code); the network is rebuilt from the manifest before its weights are loaded.
The forecast is :func:`~twin_service.predict.features.model_input`, the network, then
:func:`~twin_service.predict.features.decode_forecast`: the functions training used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import ValidationError
from torch import nn

from twin_service.config import describe_errors
from twin_service.policies.errors import ModelError
from twin_service.policies.finite import check_finite_weights
from twin_service.predict.base import LoadWindow
from twin_service.predict.features import Scaler, decode_forecast, model_input, window_values
from twin_service.predict.manifest import MANIFEST_FILE, WEIGHTS_FILE, PredictorManifest
from twin_service.predict.models import build_network


class PredictorError(ModelError):
    """A stored predictor is missing, unreadable, or does not fit where it would serve."""


def save_predictor(folder: str | Path, manifest: PredictorManifest, state_dict: Mapping[str, torch.Tensor]) -> Path:
    """Write ``manifest.json`` and ``weights.safetensors`` into ``folder`` (named after the predictor)."""
    from safetensors.torch import save_file

    out = Path(folder)
    if out.name != manifest.name:
        raise PredictorError(f"a model folder must be named after its model: {out.name!r} != {manifest.name!r}")
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"name": manifest.name, "version": manifest.version})
    (out / MANIFEST_FILE).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
    return out


def read_manifest(folder: str | Path) -> PredictorManifest:
    """The manifest in ``folder``; :class:`PredictorError` if it is missing or not a predictor's."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise PredictorError(f"no predictor at {folder} (no {MANIFEST_FILE})")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictorError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("kind") != "predictor":
        kind = raw.get("kind") if isinstance(raw, dict) else None
        raise PredictorError(f"{path} describes a {kind or 'non-predictor'} model, not a workload predictor")
    try:
        manifest = PredictorManifest.model_validate(raw)
    except ValidationError as exc:
        raise PredictorError(f"{path}: not a valid predictor manifest: {describe_errors(exc)}") from exc
    if manifest.name != Path(folder).name:
        raise PredictorError(
            f"{path}: manifest names the predictor {manifest.name!r}, its folder is {Path(folder).name!r}"
        )
    return manifest


def load_network(manifest: PredictorManifest, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """The manifest's network with these weights, in eval mode; a shape or key mismatch is a :class:`PredictorError`."""
    try:
        network = build_network(manifest.network.kind, len(manifest.features), manifest.network.options)
        network.load_state_dict(dict(state_dict), strict=True)
    except (RuntimeError, ValueError, TypeError, KeyError, MemoryError) as exc:
        first = " ".join(str(exc).split())[:600] or type(exc).__name__  # torch's message, on one line
        raise PredictorError(f"predictor {manifest.name!r}: weights do not fit its network: {first}") from exc
    return network.eval()


class NeuralForecaster:
    """A trained network as a :class:`~twin_service.predict.base.LoadForecaster`."""

    def __init__(self, manifest: PredictorManifest, network: nn.Module) -> None:
        self.manifest = manifest
        self.network = network.eval()
        self.name = manifest.name
        self.version = manifest.version
        self.window = manifest.window
        self.horizon = manifest.horizon
        self.features = tuple(manifest.features)
        try:
            self.scaler = Scaler.from_dict(manifest.scaler)
        except (ValueError, TypeError) as exc:
            raise PredictorError(
                f"predictor {manifest.name!r}: its scaling (manifest 'scaler') is unusable: {exc}"
            ) from exc
        fold = getattr(self.network, "fold_for_serving", None)
        if fold is not None:
            fold()

    @classmethod
    def load(cls, folder: str | Path) -> NeuralForecaster:
        """Read ``folder`` (``manifest.json`` and ``weights.safetensors``) without pickle."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        manifest = read_manifest(folder)
        weights = Path(folder) / WEIGHTS_FILE
        if not weights.is_file():
            raise PredictorError(f"predictor {manifest.name!r} has no {WEIGHTS_FILE}")
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise PredictorError(f"{weights}: unreadable weights: {exc}") from exc
        try:
            check_finite_weights(f"predictor {manifest.name!r}", state)
        except ModelError as exc:
            raise PredictorError(str(exc)) from exc
        return cls(manifest, load_network(manifest, state))

    def forecast_values(self, values: NDArray[np.floating], batch_rows: int = 65536) -> NDArray[np.float64]:
        """Forecasts ``(..., M)`` on the original scale from raw windows ``(..., T, M, F)`` (any T)."""
        if self.scaler.per_series and np.shape(values)[-2] != self.scaler.mean.shape[0]:
            raise PredictorError(
                f"predictor {self.name!r} was scaled per series for {self.scaler.mean.shape[0]} series; "
                f"got {np.shape(values)[-2]}"
            )
        x = model_input(values, self.scaler, self.window)  # (..., M, T, F)
        lead = x.shape[:-2]
        flat = torch.from_numpy(x.reshape(-1, self.window, x.shape[-1]))
        # One thread: torch's second thread only waits for a core that SUMO's worker or another process holds
        # (a tick's forecast took 40x longer with two on this loaded machine). Set per call, as torch's setting
        # is the process's; restoring it costs microseconds.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                out = np.concatenate(
                    [self.network(flat[i : i + batch_rows]).numpy() for i in range(0, max(len(flat), 1), batch_rows)]
                )
        finally:
            torch.set_num_threads(threads)
        last = np.asarray(values, dtype=np.float64)[..., -1, :, 0]
        forecast = decode_forecast(out.reshape(lead), last, self.scaler, self.manifest.target)
        # Gaps (NaN) in the window give NaN for that series; anything else non-finite is the network's own doing.
        valid = np.isfinite(np.asarray(values, dtype=np.float64)).all(axis=(-3, -1))
        if not np.isfinite(forecast[valid]).all():
            raise PredictorError(
                f"predictor {self.name!r} produced non-finite forecasts from finite windows; refusing to use them"
            )
        if self.manifest.data.source == "city":  # a server's load is never negative
            forecast = np.maximum(forecast, 0.0)
        return forecast

    def forecast(self, history: LoadWindow) -> NDArray[np.float64]:
        """``(M,)`` each server's load ``horizon`` ticks after the window's last, bits."""
        return self.forecast_values(window_values(history, self.features))
