"""A model that cannot be trusted is answered with 409 naming it, never a 500: NaN weights (refused when the model
is loaded for a request) and a network whose outputs overflow (refused on the call that produced them)."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from tests.predictor_helpers import make_predictor
from twin_service.api import create_app

RUN_PARAM_HASH = "0123456789abcdef"  # what the `filled` fixture's run names
REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def test_a_model_with_nan_weights_gets_409_naming_it(settings, filled):
    folder = settings.models_dir / "dm-mappo-city"
    shutil.copytree(REPO_MODELS / "dm-mappo-city", folder)
    weights = load_file(str(folder / "weights.safetensors"))
    first = next(iter(weights))
    weights[first] = weights[first].clone().fill_(float("nan"))
    save_file(weights, str(folder / "weights.safetensors"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        single = client.post("/v1/decisions/migration", json={"policy": "dm-mappo-city"})
        batch = client.post("/v1/decisions/batch", json={"migration_policy": "dm-mappo-city"})
        fine = client.post("/v1/decisions/migration", json={})
    for r in (single, batch):
        assert r.status_code == 409, r.text
        assert "'dm-mappo-city': its weights hold NaN" in r.json()["detail"]
    assert fine.status_code == 200  # the default heuristic still serves


def test_a_predictor_whose_forecasts_overflow_gets_409_naming_it(settings, filled):
    make_predictor(settings.models_dir, "overflow", param_hash=RUN_PARAM_HASH, n_series=5)
    path = settings.models_dir / "overflow" / "weights.safetensors"
    weights = load_file(str(path))
    weights["out.weight"].fill_(3e38)  # finite, so it loads; its outputs are not
    weights["out.bias"].fill_(3e38)
    save_file(weights, str(path))
    with TestClient(create_app(settings, predictor="overflow"), raise_server_exceptions=False) as client:
        r = client.post("/v1/decisions/migration", json={})
    assert r.status_code == 409, r.text
    assert "predictor 'overflow' produced non-finite forecasts" in r.json()["detail"]
