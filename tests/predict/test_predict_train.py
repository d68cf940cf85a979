"""Training in seconds: a predictor learns what persistence cannot, is stored without pickle, and the commands
write Table II with every model (the naive ones included)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from twin_service.cli import app
from twin_service.predict.evaluate import evaluate
from twin_service.predict.neural import NeuralForecaster, save_predictor
from twin_service.predict.series import load_series
from twin_service.predict.train import TrainArgs, train_predictor


def ramp_csv(path: Path, rows: int = 600, series: int = 3) -> Path:
    """Loads that climb 3 units a step and drain at once every 20 steps (phases differ per series)."""
    t = np.arange(rows)[:, None] + 7 * np.arange(series)[None, :]
    values = 3.0 * (t % 20) + 10.0
    lines = ["time," + ",".join(f"s{j}" for j in range(series))]
    lines += [f"{i}," + ",".join(f"{v:g}" for v in values[i]) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_short_training_beats_persistence_and_is_stored_without_pickle(tmp_path):
    data = load_series(ramp_csv(tmp_path / "ramp.csv"))
    args = TrainArgs(epochs=6, steps_per_epoch=40, batch_size=256, max_train_s=60, seed=3, loss="mse")
    result = train_predictor(data, args, "ramp-lt", command="pytest", progress=False)
    m = result.manifest
    assert m.algorithm == "LSTM-based Transformer" and m.window == 6 and m.horizon == 1 and m.seed == 3
    assert m.data.split.method == "chronological" and m.data.split.test == ["rows 480-600"]
    assert m.command == "pytest" and 1 <= m.training["best_epoch"] <= m.training["epochs_run"]
    assert set(m.evaluation["validation"]) == {"rmse", "mae", "wape", "mape", "r2"}
    folder = save_predictor(tmp_path / "models" / "ramp-lt", m, result.state_dict)
    with safe_open(str(folder / "weights.safetensors"), framework="pt") as f:  # a flat tensor file, no pickle
        assert "lstm.weight_ih_l0" in set(f.keys())
    served = NeuralForecaster.load(folder)
    evaluation, _ = evaluate([served], data)
    lt, persistence = evaluation.score("LSTM-based Transformer"), evaluation.score("persistence")
    assert lt.original["wape"] < 0.7 * persistence.original["wape"]
    assert lt.original["rmse"] < persistence.original["rmse"]
    window = data.test[0].values[:6][None]
    trained = NeuralForecaster(m, _network(result))
    assert np.allclose(served.forecast_values(window), trained.forecast_values(window))


def _network(result):
    from twin_service.predict.neural import load_network

    return load_network(result.manifest, result.state_dict)


def test_train_and_evaluate_commands_write_table_ii(tmp_path):
    csv = ramp_csv(tmp_path / "ramp.csv")
    runner = CliRunner()
    models = []
    for seed in (1, 2):
        out = tmp_path / "models" / f"ramp-gru-{seed}"
        r = runner.invoke(
            app,
            ["predictor", "train", "--series", str(csv), "--network", "gru", "--epochs", "2",
             "--steps-per-epoch", "20", "--seed", str(seed), "--out", str(out)],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        assert "GRU:" in r.output and (out / "manifest.json").is_file()
        models.append(str(out))
    manifest = json.loads((tmp_path / "models" / "ramp-gru-1" / "manifest.json").read_text())
    assert manifest["data"]["series_file"] == str(csv) and manifest["data"]["series_sha256"]
    assert "--seed 1" in manifest["command"] and manifest["kind"] == "predictor"
    r = runner.invoke(
        app, ["predictor", "evaluate", "--models", ",".join(models), "--out", str(tmp_path / "eval"), "--record"]
    )
    assert r.exit_code == 0, r.output
    assert "| GRU |" in r.output and "| persistence |" in r.output and "| window mean |" in r.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"GRU", "persistence", "window mean"}
    for figures in metrics.values():
        assert {"rmse", "mae", "wape", "mape", "r2"} <= set(figures)
        assert set(figures["normalised"]) == {"rmse", "mae", "wape", "mape", "r2"}
        assert figures["normalised"]["wape"] == pytest.approx(figures["wape"])  # global scale: WAPE is scale-free
    assert len(metrics["GRU"]["runs"]) == 2 and set(metrics["GRU"]["std"]) == {"rmse", "mae", "wape", "mape", "r2"}
    assert metrics["GRU"]["wape"] == pytest.approx(np.mean([run["wape"] for run in metrics["GRU"]["runs"]]))
    for name in ("fig5_busy_series.png", "wape.png", "table.md", "evaluation.json"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    about = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert about["test_parts"] == ["rows 480-600"] and about["horizon_steps"] == 1
    recorded = json.loads((tmp_path / "models" / "ramp-gru-1" / "manifest.json").read_text())["evaluation"]
    assert recorded["test"]["wape"] == pytest.approx(metrics["GRU"]["runs"][0]["wape"])


def test_a_table_compares_one_horizon(tmp_path):
    csv = ramp_csv(tmp_path / "ramp.csv")
    runner = CliRunner()
    for h in (1, 2):
        args = ["predictor", "train", "--series", str(csv), "--network", "lstm", "--epochs", "1",
                "--steps-per-epoch", "5", "--horizon", str(h), "--out", str(tmp_path / f"h{h}")]  # fmt: skip
        assert runner.invoke(app, args).exit_code == 0
    r = runner.invoke(
        app, ["predictor", "evaluate", "--models", f"{tmp_path / 'h1'},{tmp_path / 'h2'}", "--out", str(tmp_path / "e")]
    )
    assert r.exit_code == 2 and "one window and horizon" in r.output
