"""Scoring an offloading actor on validation days, and saving it as a served model (weights + manifest)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twin_service.envs.offload import OffloadCore
from twin_service.envs.sim import EnvOptions
from twin_service.learn.offload_common import EpisodeLog
from twin_service.policies.manifest import Architecture, ModelManifest, model_inputs, offload_spec
from twin_service.policies.registry import save_model
from twin_service.scenario.folder import Scenario


def validate_offload(
    actor: Callable[[torch.Tensor], torch.Tensor] | torch.nn.Module,
    scenario: str | None,
    recordings: Sequence[Path],
    episode_s: float,
    warmup_s: float,
    seed: int,
    overrides: dict | None = None,
    episodes_per_day: int = 2,
) -> dict[str, float]:
    """Mean cost, task success, delay and energy of the deterministic actor over fixed windows of each day."""
    if not recordings:
        return {}
    logs = []
    for path in recordings:
        options = EnvOptions(episode_s=episode_s, warmup_s=warmup_s, overrides=overrides or {})
        core = OffloadCore(scenario, [path], options, seed=seed)
        for _ in range(episodes_per_day):
            batch = core.reset()
            log = EpisodeLog()
            while not core.done:
                with torch.no_grad():
                    rho = actor(torch.from_numpy(batch.obs)).reshape(-1).double().numpy()
                step = core.step(np.clip(rho, 0.0, 1.0))
                log.add(step)
                batch = step.next
            logs.append(log.row())
        core.close()
    out = {}
    for key in ("cost", "success", "delay_s", "energy_j"):
        values = np.array([r[key] for r in logs])
        out[f"validation_{key}_mean"] = round(float(values.mean()), 5)
        out[f"validation_{key}_std"] = round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 5)
    out["validation_episodes"] = len(logs)
    return out


def save_offload_model(
    out: Path,
    state_dict: dict[str, torch.Tensor],
    *,
    algorithm: str,
    kind: str,
    options: dict[str, Any],
    scenario: Scenario,
    args: dict[str, Any],
    command: str,
    seed: int,
    evaluation: dict[str, float],
    notes: str,
    hidden: tuple[int, ...] = (64, 64),
    activation: str = "tanh",
) -> Path:
    """Write ``out/weights.safetensors`` and ``out/manifest.json`` (the training arguments go in the notes file)."""
    obs, act = offload_spec(history_window=scenario.params.simulation.history_window)
    manifest = ModelManifest(
        name=out.name,
        kind="offload",
        algorithm=algorithm,
        version="1",
        observation=obs,
        action=act,
        architecture=Architecture(kind=kind, hidden=hidden, activation=activation, options=options),
        scenario=scenario.params.scenario.name,
        scenario_param_hash=scenario.params.param_hash,
        scenario_inputs=model_inputs(scenario.params, "offload", kind),
        command=command,
        seed=seed,
        evaluation={k: float(v) for k, v in evaluation.items()},
        notes=notes,
    )
    save_model(out, manifest, state_dict)
    (out / "training_args.json").write_text(json.dumps(args, indent=2, default=str) + "\n")
    return out
