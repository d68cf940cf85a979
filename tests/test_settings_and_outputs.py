"""Issue 19's smaller refusals: ``TWIN_*`` settings checked before anything starts, the policy and predictor
variables honoured by ``run`` and ``api``, the data folder, a predictor that trained nothing, ``predictor evaluate``
leaving manifests alone unless asked, and ``./scripts/demo --help``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from twin_service.cli import app
from twin_service.config import REPO_ROOT, data_dir
from twin_service.envs.load_series import series_cache_dir
from twin_service.predict.series import load_series
from twin_service.predict.train import TrainArgs, train_predictor
from twin_service.scenario.days import days_dir

runner = CliRunner()


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_a_bad_api_key_setting_is_refused_before_the_run_starts():
    done = runner.invoke(app, ["run", "--ticks", "1"], env={"TWIN_API_KEY": "ключ-секрет"})
    line = _one_error_line(done.output)
    assert done.exit_code == 2 and "TWIN_API_KEY must be printable ASCII" in line
    assert "секрет" not in line  # a key is never echoed
    done = runner.invoke(app, ["api", "--redis-url", "redis://127.0.0.1:1"], env={"TWIN_API_KEY_READS": "true"})
    assert done.exit_code == 2
    assert "TWIN_API_KEY_READS asks the API key to guard reads, but no TWIN_API_KEY is set" in _one_error_line(
        done.output
    )
    done = runner.invoke(app, ["run", "--ticks", "1"], env={"TWIN_API_PORT": "99999"})
    assert done.exit_code == 2 and "api_port" in _one_error_line(done.output)


def test_run_and_api_read_the_policy_and_predictor_variables():
    done = runner.invoke(app, ["run", "--ticks", "1"], env={"TWIN_PREDICTOR": "../models/city-predictor"})
    assert done.exit_code == 2 and "unknown workload predictor '../models/city-predictor'" in done.output
    done = runner.invoke(app, ["api", "--redis-url", "redis://127.0.0.1:1"], env={"TWIN_MIGRATION_POLICY": "teleport"})
    assert done.exit_code == 2 and "unknown migration policy 'teleport'" in done.output
    done = runner.invoke(app, ["api", "--redis-url", "redis://127.0.0.1:1"], env={"TWIN_OFFLOAD_POLICY": "all-out"})
    assert done.exit_code == 2 and "unknown offload policy 'all-out'" in done.output


def test_the_data_folder_follows_twin_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TWIN_DATA_DIR", raising=False)
    assert data_dir() == REPO_ROOT / "data"  # a source checkout keeps its data beside the code (git-ignored)
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "cache"))
    assert days_dir() == tmp_path / "cache" / "days" and series_cache_dir() == tmp_path / "cache" / "series"


def _sine(path: Path, n: int = 400) -> Path:
    rows = ["time,a,b"] + [f"{i},{10 + np.sin(i / 5):.4f},{20 + np.cos(i / 7):.4f}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_predictor_whose_budget_went_on_preparing_the_data_is_not_saved(tmp_path: Path):
    data = load_series(_sine(tmp_path / "s.csv"))
    with pytest.raises(ValueError, match="no epoch was trained: preparing the data took"):
        train_predictor(data, TrainArgs(network="gru", max_train_s=0.0, epochs=1), "p", progress=False)


def _evaluation(model: Path) -> dict:
    return json.loads((model / "manifest.json").read_text())["evaluation"]


def test_predictor_evaluate_changes_a_manifest_only_with_record(tmp_path: Path):
    series = _sine(tmp_path / "s.csv")
    model = tmp_path / "models" / "p"
    train = ["predictor", "train", "--series", str(series), "--network", "gru", "--epochs", "1"]
    done = runner.invoke(app, [*train, "--steps-per-epoch", "2", "--out", str(model)])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in model.parent.iterdir()) == ["p"]  # written whole, no temporary folder left
    before = (model / "manifest.json").read_bytes()
    done = runner.invoke(app, ["predictor", "evaluate", "--models", str(model), "--out", str(tmp_path / "e")])
    assert done.exit_code == 0, done.output
    assert (model / "manifest.json").read_bytes() == before
    assert (tmp_path / "e" / "metrics.json").is_file()
    assert not [p for p in (tmp_path / "e").iterdir() if p.name.startswith(".")]
    done = runner.invoke(
        app, ["predictor", "evaluate", "--models", str(model), "--out", str(tmp_path / "e"), "--record"]
    )
    assert done.exit_code == 0 and "test" in _evaluation(model)
    again = runner.invoke(app, [*train, "--steps-per-epoch", "2", "--out", str(model)])
    assert again.exit_code == 2 and "--force" in again.output
    forced = runner.invoke(app, [*train, "--steps-per-epoch", "2", "--out", str(model), "--force"])
    assert forced.exit_code == 0 and "test" not in _evaluation(model)  # the new model, whole


def test_the_demo_help_tells_of_the_browser_mode():
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "demo"), "--help"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "--web" in done.stdout and "Usage: twin-service run" in done.stdout
