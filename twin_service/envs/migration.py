"""Paper A's twin-migration environment: every vehicle present is an agent that picks its twin's next host.

Two APIs over one simulation (:class:`~twin_service.envs.sim.ReplaySim`):

* :class:`MigrationCore`, the batched core the trainers use: arrays over all vehicles present at a tick.
  ``reset()`` gives the first :class:`MigrationBatch` (observations o_v of Eq. 19, masks K_v of Eq. 23,
  agent ids); ``step(actions)`` applies one server index per agent and returns a :class:`MigrationStep`:
  the rewards (Eq. 22), terminations (the vehicle left the city) and alive flags of the agents that acted,
  and the next batch. Agents come and go: agent ids are never reused within an episode.
* :class:`MigrationEnv`, a PettingZoo ``ParallelEnv`` over the core (dicts per agent, the mask in the
  observation as ``{"observation", "action_mask"}``).

Observations and masks are :func:`twin_service.observe.migration_observation`, the very function the bridge
and the API serve with; the physics is the bridge's engine.

Reward (Eq. 22, weights from ``[reward]``): ``-(w_T z(T^sum) + w_s z(S_m) + w_d xi)`` for the tick after the
decision, with T^sum the vehicle's total latency, S_m the load of the server it chose and xi its service
failure. The z-scores are "in the time dimension": by default running moments over everything this
environment has seen (paper A); a trainer or an evaluation that compares policies passes fixed
:class:`RewardStats` instead, so that every policy is scored on the same scale. ``reward="unshaped"`` gives
Eq. 21 (the z-scored load variance over all servers instead of the chosen server's load).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium
import numpy as np
from numpy.typing import NDArray

from twin_service.config import RewardParams
from twin_service.engine import Decisions, TickContext
from twin_service.envs.batched import AgentBatch, AgentStep, BatchedCore, clock_features
from twin_service.envs.parallel import AgentParallelEnv
from twin_service.envs.sim import EnvOptions
from twin_service.observe import MigrationObservation
from twin_service.physics import RunningZScore, load_variance, shaped_reward, unshaped_reward
from twin_service.scenario.folder import Scenario

RewardKind = Literal["shaped", "unshaped"]


@dataclass(frozen=True)
class RewardStats:
    """Fixed moments for the reward's z-scores (latency s, load bits, load variance bits^2)."""

    latency_mean_s: float
    latency_std_s: float
    load_mean_bits: float
    load_std_bits: float
    variance_mean: float = 0.0
    variance_std: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class RewardScale:
    """The z-scores of Eq. 21-22: running moments (paper A) unless fixed :class:`RewardStats` are given."""

    def __init__(self, fixed: RewardStats | None = None) -> None:
        self.fixed = fixed
        self.latency = RunningZScore()
        self.load = RunningZScore()
        self.variance = RunningZScore()

    def stats(self) -> RewardStats:
        if self.fixed is not None:
            return self.fixed
        return RewardStats(
            self.latency.mean, self.latency.std, self.load.mean, self.load.std, self.variance.mean, self.variance.std
        )

    def z(
        self, latency_s: NDArray[np.float64], load_bits: NDArray[np.float64], variance: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
        if self.fixed is None:
            self.latency.update(latency_s)
            self.load.update(load_bits)
            self.variance.update(np.array([variance]))
        s = self.stats()
        return (
            (latency_s - s.latency_mean_s) / max(s.latency_std_s, 1e-9),
            (load_bits - s.load_mean_bits) / max(s.load_std_bits, 1e-9),
            (variance - s.variance_mean) / max(s.variance_std, 1e-9),
        )


def migration_reward(
    ctx: TickContext, scale: RewardScale, weights: RewardParams, kind: RewardKind = "shaped"
) -> NDArray[np.float64]:
    """Eq. 22 (or 21) for every vehicle of ``ctx``: the outcome of the decisions that governed this tick."""
    result = ctx.migration
    assert result is not None and ctx.load_bits is not None
    variance = float(load_variance(ctx.load_bits))
    z_lat, z_load, z_var = scale.z(result.latency_s, result.host_load_bits, variance)
    w = {"w_latency": weights.w_latency, "w_load": weights.w_load, "w_failure": weights.w_failure}
    if kind == "shaped":
        return shaped_reward(z_lat, z_load, result.failed, **w)
    return unshaped_reward(z_lat, np.full_like(z_lat, z_var), result.failed, **w)


@dataclass(frozen=True)
class MigrationBatch(AgentBatch):
    """Every agent present at a tick: what the policy decides from."""

    obs: NDArray[np.float32]
    """``(V, 2M-1)`` paper A's o_v (Eq. 19): distances to the ground and air servers over their range,
    then every server's predicted load over L_max."""
    mask: NDArray[np.bool_]
    """``(V, M)`` K_v (Eq. 23): True where the agent may send its twin; the satellite is always True."""
    observation: MigrationObservation
    """The full observation (distances, predicted loads, server table) for richer actors."""


@dataclass(frozen=True)
class MigrationStep(AgentStep[MigrationBatch]):
    """The outcome of one step (:class:`AgentStep`: rewards are Eq. 22) and each agent's latency and failure."""

    latency_s: NDArray[np.float64]
    """``(V_prev,)`` the total latency each surviving agent got (NaN for the departed)."""
    failed: NDArray[np.bool_]


class MigrationCore(BatchedCore[MigrationBatch]):
    """The batched migration environment (module docstring)."""

    def __init__(
        self,
        scenario: Scenario | str | Path | None,
        recordings: Sequence[str | Path],
        options: EnvOptions | None = None,
        *,
        reward: RewardKind = "shaped",
        reward_stats: RewardStats | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(scenario, recordings, options, offload=False, seed=seed)
        self.reward_kind = reward
        self.scale = RewardScale(reward_stats)
        self.feature_dim = 2 * self.n_servers - 1
        self.state_dim = 4 * self.n_servers + 3

    def step(self, actions: NDArray[np.integer]) -> MigrationStep:
        prev, _ = self._current()
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (len(prev),):
            raise ValueError(f"expected {len(prev)} actions, got shape {actions.shape}")
        if len(actions):
            if actions.min() < 0 or actions.max() >= self.n_servers:
                raise ValueError("an action names a server outside the layout")
            if not prev.mask[np.arange(len(actions)), actions].all():
                raise ValueError("an action is masked (infeasible, Eq. 23)")
        nxt = self._advance(Decisions(actions, np.zeros(len(actions))))
        rewards_next = migration_reward(nxt, self.scale, self.params.reward, self.reward_kind)
        batch, rows, alive = self._follow(prev, nxt)
        result = nxt.migration
        assert result is not None
        if len(batch):
            rewards = np.where(alive, rewards_next[rows], 0.0)
            latency = np.where(alive, result.latency_s[rows], np.nan)
            failed = alive & result.failed[rows]
        else:
            rewards, latency, failed = np.zeros(len(prev)), np.full(len(prev), np.nan), np.zeros(len(prev), bool)
        self._batch = batch
        return MigrationStep(
            rewards=rewards,
            terminated=~alive,
            alive=alive,
            truncated=self.sim.done,
            latency_s=latency,
            failed=failed,
            next=batch,
            kpis=nxt.kpis,
        )

    def _make_batch(self, ctx: TickContext) -> MigrationBatch:
        obs = ctx.observation
        assert ctx.vehicle_keys is not None
        return MigrationBatch(
            agent_ids=ctx.vehicle_keys.copy(),
            vehicle_ids=ctx.vehicle_ids,
            obs=obs.features,
            mask=obs.mask,
            host=ctx.host,
            observation=obs,
            state=self.state(ctx),
            time_s=ctx.sim_time_s,
        )

    def state(self, ctx: TickContext | None = None) -> NDArray[np.float32]:
        """Global state for a centralised critic, ``(4M + 3,)``.

        Every server's current and predicted load over its cache (the satellite over the ground servers'
        cache), its share of the twins, whether it is in service; then the time of day (sin, cos) and the
        number of vehicles in thousands.
        """
        ctx, engine = self._state_context(ctx)
        servers = ctx.observation.servers
        cap = np.where(np.isfinite(servers.load_max_bits), servers.load_max_bits, np.median(engine.cache_bits))
        hosted = np.bincount(ctx.host, minlength=self.n_servers) / max(len(ctx.host), 1)
        return np.concatenate(
            [
                ctx.load_bits / cap,
                ctx.observation.predicted_load_bits / cap,
                hosted,
                servers.active.astype(np.float64),
                clock_features(ctx),
            ]
        ).astype(np.float32)


class MigrationEnv(AgentParallelEnv):
    """Paper A's migration task as a PettingZoo ``ParallelEnv`` (module docstring).

    Agents are the vehicle ids present; the observation of each is ``{"observation": o_v, "action_mask":
    K_v}`` (float32, int8); the action is a server index; ``state()`` is the centralised critic's input.
    ``info`` per agent carries its latency and failure.
    """

    metadata = {"name": "twin_migration_v0", "render_modes": []}
    core_type = MigrationCore

    def _spaces(self, core: MigrationCore) -> tuple[gymnasium.Space, gymnasium.Space]:
        observation = gymnasium.spaces.Dict(
            {
                "observation": gymnasium.spaces.Box(-np.inf, np.inf, shape=(core.feature_dim,), dtype=np.float32),
                "action_mask": gymnasium.spaces.MultiBinary(core.n_servers),
            }
        )
        return observation, gymnasium.spaces.Discrete(core.n_servers)

    def _observations(self, batch: MigrationBatch) -> dict[str, dict[str, NDArray]]:
        mask = batch.mask.astype(np.int8)
        return {vid: {"observation": batch.obs[k], "action_mask": mask[k]} for k, vid in enumerate(batch.vehicle_ids)}

    def _action_array(self, actions: dict[str, Any], vehicle_ids: list[str]) -> NDArray[np.int64]:
        return np.array([int(actions[vid]) for vid in vehicle_ids], dtype=np.int64)

    def _info(self, out: MigrationStep, k: int) -> dict[str, Any]:
        return {"latency_s": float(out.latency_s[k]), "failed": bool(out.failed[k])}


__all__ = [
    "MigrationBatch",
    "MigrationCore",
    "MigrationEnv",
    "MigrationStep",
    "RewardScale",
    "RewardStats",
    "migration_reward",
]
