"""The model registry: save and load without pickle, refuse what does not fit, serve through the interface."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from twin_service.observe import OFFLOAD_FEATURES, MigrationObservation, ServerTable, migration_feature_dim
from twin_service.policies import (
    ModelError,
    ModelRegistry,
    ModelSpecMismatch,
    OffloadInputs,
    UnknownPolicyError,
    expected_outcome,
    migration_policy,
    offload_policy,
    save_model,
)
from twin_service.policies.manifest import ModelManifest, migration_spec, offload_spec
from twin_service.policies.registry import policy_catalogue
from twin_service.policies.torch_policy import MlpActor, TorchMigrationPolicy, build_actor

PARAM_HASH = "0123456789abcdef"


def manifest(name: str, kind: str = "migration", n_servers: int = 4, **extra) -> ModelManifest:
    obs, act = migration_spec(n_servers) if kind == "migration" else offload_spec()
    fields = {
        "name": name,
        "kind": kind,
        "algorithm": "DM-MAPPO" if kind == "migration" else "AF-MARL",
        "version": "0.1.0",
        "observation": obs,
        "action": act,
        "architecture": {"hidden": [8], "activation": "tanh"},
        "scenario": "test",
        "scenario_param_hash": PARAM_HASH,
        "command": "twin-service train --seed 1",
        "seed": 1,
        "evaluation": {"packet_loss": 0.04},
    }
    fields.update(extra)
    return ModelManifest.model_validate(fields)


def biased_actor(m: ModelManifest, bias: list[float]) -> MlpActor:
    """An actor whose output is ``bias`` whatever the input (all weights zero)."""
    actor = build_actor(m)
    with torch.no_grad():
        for p in actor.parameters():
            p.zero_()
        actor.net[-1].bias.copy_(torch.tensor(bias))
    return actor


def test_an_empty_or_missing_models_folder_offers_only_the_heuristics(tmp_path):
    for folder in (tmp_path / "absent", tmp_path):
        registry = ModelRegistry(folder)
        assert registry.names() == [] and registry.manifests() == []
        assert {row["source"] for row in policy_catalogue(registry)} == {"heuristic"}
        with pytest.raises(UnknownPolicyError, match="sticky-nearest"):
            migration_policy("dm-mappo", registry=registry)


def test_save_and_load_round_trip_without_pickle(tmp_path):
    m = manifest("dm-mappo-test")
    actor = build_actor(m)
    folder = save_model(tmp_path / "dm-mappo-test", m, actor.state_dict())
    weights = (folder / "weights.safetensors").read_bytes()
    header_len = int.from_bytes(weights[:8], "little")  # safetensors: u64 header length, JSON header
    assert json.loads(weights[8 : 8 + header_len])["__metadata__"]["name"] == "dm-mappo-test"
    registry = ModelRegistry(tmp_path)
    assert registry.names() == ["dm-mappo-test"]
    loaded = registry.load("dm-mappo-test", n_servers=4, param_hash=PARAM_HASH)
    assert loaded.manifest == m
    for key, value in actor.state_dict().items():
        assert torch.equal(loaded.state_dict[key], value)


def test_a_pickled_file_is_refused(tmp_path):
    m = manifest("pickled")
    save_model(tmp_path / "pickled", m, build_actor(m).state_dict())
    torch.save(build_actor(m).state_dict(), tmp_path / "pickled" / "weights.safetensors")
    with pytest.raises(ModelError, match="unreadable weights"):
        ModelRegistry(tmp_path).load("pickled")


def test_mismatches_are_refused_with_a_clear_message(tmp_path):
    m = manifest("dm-mappo-test")
    save_model(tmp_path / "dm-mappo-test", m, build_actor(m).state_dict())
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ModelSpecMismatch, match="trained for 4 servers, the scenario has 5"):
        registry.load("dm-mappo-test", n_servers=5)
    with pytest.raises(ModelSpecMismatch, match="scenario parameters 0123456789abcdef .* the run uses ffff"):
        registry.load("dm-mappo-test", n_servers=4, param_hash="ffff")
    with pytest.raises(ModelSpecMismatch, match="trained for 4 servers"):
        migration_policy("dm-mappo-test", registry=registry, n_servers=6)

    old = manifest("old-obs", observation={**migration_spec(4)[0].model_dump(), "obs_spec_version": "0"})
    save_model(tmp_path / "old-obs", old, build_actor(old).state_dict())
    with pytest.raises(ModelSpecMismatch, match="observation spec version '0'"):
        registry.load("old-obs")

    wrong = manifest("wrong-shapes")
    other = manifest("wrong-shapes", architecture={"hidden": [16]})
    save_model(tmp_path / "wrong-shapes", wrong, build_actor(other).state_dict())
    with pytest.raises(ModelSpecMismatch, match="weights do not fit its manifest"):
        migration_policy("wrong-shapes", registry=registry, n_servers=4)

    with pytest.raises(UnknownPolicyError, match="is a migration model"):
        offload_policy("dm-mappo-test", registry=registry)
    with pytest.raises(ModelError, match="named after"):
        save_model(tmp_path / "elsewhere", m, build_actor(m).state_dict())
    with pytest.raises(ModelError, match="built-in heuristic"):
        save_model(tmp_path / "greedy", manifest("greedy"), build_actor(m).state_dict())


def test_a_torch_migration_policy_takes_the_best_unmasked_server(tmp_path):
    m = manifest("biased", n_servers=5)
    save_model(tmp_path / "biased", m, biased_actor(m, [3.0, 2.0, 1.0, 0.0, -1.0]).state_dict())
    policy = migration_policy("biased", registry=ModelRegistry(tmp_path), n_servers=5, param_hash=PARAM_HASH)
    assert isinstance(policy, TorchMigrationPolicy) and policy.version == "0.1.0"
    mask = np.array([[False, True, True, False, True], [True, True, True, True, True]])
    servers = ServerTable(
        ids=("a", "b", "c", "d", "sat"),
        tiers=("rsu", "rsu", "rsu", "uav", "satellite"),
        range_m=np.array([600.0, 600.0, 600.0, 700.0, 1e12]),
        load_max_bits=np.full(5, 1e9),
        cpu_hz=np.full(5, 32e9),
        altitude_m=np.array([0.0, 0.0, 0.0, 50.0, 550e3]),
    )
    obs = MigrationObservation(mask, np.full((2, 5), 100.0), np.zeros(5), servers)
    assert obs.feature_dim == migration_feature_dim(5)
    decision = policy.decide(obs, servers)
    assert decision.target.tolist() == [1, 0]  # server 0 scores best but is masked in row 0
    e = np.exp([2.0, 1.0, -1.0])
    assert decision.probabilities[0] == pytest.approx([0, e[0] / e.sum(), e[1] / e.sum(), 0, e[2] / e.sum()])
    assert decision.probabilities[1].sum() == pytest.approx(1.0)


def test_a_torch_offload_policy_gives_rho_through_a_sigmoid_and_the_cost_model(tmp_path):
    m = manifest("af-marl-test", kind="offload")
    save_model(tmp_path / "af-marl-test", m, biased_actor(m, [0.0]).state_dict())
    policy = offload_policy("af-marl-test", registry=ModelRegistry(tmp_path), param_hash=PARAM_HASH)
    assert policy.needs_window_mean
    n = 3
    now = {k: np.full(n, 1.0) for k in OFFLOAD_FEATURES}
    now.update(f_hz=np.full(n, 2e9), r_bps=np.full(n, 4e7), data_bits=np.full(n, 8e6), cycles=np.full(n, 1e9),
               deadline_s=np.full(n, 0.5), host_cpu_hz=np.full(n, 3e9))  # fmt: skip
    x = OffloadInputs(now, None, np.array([0, 0, 1]))
    d = policy.decide(x)
    assert d.rho.tolist() == [0.5, 0.5, 0.5]
    assert d.cost == pytest.approx(expected_outcome(np.full(n, 0.5), x, policy.params).cost)


def test_every_committed_model_serves_the_city():
    """What models/ holds (the demo's and the reproductions' models) loads for the scenario it was made on."""
    from pathlib import Path

    from twin_service.predict.registry import load_forecaster
    from twin_service.scenario.folder import Scenario

    models = Path(__file__).resolve().parents[2] / "models"
    city = Scenario.load("city")
    p = city.params
    registry = ModelRegistry(models)
    seen = {"migration": 0, "offload": 0, "predictor": 0}
    for path in sorted(models.glob("*/manifest.json")):
        manifest = json.loads(path.read_text())
        name, kind = path.parent.name, manifest["kind"]
        if " --set " in manifest.get("command", ""):
            continue  # made on other scenario parameters (a report's sweep, git-ignored): refused here by design
        if kind == "predictor":
            assert load_forecaster(name, p, models).name == name
        elif kind == "migration":
            policy = migration_policy(
                name, task=p.task, channel=p.channel, satellite=p.satellite, registry=registry,
                n_servers=len(city.layout), param_hash=p.param_hash,
            )  # fmt: skip
            assert policy.name == name
        else:
            assert offload_policy(name, offload=p.offload, registry=registry, param_hash=p.param_hash).name == name
        seen[kind] += 1
    assert all(seen.values()), seen  # trained hosting, offloading and a predictor are all committed


def test_every_committed_model_says_how_to_make_it_again():
    """Each manifest in models/ holds the command that made it: portable paths, and its own folder as --out."""
    from pathlib import Path

    models = Path(__file__).resolve().parents[2] / "models"
    for path in sorted(models.glob("*/manifest.json")):
        manifest = json.loads(path.read_text())
        command = manifest["command"].split()
        assert command[0] == "twin-service" and "train" in command[1:3], path
        assert command[command.index("--out") + 1] == f"models/{path.parent.name}", path
        assert not any(arg.startswith("/") for arg in command), path  # repository-relative
        assert isinstance(manifest["seed"], int) and manifest["evaluation"], path


def test_models_serve_wherever_their_inputs_mean_the_same(dense_import):
    """An imported city keeps the city's physics: every committed model fits it but the layout-bound one, and a
    model refused on other physics is told which parameters differ."""
    from pathlib import Path

    from twin_service.config import load_params, with_overrides
    from twin_service.policies.manifest import spec_problems
    from twin_service.predict.neural import PredictorError
    from twin_service.predict.registry import load_forecaster

    models = Path(__file__).resolve().parents[2] / "models"
    registry = ModelRegistry(models)
    city = load_params(Path(__file__).resolve().parents[2] / "sumo_scenarios" / "city")
    imported = load_params(dense_import.out)
    assert imported.param_hash != city.param_hash
    for m in registry.manifests():
        if " --set " in m.command:
            continue  # made on other scenario parameters (a report's sweep, git-ignored): refused by design
        problems = spec_problems(m, n_servers=60, params=imported, param_hash=imported.param_hash)
        if m.architecture.kind == "mlp" and m.kind == "migration":  # paper A's actor: one logit per city server
            assert any("place in the layout" in p and m.scenario_param_hash in p for p in problems), problems
        else:
            assert problems == [], (m.name, problems)
    assert load_forecaster("city-predictor", imported, models).name == "city-predictor"

    other = with_overrides(imported, {"offload": {"bandwidth_hz": 2e7}, "simulation": {"decision_interval_s": 30.0}})
    with pytest.raises(ModelSpecMismatch, match=r"offload\.bandwidth_hz = 1e\+07 in training, 2e\+07 here") as err:
        offload_policy("af-marl-city", offload=other.offload, registry=registry, params=other,
                       param_hash=other.param_hash)  # fmt: skip
    assert "decision_interval_s" not in str(err.value)  # an offloading actor does not depend on it
    with pytest.raises(ModelSpecMismatch, match=r"simulation\.decision_interval_s = 1 in training, 30 here"):
        migration_policy("dm-mappo-city", registry=registry, n_servers=60, params=other, param_hash=other.param_hash)
    heavier = with_overrides(imported, {"task": {"data_size_mb": 4.0}})  # the per-server actor's features adapt
    assert migration_policy("dm-mappo-city", registry=registry, params=heavier, param_hash=heavier.param_hash)
    with pytest.raises(PredictorError, match=r"task\.data_size_mb = 2 in training, 4 here"):
        load_forecaster("city-predictor", heavier, models)


def test_a_model_whose_training_values_are_unknown_is_checked_by_hash(tmp_path):
    """No recorded inputs and no built-in scenario of that hash: only the very scenario it was trained on fits."""
    from twin_service.config import ScenarioMeta, ScenarioParams

    m = manifest("af-old", kind="offload")
    save_model(tmp_path / "af-old", m, build_actor(m).state_dict())
    params = ScenarioParams(scenario=ScenarioMeta(name="elsewhere"))
    with pytest.raises(ModelSpecMismatch, match="not recorded"):
        offload_policy("af-old", registry=ModelRegistry(tmp_path), params=params, param_hash=params.param_hash)
    recorded = manifest("af-new", kind="offload", scenario_inputs=scenario_inputs_of(params))
    save_model(tmp_path / "af-new", recorded, build_actor(recorded).state_dict())
    assert offload_policy("af-new", registry=ModelRegistry(tmp_path), params=params, param_hash="ffff").name == "af-new"


def scenario_inputs_of(params):
    from twin_service.policies.manifest import model_inputs

    return model_inputs(params, "offload", "mlp")


def test_the_same_weights_give_the_same_file_in_every_process(tmp_path):
    """A model is reproduced byte for byte by its manifest's command: the weights file may not depend on the process
    (safetensors writes a metadata map of several entries in an order that changes from process to process)."""
    import subprocess
    import sys

    m = manifest("same-bytes")
    actor = build_actor(m)
    torch.save(actor.state_dict(), tmp_path / "state.pt")
    (tmp_path / "manifest.json").write_text(m.model_dump_json())
    script = (
        "import sys, torch; from pathlib import Path; from twin_service.policies import save_model;"
        "from twin_service.policies.manifest import ModelManifest; d = Path(sys.argv[1]);"
        "m = ModelManifest.model_validate_json((d / 'manifest.json').read_text());"
        "save_model(d / sys.argv[2] / 'same-bytes', m, torch.load(d / 'state.pt', weights_only=True))"
    )
    files = []
    for k in range(3):
        subprocess.run([sys.executable, "-c", script, str(tmp_path), f"run{k}"], check=True, timeout=120)
        files.append((tmp_path / f"run{k}" / "same-bytes" / "weights.safetensors").read_bytes())
    assert files[0] == files[1] == files[2]
