"""Table II on held-out data: every trained predictor against persistence and the window mean.

Predictors are grouped by network (several seeds of one network give its mean and spread); every one
forecasts every window of the test parts through the serving path
(:meth:`~twin_service.predict.neural.NeuralForecaster.forecast_values`). Figures are on the original
scale (bits for the city) and on the normalised scale (the series divided by the standard deviation of
the target on the training part, as scaled for the networks: RMSE and MAE in those units; WAPE, MAPE and
R^2 do not depend on the scale).

Outputs in the chosen folder: ``metrics.json`` (model -> figures), ``evaluation.json`` (what was compared
on which data), ``table.md`` (Table II), and Fig. 5-style plots: predicted against actual load of the
busiest series over the first test part, and the error over time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from twin_service.files import write_text_atomic
from twin_service.predict.features import Scaler
from twin_service.predict.metrics import METRICS, forecast_errors
from twin_service.predict.naive import persistence_forecast, window_mean_forecast
from twin_service.predict.neural import NeuralForecaster, PredictorError
from twin_service.predict.series import SeriesData, windows

PERSISTENCE = "persistence"
WINDOW_MEAN = "window mean"


@dataclass
class ModelScore:
    """One model (a network over its seeds, or a naive forecast) on the test windows."""

    name: str
    original: dict[str, float]
    normalised: dict[str, float]
    std: dict[str, float] = field(default_factory=dict)
    """Standard deviation of each figure across seeds (empty for one run)."""
    runs: list[dict[str, Any]] = field(default_factory=list)
    """Per trained predictor: its name, seed and figures."""


@dataclass
class Evaluation:
    scores: list[ModelScore]
    window: int
    horizon: int
    step_s: float
    test_parts: list[str]
    busy_series: str
    test_values: int

    def score(self, name: str) -> ModelScore:
        return next(s for s in self.scores if s.name == name)


def _test_windows(data: SeriesData, window: int, horizon: int) -> tuple[list[NDArray], list[NDArray]]:
    inputs, future = [], []
    for part in data.test:
        x, y, _ = windows(part.values, window, horizon)
        if len(x):
            inputs.append(x)
            future.append(y)
    if not inputs:
        raise ValueError(f"the test part holds no complete window of {window + horizon} steps (window + horizon)")
    return inputs, future


def _normaliser(scaler: Scaler) -> NDArray[np.float64]:
    """Per series (or one for all), the training standard deviation of the target."""
    return scaler.std[:, 0]


def _figures(pred: Sequence[NDArray], actual: Sequence[NDArray], scale: NDArray[np.float64]) -> tuple[dict, dict]:
    p, y = np.concatenate(pred), np.concatenate(actual)
    return forecast_errors(p, y), forecast_errors(p / scale, y / scale)


def _check_compatible(forecasters: Sequence[NeuralForecaster], data: SeriesData) -> None:
    first = forecasters[0].manifest
    for f in forecasters:
        m = f.manifest
        if (m.window, m.horizon) != (first.window, first.horizon):
            raise PredictorError(
                f"{m.name} reads {m.window} steps for {m.horizon} ahead, {first.name} {first.window} for "
                f"{first.horizon}: a table compares one window and horizon"
            )
        if tuple(m.features) != data.features:
            raise PredictorError(f"{m.name} reads {m.features}, the data has {list(data.features)}")
        if m.data.n_series != data.n_series and m.scaling == "per-series":
            raise PredictorError(f"{m.name} was scaled for {m.data.n_series} series, the data has {data.n_series}")
        if abs(m.data.step_s - data.step_s) > 1e-9:
            raise PredictorError(f"{m.name} was trained on {m.data.step_s:g} s steps, the data has {data.step_s:g} s")


def evaluate(forecasters: Sequence[NeuralForecaster], data: SeriesData) -> tuple[Evaluation, dict[str, Any]]:
    """Table II over the test parts of ``data``; also returns the forecasts of the first test part (for plots)."""
    if not forecasters:
        raise ValueError("no predictor to evaluate")
    _check_compatible(forecasters, data)
    window, horizon = forecasters[0].window, forecasters[0].horizon
    inputs, future = _test_windows(data, window, horizon)
    # The normalised scale of the first predictor (the one a table is about) for every model alike.
    scale = _normaliser(forecasters[0].scaler)
    first_part: dict[str, Any] = {"actual": future[0]}
    groups: dict[str, list[tuple[NeuralForecaster, dict, dict]]] = {}
    for f in forecasters:
        pred = [f.forecast_values(x) for x in inputs]
        original, normalised = _figures(pred, future, scale)
        groups.setdefault(f.manifest.algorithm, []).append((f, original, normalised))
        first_part.setdefault(f.manifest.algorithm, pred[0])
    scores = []
    for algorithm, runs in groups.items():
        orig = {k: float(np.mean([r[1][k] for r in runs])) for k in METRICS}
        norm = {k: float(np.mean([r[2][k] for r in runs])) for k in METRICS}
        std = {k: float(np.std([r[1][k] for r in runs], ddof=1)) for k in METRICS} if len(runs) > 1 else {}
        per_run = [
            {"name": f.name, "seed": f.manifest.seed, **{k: o[k] for k in METRICS}, "normalised": n} for f, o, n in runs
        ]
        scores.append(ModelScore(algorithm, orig, norm, std, per_run))
    for name, forecast in ((PERSISTENCE, persistence_forecast), (WINDOW_MEAN, None)):
        pred = [forecast(x) if forecast else window_mean_forecast(x, window) for x in inputs]
        original, normalised = _figures(pred, future, scale)
        scores.append(ModelScore(name, original, normalised))
        first_part[name] = pred[0]
    busiest = int(np.nanargmax(np.nanmean(future[0], axis=0)))
    names = data.spec.series_names
    evaluation = Evaluation(
        scores=scores,
        window=window,
        horizon=horizon,
        step_s=data.step_s,
        test_parts=[p.name for p in data.test],
        busy_series=names[busiest] if busiest < len(names) else str(busiest),
        test_values=int(sum(np.isfinite(y).sum() for y in future)),
    )
    first_part["busy_index"] = busiest
    return evaluation, first_part


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def _fmt(value: float, std: float | None, kind: str, unit_scale: float) -> str:
    if kind in ("wape", "mape"):
        text = f"{100 * value:.3f} %"
        return text if std is None else f"{100 * value:.3f} ± {100 * std:.3f} %"
    if kind == "r2":
        return f"{value:.4f}" if std is None else f"{value:.4f} ± {std:.4f}"
    v = value / unit_scale
    return f"{v:.3f}" if std is None else f"{v:.3f} ± {std / unit_scale:.3f}"


def table_markdown(evaluation: Evaluation, unit: str = "", unit_scale: float = 1.0) -> str:
    """Table II (one row per model; mean ± standard deviation across seeds where there are several)."""
    head = [f"RMSE{f' ({unit})' if unit else ''}", f"MAE{f' ({unit})' if unit else ''}", "WAPE", "MAPE", "R²"]
    lines = [
        "| model | " + " | ".join(head) + " | RMSE (norm.) | MAE (norm.) | runs |",
        "|---|" + "---:|" * (len(head) + 3),
    ]
    for s in evaluation.scores:
        cells = [_fmt(s.original[k], s.std.get(k), k, unit_scale) for k in METRICS]
        cells += [f"{s.normalised['rmse']:.4f}", f"{s.normalised['mae']:.4f}", str(max(len(s.runs), 1))]
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def record_test_figures(evaluation: Evaluation, folders: Sequence[str | Path]) -> None:
    """Write each evaluated predictor's own test figures into its manifest (``evaluation.test``)."""
    from twin_service.predict.manifest import MANIFEST_FILE, PredictorManifest

    figures = {run["name"]: run for score in evaluation.scores for run in score.runs}
    for folder in folders:
        path = Path(folder) / MANIFEST_FILE
        manifest = PredictorManifest.model_validate_json(path.read_text())
        run = figures.get(manifest.name)
        if run is None:
            continue
        test = {k: float(run[k]) for k in ("rmse", "mae", "wape", "mape", "r2")}
        updated = manifest.model_copy(update={"evaluation": {**manifest.evaluation, "test": test}})
        write_text_atomic(path, json.dumps(updated.model_dump(mode="json"), indent=2) + "\n")


