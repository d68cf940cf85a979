"""DM-MAPPO trains in seconds on the small scenario, beats Random, never acts infeasibly, and serves as saved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from twin_service.envs import EnvOptions, MigrationCore, RewardStats
from twin_service.learn.dm_mappo import Args, train
from twin_service.learn.migration import Policy, validate
from twin_service.observe import LatencyModel
from twin_service.policies import ModelRegistry, migration_policy
from twin_service.policies.decide import decide_migration
from twin_service.policies.manifest import PER_SERVER


@pytest.fixture(scope="module")
def trained(small_recording: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("models") / "mappo-small"
    rows: list[dict] = []
    args = Args(
        recordings=(str(small_recording),), val_recordings=(str(small_recording),), out=str(out), total_ticks=128,
        rollout_ticks=16, episode_s=100, warmup_s=20, reference_ticks=40, val_every=4, val_ticks=60,
        val_start_s=200, train_share=1.0, lr_actor=1e-3, seed=3,
    )  # fmt: skip
    train(args, "pytest", lambda update, updates, row: rows.append(row))
    return out, rows


def test_training_improves_and_beats_random(trained, small_recording: Path):
    out, rows = trained
    manifest = json.loads((out / "manifest.json").read_text())
    stats = RewardStats(**manifest["training"]["reward_stats"])
    vals = [r[k] for r in rows for k in ("val_reward", "val_sample_reward") if k in r]
    assert len(vals) == 4 and manifest["evaluation"]["val_reward"] == max(vals)
    curves = (out / "curves.csv").read_text().splitlines()
    untrained = dict(zip(curves[0].split(","), curves[1].split(","), strict=False))
    assert untrained["update"] == "0.0"
    initial = max(float(untrained["val_reward"]), float(untrained["val_sample_reward"]))
    assert manifest["evaluation"]["val_reward"] > initial  # learning happened
    assert manifest["architecture"]["options"]["execution"] in ("argmax", "sample")
    core = MigrationCore(
        None, [small_recording], EnvOptions(episode_s=60, warmup_s=20, starts_s=(200.0,)), reward_stats=stats
    )
    rng = np.random.default_rng(0)

    def random_policy(batch):
        noise = rng.random(batch.mask.shape)
        noise[~batch.mask] = -1.0
        return noise.argmax(axis=1)

    random_reward = validate(random_policy, core)["val_reward"]
    assert manifest["evaluation"]["val_reward"] > random_reward + 1.0
    assert (out / "curves.csv").is_file() and (out / "curves.png").stat().st_size > 1000


def test_the_served_model_matches_its_manifest_and_the_trained_actor(trained, small_recording: Path):
    out, _ = trained
    registry = ModelRegistry(out.parent)
    manifest = registry.manifest(out.name)
    assert manifest.algorithm == "DM-MAPPO" and manifest.architecture.kind == PER_SERVER
    assert manifest.training["recordings"][0]["seed"] == 3 and manifest.seed == 3
    core = MigrationCore(None, [small_recording], EnvOptions(episode_s=30, warmup_s=20, starts_s=(150.0,)))
    p = core.params
    served = migration_policy(
        out.name, task=p.task, channel=p.channel, satellite=p.satellite, registry=registry, n_servers=core.n_servers
    )
    # The same weights in the trainer's wrapper decide the same as the served policy; never infeasibly.
    policy = Policy(PER_SERVER, core.n_servers, core.feature_dim, 64, LatencyModel(p.task, p.channel, p.satellite))
    policy.actor.load_state_dict(dict(registry.load(out.name).state_dict))
    policy.chunk = manifest.architecture.options["decision_chunk"]
    batch = core.reset(0)
    rng = np.random.default_rng(5)
    while True:
        order = rng.permutation(len(batch))
        served.sampler.order = lambda n, order=order: order  # the same turns on both sides
        decision = decide_migration(served, batch.observation, batch.observation.servers, batch.host)
        mine = policy.act(batch, "argmax", torch.Generator(), order)
        np.testing.assert_allclose(decision.probabilities, mine.turns.probabilities, rtol=1e-5, atol=1e-7)
        if manifest.architecture.options["execution"] == "argmax":
            np.testing.assert_array_equal(decision.target, mine.actions)
        assert (decision.probabilities[np.arange(len(batch)), decision.target] > 0).all()
        assert batch.mask[np.arange(len(batch)), decision.target].all()
        np.testing.assert_allclose(decision.probabilities.sum(axis=1), 1.0, rtol=1e-5)
        out_step = core.step(decision.target)
        if out_step.truncated:
            break
        batch = out_step.next


def test_a_per_server_model_serves_another_layout(trained, small_recording: Path):
    """One shared network: the same model decides for a layout with a server taken out of the table."""
    out, _ = trained
    registry = ModelRegistry(out.parent)
    core = MigrationCore(None, [small_recording], EnvOptions(episode_s=10, warmup_s=20, no_uavs=True))
    served = migration_policy(out.name, task=core.params.task, registry=registry, n_servers=core.n_servers + 5)
    batch = core.reset(1)
    decision = decide_migration(served, batch.observation, batch.observation.servers, batch.host)
    uav = int(core.sim.scenario.layout.uav_indices[0])
    assert not (decision.target == uav).any()  # out of service, so masked


def test_the_paper_actor_is_refused_on_another_layout(small_recording: Path, tmp_path: Path):
    out = tmp_path / "mappo-paper"
    args = Args(
        recordings=(str(small_recording),), out=str(out), arch="paper", total_ticks=16, rollout_ticks=16,
        episode_s=40, warmup_s=20, reference_ticks=20,
    )  # fmt: skip
    train(args, "pytest")
    registry = ModelRegistry(tmp_path)
    manifest = registry.manifest("mappo-paper")
    n = manifest.observation.n_servers
    migration_policy("mappo-paper", registry=registry, n_servers=n)
    with pytest.raises(Exception, match=f"trained for {n} servers"):
        migration_policy("mappo-paper", registry=registry, n_servers=n + 1)


def test_a_run_is_deterministic_for_its_seed(small_recording: Path, tmp_path: Path):
    """Same seed, same weights bit for bit; another seed, other weights."""
    from safetensors.torch import load_file

    def run(name: str, seed: int) -> dict[str, torch.Tensor]:
        out = tmp_path / name
        args = Args(
            recordings=(str(small_recording),), out=str(out), total_ticks=32, rollout_ticks=16, episode_s=40,
            warmup_s=20, reference_ticks=20, seed=seed,
        )  # fmt: skip
        train(args, "pytest")
        return load_file(str(out / "weights.safetensors"))

    first, again, other = run("mappo-a", 4), run("mappo-b", 4), run("mappo-c", 5)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_validation_weighs_every_validation_day_the_same(small_scenario: Path, small_recording: Path, tmp_path: Path):
    """With several validation days, each day's window is scored and the days are averaged (a dense day among
    them counts as one day, not by its vehicles); one day alone gives what it always gave."""
    from twin_service.bridge.record import record_scenario

    other = tmp_path / "small-s4.npz"
    record_scenario(small_scenario, other, seed=4, end_s=150.0)
    options = EnvOptions(episode_s=30, warmup_s=20, starts_s=(100.0,))
    stats = RewardStats(
        latency_mean_s=0.3, latency_std_s=0.1, load_mean_bits=4e7, load_std_bits=1e7
    )  # fixed, as trained
    heuristic = migration_policy("least-loaded")

    def act(batch):
        return decide_migration(heuristic, batch.observation, batch.observation.servers, batch.host).target

    alone = [validate(act, MigrationCore(None, [rec], options, reward_stats=stats)) for rec in (small_recording, other)]
    both = validate(act, MigrationCore(None, [small_recording, other], options, reward_stats=stats))
    assert alone[0] != alone[1]  # two different days
    for key, value in both.items():
        assert value == pytest.approx((alone[0][key] + alone[1][key]) / 2, rel=1e-12), key
    # The same day twice is that day (the days' own seeds do not change a heuristic's window).
    twice = validate(act, MigrationCore(None, [small_recording, small_recording], options, reward_stats=stats))
    assert twice == pytest.approx(alone[0], rel=1e-12)
