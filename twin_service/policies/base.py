"""The one interface of every decision policy, heuristic or learned.

Two decisions, two protocols:

* :class:`MigrationPolicy` (paper A): where each vehicle's twin is hosted next, from the observation and
  dynamic mask of :func:`twin_service.observe.migration_observation`. It returns one target server index
  per vehicle and a probability per server; masked (infeasible) servers get probability 0 and are never
  the target.
* :class:`OffloadPolicy` (paper B): which fraction rho in [0, 1] of each vehicle's task goes to the
  twin's host, from the per-vehicle twin features of :data:`twin_service.observe.OFFLOAD_FEATURES`.
  It returns rho with the expected delay, energy, cost and deadline success of that rho (paper B's
  cost model, :func:`twin_service.physics.offload_outcome`).

Inputs and results are plain numpy arrays in dataclasses, so the bridge (in memory), the API (from
Redis) and the environments all call policies the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from twin_service.observe import MigrationObservation, ServerTable

HEURISTIC_VERSION = "1"
"""Version of the rule-based policies (migration and offload alike); bump when a rule changes."""

PolicyKind = Literal["migration", "offload"]


@dataclass(frozen=True)
class MigrationDecision:
    """Paper A actions for a batch of vehicles, aligned with the observation's rows."""

    target: NDArray[np.int64]
    """``(V,)`` index of the server each twin goes to (in the :class:`ServerTable` order); always feasible."""
    probabilities: NDArray[np.floating]
    """``(V, M)`` probability the policy gives each server (rows sum to 1, masked servers 0).

    A deterministic rule puts 1 on its target; greedy's 10 % exploration spreads 0.1 over the feasible
    set; a learned actor gives the softmax of its masked logits (Eq. 20)."""


@dataclass(frozen=True)
class OffloadInputs:
    """What an offloading decision is made from (paper B, Eq. 3-4 and 37).

    ``now`` maps every name of :data:`twin_service.observe.OFFLOAD_FEATURES` to a ``(V,)`` array, exactly
    as the bridge's ``TickContext.offload_now``: ``data_bits``, ``cycles`` and ``deadline_s`` describe the
    task, ``f_hz`` the vehicle CPU, ``r_bps`` the rate to the twin's host, ``host_cpu_hz`` the host's CPU
    f_m. ``window_mean`` holds the same names averaged over the twin's 10 s window (learned policies
    only; heuristics ignore it). ``host_index`` (V,) names each vehicle's host: vehicles offloading to
    one host share its CPU (constraint C.6); without it each vehicle is assumed alone on its host.
    """

    now: dict[str, NDArray[np.float64]]
    window_mean: dict[str, NDArray[np.float64]] | None = None
    host_index: NDArray[np.int64] | None = None

    @property
    def size(self) -> int:
        return int(np.asarray(self.now["cycles"]).shape[0])


@dataclass(frozen=True)
class OffloadDecision:
    """Paper B actions for a batch of vehicles and their expected outcome (Eq. 14, 15, 22, C.1)."""

    rho: NDArray[np.float64]
    """``(V,)`` offloaded fraction of each task, in [0, 1]."""
    delay_s: NDArray[np.float64]
    energy_j: NDArray[np.float64]
    cost: NDArray[np.float64]
    """Omega_n of Eq. 22 (dimensionless)."""
    success: NDArray[np.bool_]
    """Whether the task meets its deadline (t_off <= T_n)."""
    edge_cpu_hz: NDArray[np.float64] = field(repr=False, default_factory=lambda: np.zeros(0))
    """The host CPU share f'_m each offloading vehicle was assumed to get (C.6)."""


@runtime_checkable
class MigrationPolicy(Protocol):
    """Chooses each vehicle's next host. ``name`` and ``version`` identify it in responses and logs."""

    name: str
    version: str

    def decide(
        self,
        observation: MigrationObservation,
        servers: ServerTable,
        host: NDArray[np.int64] | None = None,
    ) -> MigrationDecision:
        """Targets for every row of ``observation``; ``host`` (V,) are the current hosts (-1: none)."""
        ...


@runtime_checkable
class OffloadPolicy(Protocol):
    """Chooses each vehicle's offloaded fraction rho in [0, 1]."""

    name: str
    version: str
    needs_window_mean: bool
    """Whether :attr:`OffloadInputs.window_mean` is used (callers may skip reading the window if not)."""

    def decide(self, inputs: OffloadInputs) -> OffloadDecision: ...


def one_hot(target: NDArray[np.integer], n_servers: int) -> NDArray[np.float32]:
    """``(V, M)`` probabilities of a deterministic choice (float32: this is per vehicle and server, every tick)."""
    probs = np.zeros((len(target), n_servers), dtype=np.float32)
    probs[np.arange(len(target)), target] = 1.0
    return probs