def metrics_dict(evaluation: Evaluation) -> dict[str, Any]:
    """``metrics.json``: model -> {rmse, mae, wape, mape, r2} on the original scale, with the normalised-scale
    figures, the spread across seeds and each run beside them."""
    out: dict[str, Any] = {}
    for s in evaluation.scores:
        out[s.name] = {
            **{k: s.original[k] for k in METRICS},
            "normalised": {k: s.normalised[k] for k in METRICS},
            "std": s.std,
            "runs": s.runs,
        }
    return out


def write_outputs(
    evaluation: Evaluation,
    first_part: dict[str, Any],
    out: str | Path,
    about: dict[str, Any],
    *,
    unit: str = "",
    unit_scale: float = 1.0,
) -> Path:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics_dict(evaluation), indent=2) + "\n")
    info = {
        **about,
        "window": evaluation.window,
        "horizon_steps": evaluation.horizon,
        "horizon_s": evaluation.horizon * evaluation.step_s,
        "test_parts": evaluation.test_parts,
        "test_values": evaluation.test_values,
        "busy_series": evaluation.busy_series,
        "normalised_scale": "each value divided by the training standard deviation of the target "
        "(RMSE and MAE in those units; WAPE, MAPE and R^2 are scale-free)",
        "wape": "sum |forecast - actual| / sum |actual| (our reading of paper A's 'error rate')",
        "mape": "mean |forecast - actual| / |actual| over the actual values that are not zero",
    }
    (folder / "evaluation.json").write_text(json.dumps(info, indent=2) + "\n")
    (folder / "table.md").write_text(table_markdown(evaluation, unit, unit_scale) + "\n")
    plot_first_part(evaluation, first_part, folder, unit=unit, unit_scale=unit_scale)
    return folder


