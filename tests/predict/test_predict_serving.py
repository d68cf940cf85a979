"""Serving a predictor: by name from models/, checked against the scenario, and its forecast reaching the Eq. 23
mask of the engine (what the bridge and the environments run), without importing training code."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import numpy as np
import pytest

from tests.predictor_helpers import make_predictor
from twin_service.config import BITS_PER_MB, load_params
from twin_service.engine import Engine
from twin_service.engine.recording import Recording
from twin_service.envs.load_series import replay_engine
from twin_service.policies import ModelRegistry, UnknownPolicyError, migration_policy
from twin_service.predict import PersistenceForecaster
from twin_service.predict.base import LoadWindow
from twin_service.predict.naive import WindowMeanForecaster
from twin_service.predict.neural import NeuralForecaster, PredictorError
from twin_service.predict.registry import load_forecaster, predictor_names
from twin_service.scenario.folder import Scenario

SERVING_MODULES = ("base", "features", "manifest", "models", "naive", "neural", "registry")


def test_serving_never_imports_training_code():
    import twin_service.predict as predict

    folder = Path(predict.__file__).parent
    for name in SERVING_MODULES:
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {
            node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module is not None
        } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        training = {
            m for m in imported if m.startswith(("twin_service.predict.train", "twin_service.predict.evaluate"))
        }
        assert not training, f"predict/{name}.py imports {training}"
        assert not any(m.startswith(("twin_service.learn", "twin_service.envs")) for m in imported)


def test_predictors_by_name_and_checked_against_the_scenario(tmp_path):
    params = load_params(Path("sumo_scenarios/city"))
    assert isinstance(load_forecaster("persistence", params, tmp_path), PersistenceForecaster)
    assert isinstance(load_forecaster("window-mean", params, tmp_path), WindowMeanForecaster)
    make_predictor(tmp_path, "city-lt", param_hash=params.param_hash, n_series=87)
    served = load_forecaster("city-lt", params, tmp_path)
    assert isinstance(served, NeuralForecaster) and served.window == 6 and served.horizon == 1
    assert predictor_names(tmp_path) == ["persistence", "window-mean", "city-lt"]
    with pytest.raises(UnknownPolicyError, match="choose one of persistence, window-mean, city-lt"):
        load_forecaster("nope", params, tmp_path)
    make_predictor(tmp_path, "other-city", param_hash="0000000000000000", n_series=87)
    with pytest.raises(PredictorError, match="trained on scenario parameters 0000000000000000"):
        load_forecaster("other-city", params, tmp_path)
    make_predictor(tmp_path, "slow-ticks", param_hash=params.param_hash, n_series=87, tick_s=30.0)
    with pytest.raises(PredictorError, match="30 s steps"):
        load_forecaster("slow-ticks", params, tmp_path)
    make_predictor(tmp_path, "per-server", param_hash=params.param_hash, n_series=87, scaling="per-series")
    assert load_forecaster("per-server", params, tmp_path, n_servers=87).name == "per-server"
    with pytest.raises(PredictorError, match="scaled per series for 87 servers, the scenario has 60"):
        load_forecaster("per-server", params, tmp_path, n_servers=60)
    assert load_forecaster("city-lt", params, tmp_path, n_servers=60).name == "city-lt"  # one scaling for all
    make_predictor(tmp_path, "pems", param_hash="", n_series=4, source="series")
    with pytest.raises(PredictorError, match="not on server loads"):
        load_forecaster("pems", params, tmp_path)


def test_policies_and_predictors_share_models_without_confusion(tmp_path, caplog):
    make_predictor(tmp_path, "city-lt", param_hash="c26adfa3cb0d87bd", n_series=87)
    registry = ModelRegistry(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert registry.manifests() == []  # a predictor is neither listed as a policy nor warned about
    assert not caplog.records
    with pytest.raises(UnknownPolicyError, match="is a workload predictor"):
        registry.manifest("city-lt")
    with pytest.raises(UnknownPolicyError, match=r"unknown migration policy 'city-lt': choose one of \[") as err:
        migration_policy("city-lt", registry=registry, n_servers=87)
    assert "city-lt'" not in str(err.value).split("choose one of")[1]  # not offered as a policy


def test_a_short_history_is_padded_and_a_long_one_cut(tmp_path):
    make_predictor(tmp_path, "p", param_hash="x", n_series=3, bias_std=0.0)
    f = NeuralForecaster.load(tmp_path / "p")
    load = np.array([[1e8, 2e8, 0.0]])
    one = f.forecast(LoadWindow(load, np.ones((1, 3))))
    assert one == pytest.approx(load[0])  # zero output: the last load (delta target)
    many = np.vstack([np.full((10, 3), 7e8), load])
    assert f.forecast(LoadWindow(many, np.ones((11, 3)))) == pytest.approx(load[0])


class OverloadServer:
    """Forecasts that server ``index`` will be overloaded; the others keep their load (persistence)."""

    name, version, window, horizon = "overload", "1", 3, 1

    def __init__(self, index: int, load_max_bits: float) -> None:
        self.index = index
        self.value = 1.5 * load_max_bits

    def forecast(self, history: LoadWindow) -> np.ndarray:
        out = history.load_bits[-1].copy()
        out[self.index] = self.value
        return out


def _engine(small_scenario: Path, small_recording: Path, forecaster) -> Engine:
    return replay_engine(Scenario.load(small_scenario), Recording(small_recording), frame=True, forecaster=forecaster)


def test_a_forecast_overload_masks_the_server_and_no_twin_goes_there(small_scenario, small_recording):
    plain = _engine(small_scenario, small_recording, None)
    for _ in range(60):
        _, ctx = plain.tick()
        plain.apply(plain.decisions.decide(ctx))
    busiest = int(np.argmax(np.bincount(ctx.host, minlength=len(plain.server_ids))[:-1]))
    assert ctx.observation.mask[:, busiest].any()  # reachable and with room under persistence

    engine = _engine(small_scenario, small_recording, OverloadServer(busiest, float(plain.load_max_bits[busiest])))
    hosted_there = []
    for _ in range(60):
        frame, ctx = engine.tick()
        assert not ctx.observation.mask[:, busiest].any()  # Eq. 23 on the forecast: nobody may move there
        assert ctx.observation.predicted_load_bits[busiest] == pytest.approx(1.5 * engine.load_max_bits[busiest])
        assert (
            frame is not None and frame.server_columns["predicted_load_bits"][busiest] > engine.load_max_bits[busiest]
        )
        decisions = engine.decisions.decide(ctx)
        assert not (decisions.target == busiest).any()
        engine.apply(decisions)
        hosted_there.append(int((ctx.host == busiest).sum()))
    assert hosted_there[-1] == 0  # whoever was there has moved away


def test_the_engine_feeds_the_predictor_its_own_load_history(small_scenario, small_recording, tmp_path):
    sc = Scenario.load(small_scenario)
    make_predictor(tmp_path, "p", param_hash=sc.params.param_hash, n_series=len(sc.layout), seed=4)
    forecaster = load_forecaster("p", sc.params, tmp_path)
    engine = _engine(small_scenario, small_recording, forecaster)
    loads, hosted = [], []
    for _ in range(12):
        frame, ctx = engine.tick()
        engine.apply(engine.decisions.decide(ctx))
        loads.append(frame.server_columns["load_bits"])
        hosted.append(frame.server_columns["hosted"])
    expected = forecaster.forecast(LoadWindow(np.array(loads[-6:]), np.array(hosted[-6:])))
    assert np.array_equal(ctx.observation.predicted_load_bits, expected)
    assert np.array_equal(frame.server_columns["predicted_load_bits"], expected)
    assert not np.allclose(expected, loads[-1])  # a real forecast, not the current load
    assert ctx.observation.features.shape[1] == 2 * len(sc.layout) - 1
    assert (expected >= 0).all() and expected.max() < 1e3 * BITS_PER_MB


def test_run_refuses_an_unknown_predictor_before_starting_anything():
    from typer.testing import CliRunner

    from twin_service.cli import app

    result = CliRunner().invoke(app, ["run", "--ticks", "1", "--predictor", "crystal-ball"])
    assert result.exit_code == 2
    assert "unknown workload predictor 'crystal-ball'; choose one of persistence, window-mean" in result.output
