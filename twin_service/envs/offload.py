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
from twin_service.envs.parallel import AgentParallelEnv, follow_agents
from twin_service.envs.sim import EnvOptions, ReplaySim, scenario_of
from twin_service.observe import OFFLOAD_FEATURES, offload_feature_dim, offload_observation
from twin_service.physics import offload_reward
from twin_service.policies.decide import decide_migration
from twin_service.scenario.folder import Scenario

DAY_S = 86_400.0


@dataclass(frozen=True)
class OffloadBatch:
    """Every agent present at a tick."""

    agent_ids: NDArray[np.int64]
    vehicle_ids: list[str]
    obs: NDArray[np.float32]
    """``(V, 2F)`` the twin now (first F columns, ``OFFLOAD_FEATURES`` scaled), then its 10 s window mean."""
    now: dict[str, NDArray[np.float64]]
    """The raw features now (SI units), per ``OFFLOAD_FEATURES`` name."""
    window_mean: dict[str, NDArray[np.float64]]
    host: NDArray[np.int64]
    state: NDArray[np.float32]
    time_s: float

    def __len__(self) -> int:
        return len(self.agent_ids)


@dataclass(frozen=True)
class OffloadStep:
    """One step's outcome per agent that acted (aligned with the previous batch), then the next batch."""

    rewards: NDArray[np.float64]
    """``(V_prev,)`` 1 / Omega of the task each agent decided on (0 if the vehicle left first)."""
    terminated: NDArray[np.bool_]
    alive: NDArray[np.bool_]
    truncated: bool
    delay_s: NDArray[np.float64]
    energy_j: NDArray[np.float64]
    cost: NDArray[np.float64]
    success: NDArray[np.bool_]
    next: OffloadBatch
    kpis: dict[str, float]


class OffloadCore:
    """The batched offloading environment (module docstring)."""

    def __init__(
        self,
        scenario: Scenario | str | Path | None,
        recordings: Sequence[str | Path],
        options: EnvOptions | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        if not isinstance(scenario, Scenario):
            scenario = scenario_of(recordings, scenario)
        self.options = options or EnvOptions()
        self.sim = ReplaySim(scenario, recordings, self.options, offload=True)
        self.params = self.sim.scenario.params
        self.rng = np.random.default_rng(seed)
        self.n_servers = self.sim.n_servers
        self.feature_dim = offload_feature_dim()
        self.state_dim = 3 * self.n_servers + 3
        self._ctx: TickContext | None = None
        self._batch: OffloadBatch | None = None

    def reset(self, seed: int | None = None) -> OffloadBatch:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._ctx = self.sim.reset(self.rng)
        self._batch = self._make_batch(self._ctx)
        return self._batch

    def step(self, rho: NDArray[np.floating]) -> OffloadStep:
        prev, ctx = self._batch, self._ctx
        if prev is None or ctx is None:
            raise RuntimeError("call reset() first")
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
        self._ctx = nxt = self.sim.step(Decisions(hosts.target, rho))
        batch = self._make_batch(nxt)
        rows, alive = follow_agents(prev.agent_ids, batch.agent_ids)
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

    @property
    def done(self) -> bool:
        return self.sim.done

    def close(self) -> None:
        self.sim.close()

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
        ctx = ctx or self._ctx
        assert ctx is not None and self.sim.engine is not None
        engine = self.sim.engine
        n = max(len(ctx.host), 1)
        hosted = np.bincount(ctx.host, minlength=self.n_servers) / n
        offloading = ctx.offload_now["host_offloaders"] if len(ctx.host) else np.zeros(0)
        offloaders = np.zeros(self.n_servers)
        if len(ctx.host):
            offloaders[ctx.host] = offloading
        phase = 2 * np.pi * (ctx.sim_time_s % DAY_S) / DAY_S
        return np.concatenate(
            [hosted, offloaders / n, engine.edge_f_hz / 1e9, [np.sin(phase), np.cos(phase), len(ctx.host) / 1000.0]]
        ).astype(np.float32)


class OffloadEnv(AgentParallelEnv):
    """Paper B's offloading task as a PettingZoo ``ParallelEnv`` (module docstring).

    The observation of each agent is ``offload_observation`` (float32, ``(2F,)``); the action is a ``(1,)``
    array holding rho in [0, 1]; ``info`` carries the delay, energy, cost and deadline success of the task.
    """

    metadata = {"name": "twin_offload_v0", "render_modes": []}

    def __init__(
        self,
        scenario: Scenario | str | Path | None,
        recordings: Sequence[str | Path],
        options: EnvOptions | None = None,
        **core_options: Any,
    ) -> None:
        core = OffloadCore(scenario, recordings, options, **core_options)
        super().__init__(
            core,
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
