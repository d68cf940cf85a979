"""A stored AF-MARL model is served by name and computes what its network computes (issue 13, point 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from twin_service.config import OffloadParams, ScenarioMeta, ScenarioParams
from twin_service.observe import OFFLOAD_FEATURES
from twin_service.policies import ModelRegistry, offload_policy
from twin_service.policies.af_marl import AfMarlNetwork, AfMarlOffloadPolicy, actor_inputs
from twin_service.policies.base import OffloadInputs
from twin_service.policies.errors import ModelSpecMismatch
from twin_service.policies.manifest import Architecture, ModelManifest, offload_spec
from twin_service.policies.registry import save_model


def _inputs(n: int, seed: int = 0) -> OffloadInputs:
    rng = np.random.default_rng(seed)
    lows = {"f_hz": 1.5e9, "r_bps": 2e7, "energy_frac": 0.5, "speed_mps": 0.0, "data_bits": 4e6, "cycles": 5e8}
    highs = {"f_hz": 2.5e9, "r_bps": 5e7, "energy_frac": 1.0, "speed_mps": 15.0, "data_bits": 1.6e7, "cycles": 1.5e9}
    now = {}
    for k in OFFLOAD_FEATURES:
        now[k] = rng.uniform(lows.get(k, 0.1), highs.get(k, 1.0), n)
    now["host_cpu_hz"] = rng.uniform(2.5e9, 3.5e9, n)
    window = {k: v * rng.uniform(0.9, 1.1, n) for k, v in now.items()}
    return OffloadInputs(now, window, np.arange(n) % 3)


def _manifest(name: str, options: dict) -> ModelManifest:
    obs, act = offload_spec(history_window=10)
    params = ScenarioParams(scenario=ScenarioMeta(name="unit"))
    return ModelManifest(
        name=name,
        kind="offload",
        algorithm="AF-MARL",
        version="1",
        observation=obs,
        action=act,
        architecture=Architecture(kind="af-marl", options=options),
        scenario="unit",
        scenario_param_hash=params.param_hash,
        command="test",
        seed=0,
    )


@pytest.mark.parametrize("ablation", [{}, {"trunk": "mlp"}, {"cvae": False}, {"trunk": "mlp", "cvae": False}], ids=str)
def test_served_model_matches_its_network_and_manifest(tmp_path: Path, ablation: dict) -> None:
    torch.manual_seed(3)
    options = {"latent": 8, "d_model": 16, "n_layers": 1, "hidden": 32, "cvae_hidden": 32, **ablation}
    net = AfMarlNetwork(**options)
    save_model(tmp_path / "afm-unit", _manifest("afm-unit", options), net.state_dict())
    policy = offload_policy("afm-unit", offload=OffloadParams(), registry=ModelRegistry(tmp_path))
    assert isinstance(policy, AfMarlOffloadPolicy) and policy.needs_window_mean
    assert policy.manifest.architecture.kind == "af-marl" and policy.name == "afm-unit"
    inputs = _inputs(50)
    decision = policy.decide(inputs)
    with torch.no_grad():
        expected = net(actor_inputs(inputs.now, inputs.window_mean)).double().numpy()
    np.testing.assert_allclose(decision.rho, expected, rtol=1e-6)
    assert decision.rho.min() >= 0 and decision.rho.max() <= 1
    # the window mean is part of the context: another window, other fractions
    other = OffloadInputs(inputs.now, {k: v * 1.5 for k, v in inputs.window_mean.items()}, inputs.host_index)
    assert not np.allclose(policy.decide(other).rho, decision.rho)


def test_weights_that_do_not_fit_the_manifest_are_refused(tmp_path: Path) -> None:
    net = AfMarlNetwork(latent=8, d_model=16, hidden=32, cvae_hidden=32)
    save_model(tmp_path / "afm-bad", _manifest("afm-bad", {"latent": 16, "d_model": 16}), net.state_dict())
    with pytest.raises(ModelSpecMismatch):
        offload_policy("afm-bad", offload=OffloadParams(), registry=ModelRegistry(tmp_path))


def test_an_unknown_trunk_is_refused(tmp_path: Path) -> None:
    net = AfMarlNetwork(latent=8, d_model=16, hidden=32, cvae_hidden=32)
    options = {"latent": 8, "d_model": 16, "hidden": 32, "cvae_hidden": 32, "trunk": "lstm"}
    save_model(tmp_path / "afm-lstm", _manifest("afm-lstm", options), net.state_dict())
    with pytest.raises(ModelSpecMismatch, match="trunk"):
        offload_policy("afm-lstm", offload=OffloadParams(), registry=ModelRegistry(tmp_path))
