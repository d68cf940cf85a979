"""What both environments share: following agents across ticks, and the PettingZoo ``ParallelEnv`` over a core.

A batched core (``MigrationCore``, ``OffloadCore``) works on arrays over the vehicles present; the PettingZoo
wrapper turns them into dicts per agent (vehicle id) with PettingZoo's rules: an agent that acted gets its
reward, termination, truncation and info; a vehicle that has left keeps its last observation; vehicles that
entered the city join ``agents``; at the end of the window every agent still present is truncated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from twin_service.envs.sim import EnvOptions
from twin_service.scenario.folder import Scenario


def follow_agents(
    prev_ids: NDArray[np.int64], next_ids: NDArray[np.int64]
) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Where each agent of ``prev_ids`` is in ``next_ids``: its row there, and whether it is there at all.

    Both id arrays come in SUMO's order, not sorted; rows of agents that left are 0 (mask them with ``alive``).
    """
    n_prev = len(prev_ids)
    if not len(next_ids):
        return np.zeros(n_prev, dtype=np.intp), np.zeros(n_prev, dtype=bool)
    order = np.argsort(next_ids, kind="stable")
    pos = np.minimum(np.searchsorted(next_ids, prev_ids, sorter=order), len(order) - 1)
    rows = order[pos]
    return rows, next_ids[rows] == prev_ids


def split_options(options: dict[str, Any]) -> tuple[Any, EnvOptions, dict[str, Any]]:
    """``from_recording``'s keyword options: the scenario, the :class:`EnvOptions` fields, and the core's."""
    env_fields = set(EnvOptions.__dataclass_fields__)
    env_options = EnvOptions(**{k: v for k, v in options.items() if k in env_fields})
    core = {k: v for k, v in options.items() if k not in env_fields and k != "scenario"}
    return options.get("scenario"), env_options, core


class AgentParallelEnv(ParallelEnv):
    """A PettingZoo ``ParallelEnv`` over a batched core; subclasses name the core and say how spaces,
    observations, actions and info look."""

    core_type: ClassVar[Callable[..., Any]]
    """The batched core's class (``MigrationCore``, ``OffloadCore``)."""
    core: Any

    def __init__(
        self,
        scenario: Scenario | str | Path | None,
        recordings: Sequence[str | Path],
        options: EnvOptions | None = None,
        **core_options: Any,
    ) -> None:
        """The core over ``recordings`` (keyword options go to the core: ``reward``, ``seed``...)."""
        self.core = core = self.core_type(scenario, recordings, options, **core_options)
        observation_space, action_space = self._spaces(core)
        names: list[str] = []
        for path in core.sim.recordings:
            names.extend(core.sim._recording(path).vehicle_names.tolist())
        self.possible_agents = sorted(set(names))
        self.agents: list[str] = []
        self._obs_space = observation_space
        self._act_space = action_space
        self.state_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=(core.state_dim,), dtype=np.float32)
        self._batch: Any = None

    @classmethod
    def from_recording(cls, path: str | Path | Sequence[str | Path], **options: Any) -> Any:
        """An environment over one recording (or several), on the scenario they were recorded on.

        Keyword options go to :class:`~twin_service.envs.sim.EnvOptions` (``episode_s``, ``no_uavs``...) or to
        the core (``reward``, ``reward_stats``, ``seed``); ``scenario`` overrides the recordings' folder.
        """
        paths = [path] if isinstance(path, str | Path) else list(path)
        scenario, env_options, core = split_options(options)
        return cls(scenario, paths, env_options, **core)

    @functools.cache  # noqa: B019 - PettingZoo wants the same space object per agent
    def observation_space(self, agent: str) -> gymnasium.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> gymnasium.Space:
        return self._act_space

    # What a subclass defines ---------------------------------------------------------------------
    def _spaces(self, core: Any) -> tuple[gymnasium.Space, gymnasium.Space]:
        """Every agent's observation space and action space."""
        raise NotImplementedError

    def _observations(self, batch: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _action_array(self, actions: dict[str, Any], vehicle_ids: list[str]) -> NDArray:
        raise NotImplementedError

    def _info(self, out: Any, k: int) -> dict[str, Any]:
        raise NotImplementedError

    # The PettingZoo API -----------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._batch = batch = self.core.reset(seed)
        self.agents = list(batch.vehicle_ids)
        return self._observations(batch), {vid: {} for vid in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        prev = self._batch
        if prev is None:
            raise RuntimeError("call reset() first")
        missing = [vid for vid in prev.vehicle_ids if vid not in actions]
        if missing:
            raise ValueError(f"no action for agents {missing[:5]}")
        out = self.core.step(self._action_array(actions, prev.vehicle_ids))
        self._batch = batch = out.next
        obs = self._observations(batch)
        last = self._observations(prev)
        rewards: dict[str, float] = {}
        terminated: dict[str, bool] = {}
        truncated: dict[str, bool] = {}
        infos: dict[str, dict] = {}
        for k, vid in enumerate(prev.vehicle_ids):
            rewards[vid] = float(out.rewards[k])
            terminated[vid] = bool(out.terminated[k])
            truncated[vid] = bool(out.truncated and out.alive[k])
            infos[vid] = self._info(out, k)
            if not out.alive[k]:
                obs[vid] = last[vid]  # its last observation: it has left
        for vid in [] if out.truncated else batch.vehicle_ids:  # vehicles that just entered the city
            if vid not in rewards:
                rewards[vid], terminated[vid], truncated[vid], infos[vid] = 0.0, False, False, {}
        if out.truncated:  # vehicles entering at the last tick never act in this episode
            obs = {vid: obs[vid] for vid in prev.vehicle_ids}
        self.agents = [] if out.truncated else list(batch.vehicle_ids)
        return obs, rewards, terminated, truncated, infos

    def state(self) -> NDArray[np.float32]:
        if self._batch is None:
            raise RuntimeError("call reset() first")
        return self._batch.state

    def close(self) -> None:
        self.core.close()
