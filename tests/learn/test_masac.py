"""MASAC, paper A's learned baseline: a short run learns, saves a servable model, acts only feasibly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from twin_service.envs import EnvOptions, MigrationCore
from twin_service.learn.masac import Args, train
from twin_service.policies import ModelRegistry, migration_policy
from twin_service.policies.decide import decide_migration


def test_a_short_masac_run_saves_a_servable_actor(small_recording: Path, tmp_path: Path):
    out = tmp_path / "masac-small"
    rows: list[dict] = []
    args = Args(
        recordings=(str(small_recording),), val_recordings=(str(small_recording),), out=str(out), total_ticks=96,
        episode_s=60, warmup_s=20, reference_ticks=30, learning_starts=16, val_every=48, val_ticks=40,
        val_start_s=200, train_share=0.5, batch_size=64, seed=2,
    )  # fmt: skip
    train(args, "pytest", lambda tick, total, row: rows.append(row))
    assert [int(r["ticks"]) for r in rows] == [48, 96]
    assert all(np.isfinite(r["q_loss"]) and r["q_loss"] > 0 for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["algorithm"] == "MASAC" and manifest["evaluation"]["val_reward"] == max(
        r[k] for r in rows for k in ("val_reward", "val_sample_reward")
    )
    registry = ModelRegistry(tmp_path)
    core = MigrationCore(None, [small_recording], EnvOptions(episode_s=20, warmup_s=20), seed=4)
    policy = migration_policy("masac-small", task=core.params.task, registry=registry, n_servers=core.n_servers)
    batch = core.reset()
    while True:
        target = decide_migration(policy, batch.observation, batch.observation.servers, batch.host).target
        assert batch.mask[np.arange(len(batch)), target].all()
        step = core.step(target)
        if step.truncated:
            break
        batch = step.next
