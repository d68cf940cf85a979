"""What both batched cores share (:class:`~twin_service.envs.migration.MigrationCore`,
:class:`~twin_service.envs.offload.OffloadCore`): a replayed simulation, the episode's generator, ``reset``,
the bookkeeping of a step (the batch that acted, the agents found again in the next one), the clock part of
the global state, and the fields every batch (:class:`AgentBatch`) and every step (:class:`AgentStep`) have,
which the PettingZoo wrapper (:mod:`.parallel`) reads.

A core's own part is what its batch adds (``_make_batch``), how its actions are checked and applied, what its
step adds, and the rest of its global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from twin_service.engine import Decisions, Engine, TickContext
from twin_service.envs.parallel import follow_agents
from twin_service.envs.sim import EnvOptions, ReplaySim, scenario_of
from twin_service.scenario.folder import Scenario

DAY_S = 86_400.0


@dataclass(frozen=True)
class AgentBatch:
    """Every agent present at a tick (what both environments' batches hold; each adds its own)."""

    agent_ids: NDArray[np.int64]
    """``(V,)`` ids of the agents (vehicles), never reused within an episode."""
    vehicle_ids: list[str]
    obs: NDArray[np.float32]
    """``(V, D)`` every agent's observation."""
    host: NDArray[np.int64]
    """``(V,)`` each twin's current host."""
    state: NDArray[np.float32]
    """The global state for a centralised critic (the core's ``state()``)."""
    time_s: float

    def __len__(self) -> int:
        return len(self.agent_ids)


BatchT = TypeVar("BatchT", bound=AgentBatch)


@dataclass(frozen=True)
class AgentStep(Generic[BatchT]):
    """One step's outcome per agent that acted (aligned with the previous batch), then the next batch."""

    rewards: NDArray[np.float64]
    """``(V_prev,)`` each agent's reward (0 for an agent that left the city before its decision took effect)."""
    terminated: NDArray[np.bool_]
    """``(V_prev,)`` the vehicle reached its destination (its twin's service ends)."""
    alive: NDArray[np.bool_]
    """``(V_prev,)`` the agent is present in the next batch (``~terminated``)."""
    truncated: bool
    """The episode's window ended: every agent still present is cut off (bootstrap its value)."""
    next: BatchT
    kpis: dict[str, float]


class BatchedCore(Generic[BatchT]):
    """The batched environment over a :class:`ReplaySim`: arrays over the vehicles present at a tick."""

    def __init__(
        self,
        scenario: Scenario | str | Path | None,
        recordings: Sequence[str | Path],
        options: EnvOptions | None,
        *,
        offload: bool,
        seed: int | None,
    ) -> None:
        if not isinstance(scenario, Scenario):
            scenario = scenario_of(recordings, scenario)
        self.options = options or EnvOptions()
        self.sim = ReplaySim(scenario, recordings, self.options, offload=offload)
        self.params = self.sim.scenario.params
        self.rng = np.random.default_rng(seed)
        self.n_servers = self.sim.n_servers
        self._ctx: TickContext | None = None
        self._batch: BatchT | None = None

    def reset(self, seed: int | None = None, recording: int | None = None) -> BatchT:
        """The first batch of an episode (a new generator when ``seed`` is given, else the core's goes on), on
        the ``recording``-th recording when given, else on one drawn by length."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        episode = None if recording is None else self.sim.draw_episode(self.rng, recording)
        self._ctx = self.sim.reset(self.rng, episode)
        self._batch = self._make_batch(self._ctx)
        return self._batch

    @property
    def done(self) -> bool:
        return self.sim.done

    def close(self) -> None:
        self.sim.close()

    def _make_batch(self, ctx: TickContext) -> BatchT:
        raise NotImplementedError

    # What a step does around the core's own part ------------------------------------------------------
    def _current(self) -> tuple[BatchT, TickContext]:
        """The batch that acts now and its tick."""
        prev, ctx = self._batch, self._ctx
        if prev is None or ctx is None:
            raise RuntimeError("call reset() first")
        return prev, ctx

    def _advance(self, decisions: Decisions) -> TickContext:
        """Apply ``decisions`` for one tick: the next tick's context."""
        self._ctx = nxt = self.sim.step(decisions)
        return nxt

    def _follow(self, prev: BatchT, nxt: TickContext) -> tuple[BatchT, NDArray[np.intp], NDArray[np.bool_]]:
        """The next batch, and where each agent of ``prev`` is in it (its row, whether it is there at all)."""
        batch = self._make_batch(nxt)
        rows, alive = follow_agents(prev.agent_ids, batch.agent_ids)
        return batch, rows, alive

    def _state_context(self, ctx: TickContext | None) -> tuple[TickContext, Engine]:
        """The tick a global state is of (default: the current one) and the engine that made it."""
        ctx = ctx or self._ctx
        assert ctx is not None and self.sim.engine is not None
        return ctx, self.sim.engine


def clock_features(ctx: TickContext) -> list[float]:
    """The end of both global states: the time of day (sin, cos) and the number of vehicles in thousands."""
    phase = 2 * np.pi * (ctx.sim_time_s % DAY_S) / DAY_S
    return [np.sin(phase), np.cos(phase), len(ctx.host) / 1000.0]