def plot_first_part(
    evaluation: Evaluation, first_part: dict[str, Any], folder: Path, *, unit: str = "", unit_scale: float = 1.0
) -> None:
    """Fig. 5-style: forecasts against the actual value of the busiest series over the first test part, a
    zoom on its busiest stretch, and every model's absolute error over time (a rolling mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    j = first_part["busy_index"]
    actual = first_part["actual"][:, j] / unit_scale
    step = evaluation.step_s
    t = (np.arange(len(actual)) + evaluation.window - 1 + evaluation.horizon) * step
    models = [s.name for s in evaluation.scores]
    colours = dict(zip(models, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3, strict=False))
    span = max(10, min(len(actual) // 12, 300))
    centre = int(np.nanargmax(np.convolve(np.nan_to_num(actual), np.ones(span), mode="same")))
    lo, hi = max(0, centre - span // 2), min(len(actual), centre + span // 2)
    fig, axes = plt.subplots(3, 1, figsize=(11, 10))
    for ax, (a, b) in zip(axes[:2], ((0, len(actual)), (lo, hi)), strict=True):
        for name in models:
            ax.plot(t[a:b], first_part[name][a:b, j] / unit_scale, lw=0.9, color=colours[name], label=name)
        ax.plot(t[a:b], actual[a:b], color="black", lw=1.4, label="actual", zorder=5)
        ax.set_ylabel(f"{evaluation.busy_series}{f' ({unit})' if unit else ''}")
        ax.grid(alpha=0.3)
    axes[0].set_title(
        f"{evaluation.test_parts[0]}: forecast {evaluation.horizon} step(s) ({evaluation.horizon * step:g} s) ahead "
        f"against the actual value of the busiest series"
    )
    axes[1].set_title("zoom on its busiest stretch")
    axes[0].legend(ncol=4, fontsize=8)
    roll = max(1, min(60, len(actual) // 50))
    kernel = np.ones(roll) / roll
    for name in models:
        err = np.abs(first_part[name][:, j] / unit_scale - actual)
        axes[2].plot(t, np.convolve(np.nan_to_num(err), kernel, mode="same"), lw=0.9, color=colours[name], label=name)
    axes[2].set_title(f"absolute error over time (rolling mean over {roll} steps)")
    axes[2].set_xlabel("time in the test part (s)")
    axes[2].set_ylabel(f"|error|{f' ({unit})' if unit else ''}")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "fig5_busy_series.png", dpi=110)
    plt.close(fig)

    # Error rate (WAPE) per model, as Table II's bar of the paper.
    fig, ax = plt.subplots(figsize=(8, 3.6))
    wape = [100 * evaluation.score(n).original["wape"] for n in models]
    err = [100 * evaluation.score(n).std.get("wape", 0.0) for n in models]
    ax.bar(models, wape, yerr=err, color=[colours[n] for n in models], capsize=3)
    ax.set_ylabel("WAPE on the test part (%)")
    ax.set_title(f"error rate, {evaluation.horizon * step:g} s ahead")
    ax.tick_params(axis="x", labelrotation=20)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "wape.png", dpi=110)
    plt.close(fig)
