"""Stored models are finite or refused: at load (NaN weights, sizes that would allocate without bound, a broken
scaler) and on every call (a network whose outputs are not finite). Built from ``../shared/repro/craft_models.py``
(issue 19's reproducer), applied to copies of the committed models."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.predictor_helpers import make_predictor
from twin_service.observe import MigrationObservation, ServerTable
from twin_service.policies import ModelRegistry, PolicyError, migration_policy, offload_policy
from twin_service.policies.base import MigrationDecision, OffloadDecision, OffloadInputs
from twin_service.policies.decide import decide_migration, decide_offload
from twin_service.policies.errors import ModelOutputError
from twin_service.predict.base import LoadWindow
from twin_service.predict.neural import NeuralForecaster, PredictorError
from twin_service.predict.registry import load_forecaster

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def _clone(models: Path, src: str, dst: str, name: str | None = None) -> tuple[Path, dict]:
    folder = models / dst
    shutil.copytree(REPO_MODELS / src, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["name"] = name or dst
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, manifest


def _save(folder: Path, manifest: dict) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _flip_tail(folder: Path, start_from_end: int, stop_from_end: int) -> None:
    w = bytearray((folder / "weights.safetensors").read_bytes())
    for i in range(len(w) - start_from_end, len(w) - stop_from_end):
        w[i] = 0xFF  # 0xFFFFFFFF as float32 is NaN
    (folder / "weights.safetensors").write_bytes(bytes(w))


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """craft_models.py's corruptions, each a model folder of its own name."""
    m = tmp_path_factory.mktemp("models")
    for name in ("dm-mappo-city", "af-marl-city", "city-predictor", "mappo-paper-city"):
        shutil.copytree(REPO_MODELS / name, m / name)
    d, _ = _clone(m, "dm-mappo-city", "mig-trunc")
    w = (d / "weights.safetensors").read_bytes()
    (d / "weights.safetensors").write_bytes(w[: len(w) // 2])
    _flip_tail(_clone(m, "dm-mappo-city", "mig-flip")[0], 2000, 1000)
    d, _ = _clone(m, "dm-mappo-city", "mig-hdr")
    w = bytearray((d / "weights.safetensors").read_bytes())
    w[0:8] = struct.pack("<Q", 2**62)
    (d / "weights.safetensors").write_bytes(bytes(w))
    (_clone(m, "dm-mappo-city", "mig-empty")[0] / "weights.safetensors").write_bytes(b"")
    (_clone(m, "dm-mappo-city", "mig-noweights")[0] / "weights.safetensors").unlink()
    for name, change in {
        "mig-arch": lambda a: a.update(hidden=[64, 64]),
        "mig-kind": lambda a: a.update(kind="mlp"),
        "mig-unk": lambda a: a.update(kind="os.system"),
        "mig-huge": lambda a: a.update(hidden=[2**20, 2**20]),
        "mig-neg": lambda a: a.update(hidden=[-1, 32]),
        "mig-opts": lambda a: a.update(options={"candidates": -3, "execution": "bogus", "decision_chunk": 0}),
        "mig-opts2": lambda a: a.update(options={"candidates": 0, "execution": "greedy", "decision_chunk": "x"}),
    }.items():
        d, manifest = _clone(m, "dm-mappo-city", name)
        change(manifest["architecture"])
        _save(d, manifest)
    d, manifest = _clone(m, "dm-mappo-city", "mig-fields")
    manifest["observation"]["feature_dim"] = "fourteen"
    _save(d, manifest)
    d, manifest = _clone(m, "dm-mappo-city", "mig-extra")
    manifest["evil"] = 1
    _save(d, manifest)
    (_clone(m, "dm-mappo-city", "mig-notjson")[0] / "manifest.json").write_text("{nope")
    (_clone(m, "dm-mappo-city", "mig-list")[0] / "manifest.json").write_text("[1,2,3]")
    _clone(m, "dm-mappo-city", "mig-name", name="other-name")
    d, manifest = _clone(m, "mappo-paper-city", "paper-wrongw")
    shutil.copy(m / "dm-mappo-city" / "weights.safetensors", d / "weights.safetensors")
    _flip_tail(_clone(m, "af-marl-city", "off-flip")[0], 4000, 1000)
    d, manifest = _clone(m, "af-marl-city", "off-arch")
    options = manifest["architecture"]["options"]
    options.update({k: 7 for k, v in options.items() if isinstance(v, int)})
    _save(d, manifest)
    d, _ = _clone(m, "city-predictor", "pred-trunc")
    w = (d / "weights.safetensors").read_bytes()
    (d / "weights.safetensors").write_bytes(w[: len(w) // 2])
    _flip_tail(_clone(m, "city-predictor", "pred-flip")[0], 2000, 1000)
    for name, key, value in (
        ("pred-opts", "hidden", 16),
        ("pred-huge", "hidden", 2**22),
        ("pred-zero", "heads", 0),
    ):
        d, manifest = _clone(m, "city-predictor", name)
        manifest["network"]["options"][key] = value
        _save(d, manifest)
    d, manifest = _clone(m, "city-predictor", "pred-window0")
    manifest["window"] = 0
    _save(d, manifest)
    d, manifest = _clone(m, "city-predictor", "pred-scaler")
    manifest["scaler"]["std"] = [[0.0, 0.0]]
    _save(d, manifest)
    d, manifest = _clone(m, "city-predictor", "pred-scalernan")
    (d / "manifest.json").write_text(json.dumps(manifest).replace('"std": [[', '"std": [[NaN, '))
    d, manifest = _clone(m, "city-predictor", "pred-hash")
    manifest["data"]["scenario_param_hash"] = ""
    _save(d, manifest)
    return m


MIGRATION = [
    "mig-trunc", "mig-flip", "mig-hdr", "mig-empty", "mig-noweights", "mig-arch", "mig-kind", "mig-unk", "mig-huge",
    "mig-neg", "mig-opts", "mig-opts2", "mig-fields", "mig-extra", "mig-notjson", "mig-list", "mig-name",
    "paper-wrongw",
]  # fmt: skip
OFFLOAD = ["off-flip", "off-arch"]
PREDICTORS = [
    "pred-trunc", "pred-flip", "pred-opts", "pred-huge", "pred-zero", "pred-window0", "pred-scaler", "pred-scalernan",
    "pred-hash",
]  # fmt: skip


def test_the_committed_models_load_from_the_copies(crafted: Path):
    registry = ModelRegistry(crafted)
    migration_policy("dm-mappo-city", registry=registry, n_servers=87)
    offload_policy("af-marl-city", registry=registry)
    load_forecaster("city-predictor", None, crafted)


@pytest.mark.parametrize("name", MIGRATION)
def test_a_damaged_migration_model_is_refused_at_load(crafted: Path, name: str):
    with pytest.raises(PolicyError) as caught:
        migration_policy(name, registry=ModelRegistry(crafted), n_servers=87, param_hash=None)
    assert name in str(caught.value) or "other-name" in str(caught.value)


@pytest.mark.parametrize("name", OFFLOAD)
def test_a_damaged_offload_model_is_refused_at_load(crafted: Path, name: str):
    with pytest.raises(PolicyError, match=name):
        offload_policy(name, registry=ModelRegistry(crafted))


@pytest.mark.parametrize("name", PREDICTORS)
def test_a_damaged_predictor_is_refused_at_load(crafted: Path, name: str):
    with pytest.raises(PolicyError, match=name):
        load_forecaster(name, None, crafted)


def test_nan_weights_are_named_and_so_are_absurd_sizes(crafted: Path):
    registry = ModelRegistry(crafted)
    with pytest.raises(PolicyError, match=r"'mig-flip': its weights hold NaN or infinite values, in score"):
        registry.load("mig-flip")
    with pytest.raises(PolicyError, match=r"'off-flip': its weights hold NaN"):
        registry.load("off-flip")
    with pytest.raises(PolicyError, match=r"architecture.hidden.0: Input should be less than or equal to 4096"):
        registry.load("mig-huge")
    with pytest.raises(PredictorError, match=r"network.options.hidden: Input should be less than or equal to 4096"):
        NeuralForecaster.load(crafted / "pred-huge")
    with pytest.raises(PredictorError, match=r"its scaling \(manifest 'scaler'\) is unusable"):
        NeuralForecaster.load(crafted / "pred-scalernan")
    with pytest.raises(PredictorError, match="records no scenario parameter hash"):
        load_forecaster("pred-hash", None, crafted)


def test_a_predictor_is_named_never_a_path(crafted: Path):
    for name in ("../models/city-predictor", str(crafted / "city-predictor"), "City"):
        with pytest.raises(PolicyError, match="unknown workload predictor"):
            load_forecaster(name, None, crafted)


class _NanMigration:
    name, version = "nan-actor", "1"

    def decide(self, observation: MigrationObservation, servers: ServerTable, host=None) -> MigrationDecision:  # noqa: ANN001
        n, m = observation.mask.shape
        probabilities = np.full((n, m), np.nan, dtype=np.float32)
        return MigrationDecision(np.zeros(n, dtype=np.int64), probabilities)


class _NanOffload:
    name, version, needs_window_mean = "nan-rho", "1", False

    def decide(self, inputs: OffloadInputs) -> OffloadDecision:
        n = inputs.size
        z = np.zeros(n)
        return OffloadDecision(np.full(n, np.nan), z, z, z, np.zeros(n, dtype=bool))


def test_non_finite_outputs_never_reach_a_decision():
    mask = np.ones((3, 4), dtype=bool)
    observation = MigrationObservation(mask, np.zeros((3, 4)), np.zeros(4), None)  # type: ignore[arg-type]
    with pytest.raises(ModelOutputError, match="policy 'nan-actor' produced 12 non-finite probabilities"):
        decide_migration(_NanMigration(), observation, None, None)  # type: ignore[arg-type]
    now = {"cycles": np.ones(3)}
    with pytest.raises(ModelOutputError, match=r"policy 'nan-rho' produced 3 non-finite offloaded fractions"):
        decide_offload(_NanOffload(), OffloadInputs(now))  # type: ignore[arg-type]


def test_a_predictor_whose_outputs_overflow_is_refused_per_call(tmp_path: Path):
    make_predictor(tmp_path, "overflow", param_hash="h", n_series=3)
    folder = tmp_path / "overflow"
    forecaster = NeuralForecaster.load(folder)  # finite weights: it loads
    with torch.no_grad():
        forecaster.network.out.weight.fill_(3e38)
        forecaster.network.out.bias.fill_(3e38)
    window = LoadWindow(np.full((6, 3), 1e8), np.full((6, 3), 5.0))
    with pytest.raises(PredictorError, match="'overflow' produced non-finite forecasts"):
        forecaster.forecast(window)
