"""Paper B's partial-offloading environment: every vehicle present picks the fraction rho of its task to offload.

As for migration (:mod:`twin_service.envs.migration`), a batched core for trainers (:class:`OffloadCore`) and
a PettingZoo ``ParallelEnv`` over it (:class:`OffloadEnv`).

* The observation is :func:`twin_service.observe.offload_observation`: the vehicle's twin now and its mean
  over the 10 s window (Eq. 37), which the engine keeps exactly as the twin store keeps it, so a policy sees
  in training the context the API computes from Redis.
* The action is rho in [0, 1] for the task pending now; it is processed at the next tick, offloaded to the
  twin's host, which a fixed migration policy chooses (``EnvOptions.migration_policy``).
* The reward is 1 / Omega (Eq. 53), the inverse of that task's cost (Eq. 22); ``info`` carries its delay,
  energy, cost and whether it met its deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from numpy.typing import NDArray

from twin_service.engine import Decisions, TickContext
from twin_service.envs.batched import AgentBatch, AgentStep, BatchedCore, clock_features
from twin_service.envs.parallel import AgentParallelEnv
from twin_service.envs.sim import EnvOptions
from twin_service.observe import OFFLOAD_FEATURES, offload_feature_dim, offload_observation
from twin_service.physics import offload_reward
from twin_service.policies.decide import decide_migration
from twin_service.scenario.folder import Scenario


@dataclass(frozen=True)
class OffloadBatch(AgentBatch):
    """Every agent present at a tick."""

    obs: NDArray[np.float32]
    """``(V, 2F)`` the twin now (first F columns, ``OFFLOAD_FEATURES`` scaled), then its 10 s window mean."""
    now: dict[str, NDArray[np.float64]]
    """The raw features now (SI units), per ``OFFLOAD_FEATURES`` name."""
    window_mean: dict[str, NDArray[np.float64]]


@dataclass(frozen=True)
class OffloadStep(AgentStep[OffloadBatch]):
    """One step's outcome (:class:`AgentStep`: rewards are 1 / Omega of the task each agent decided on) and
    that task's delay, energy, cost and deadline success."""

    delay_s: NDArray[np.float64]
    energy_j: NDArray[np.float64]
    cost: NDArray[np.float64]
    success: NDArray[np.bool_]


class OffloadCore(BatchedCore[OffloadBatch]):
    """The batched offloading environment (module docstring)."""

    def __init__(
        self,
        scenario: Scenario | str | Path | None,
        recordings: Sequence[str | Path],
        options: EnvOptions | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__(scenario, recordings, options, offload=True, seed=seed)
        self.feature_dim = offload_feature_dim()
        self.state_dim = 3 * self.n_servers + 3

    def step(self, rho: NDArray[np.floating]) -> OffloadStep:
        prev, ctx = self._current()
        rho = np.asarray(rho, dtype=np.float64).reshape(-1)
        if rho.shape != (len(prev),):
            raise ValueError(f"expected {len(prev)} fractions, got shape {rho.shape}")
        if not np.all(np.isfinite(rho)):
            raise ValueError(
                f"{int((~np.isfinite(rho)).sum())} of {len(rho)} offloaded fractions (rho) are NaN or infinite: "
                "the policy's outputs diverged (a trainer: lower the learning rates)"
            )
        if rho.min(initial=0.0) < 0.0 or rho.max(initial=0.0) > 1.0:
            raise ValueError("rho must lie in [0, 1]")
        hosts = decide_migration(self.sim.background.migration, ctx.observation, ctx.servers, ctx.host)
        nxt = self._advance(Decisions(hosts.target, rho))
        batch, rows, alive = self._follow(prev, nxt)
        out = nxt.offload
        assert out is not None

        def pick(values: NDArray, fill: float) -> NDArray:
            return np.where(alive, values[rows] if len(batch) else fill, fill)

        cost = pick(out.cost, np.nan)
        self._batch = batch
        return OffloadStep(
            rewards=np.where(alive, offload_reward(np.where(alive, cost, 1.0)), 0.0),
            terminated=~alive,
            alive=alive,
            truncated=self.sim.done,
            delay_s=pick(out.delay_s, np.nan),
            energy_j=pick(out.energy_j, np.nan),
            cost=cost,
            success=alive & pick(out.success.astype(np.float64), 0.0).astype(bool),
            next=batch,
            kpis=nxt.kpis,
        )

    def _make_batch(self, ctx: TickContext) -> OffloadBatch:
        window = ctx.offload_window_mean() or {}
        assert ctx.vehicle_keys is not None
        return OffloadBatch(
            agent_ids=ctx.vehicle_keys.copy(),
            vehicle_ids=ctx.vehicle_ids,
            obs=offload_observation(ctx.offload_now, window),
            now=ctx.offload_now,
            window_mean=window,
            host=ctx.host,
            state=self.state(ctx),
            time_s=ctx.sim_time_s,
        )

    def state(self, ctx: TickContext | None = None) -> NDArray[np.float32]:
        """Global state ``(3M + 3,)``: per server its share of the twins, of the offloaders, its CPU in GHz;
        then the time of day (sin, cos) and the vehicles in thousands."""
        ctx, engine = self._state_context(ctx)
        n = max(len(ctx.host), 1)
        hosted = np.bincount(ctx.host, minlength=self.n_servers) / n
        offloading = ctx.offload_now["host_offloaders"] if len(ctx.host) else np.zeros(0)
        offloaders = np.zeros(self.n_servers)
        if len(ctx.host):
            offloaders[ctx.host] = offloading
        return np.concatenate([hosted, offloaders / n, engine.edge_f_hz / 1e9, clock_features(ctx)]).astype(np.float32)


class OffloadEnv(AgentParallelEnv):
    """Paper B's offloading task as a PettingZoo ``ParallelEnv`` (module docstring).

    The observation of each agent is ``offload_observation`` (float32, ``(2F,)``); the action is a ``(1,)``
    array holding rho in [0, 1]; ``info`` carries the delay, energy, cost and deadline success of the task.
    """

    metadata = {"name": "twin_offload_v0", "render_modes": []}
    core_type = OffloadCore

    def _spaces(self, core: OffloadCore) -> tuple[gymnasium.Space, gymnasium.Space]:
        return (
            gymnasium.spaces.Box(-np.inf, np.inf, shape=(core.feature_dim,), dtype=np.float32),
            gymnasium.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
        )

    def _observations(self, batch: OffloadBatch) -> dict[str, NDArray[np.float32]]:
        return {vid: batch.obs[k] for k, vid in enumerate(batch.vehicle_ids)}

    def _action_array(self, actions: dict[str, Any], vehicle_ids: list[str]) -> NDArray[np.float64]:
        rho = np.array([float(np.asarray(actions[vid]).reshape(-1)[0]) for vid in vehicle_ids])
        return np.clip(rho, 0.0, 1.0)

    def _info(self, out: OffloadStep, k: int) -> dict[str, Any]:
        return {
            "delay_s": float(out.delay_s[k]),
            "energy_j": float(out.energy_j[k]),
            "cost": float(out.cost[k]),
            "success": bool(out.success[k]),
        }


__all__ = ["OFFLOAD_FEATURES", "OffloadBatch", "OffloadCore", "OffloadEnv", "OffloadStep"]
