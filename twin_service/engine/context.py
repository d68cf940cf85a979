"""What the engine hands on: the decision context of a tick, the decisions it takes back, and the run's totals.

A decision source (:class:`DecisionSource`: the in-process policies of :mod:`twin_service.engine.decisions`, the
bridge's decision service over HTTP, a learner's environment) sees a :class:`TickContext` after each tick and
answers with :class:`Decisions` for the next one. Whoever builds an :class:`~twin_service.engine.core.Engine`
gives it its decision source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from twin_service.engine.vehicles import TripRecord
from twin_service.observe import MigrationObservation, ServerTable, WindowSnapshot
from twin_service.physics.offload import OffloadOutcome
from twin_service.twins.frames import TickFrame


@dataclass(frozen=True)
class EngineOutputs:
    """What a tick computes beyond paper A's physics and observation.

    The live bridge needs everything. A migration environment needs neither lon/lat, nor the frame, nor
    paper B; an offloading one needs paper B but no frame. The physics of what is computed is the same.
    """

    frame: bool = True
    """Build the :class:`TickFrame` for the twin store (with every vehicle's lon/lat)."""
    offload: bool = True
    """Paper B: tasks, offloading outcome, energy, the offload features and their 10 s window."""


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """Paper A's outcome of this tick for every vehicle, aligned with the context's vehicle ids."""

    latency_s: NDArray[np.float64]
    """Total latency T^sum (Eq. 13): up + down + compute + migration."""
    failed: NDArray[np.bool_]
    """Service failure xi (Eq. 14): out of the host's range, host overloaded or out of service."""
    migrated: NDArray[np.bool_]
    host_load_bits: NDArray[np.float64]
    """S'_m of each vehicle's host (Eq. 8)."""


@dataclass(slots=True)
class TickContext:
    """What a decision source sees after a tick: the state the next tick's decisions are made from."""

    tick: int
    sim_time_s: float
    vehicle_ids: list[str]
    host: NDArray[np.int64]
    observation: MigrationObservation
    offload_now: dict[str, NDArray[np.float64]]
    """Paper B features per vehicle (``observe.OFFLOAD_FEATURES``); empty when the engine runs without paper B."""
    servers: ServerTable
    frame: TickFrame | None
    """None when the engine runs without frames (training)."""
    migration: MigrationResult | None = None
    offload: OffloadOutcome | None = None
    """Paper B's outcome of the task each vehicle processed in this tick (None without paper B)."""
    rho: NDArray[np.float64] | None = None
    """The offloaded fraction each vehicle processed its task with in this tick."""
    kpis: dict[str, float] = field(default_factory=dict)
    load_bits: NDArray[np.float64] | None = None
    """``(M,)`` every server's load S'_m in this tick (Eq. 8), bits."""
    vehicle_keys: NDArray[np.int64] | None = None
    """Per vehicle, a number never reused within the run (admission order): agent ids for learners."""
    window: WindowSnapshot | None = None
    """The offload features' 10 s window (paper B Eq. 37) at this tick."""

    def offload_window_mean(self) -> dict[str, NDArray[np.float64]] | None:
        """Each vehicle's offload features averaged over its 10 s window, as the twin store averages them."""
        return None if self.window is None else self.window.mean()


@dataclass(slots=True)
class Decisions:
    """Next tick's host (server index) and offloading fraction per vehicle, aligned with the context ids."""

    target: NDArray[np.int64]
    rho: NDArray[np.float64]
    source: str = "local"
    fallback: bool = False
    log: bytes | None = None
    """The decisions as the decision log keeps them (:func:`twin_service.twins.declog.pack_rows`), when the source
    was asked to explain them (the bridge, with its decision log on); None otherwise."""


class DecisionSource(Protocol):
    def decide(self, ctx: TickContext) -> Decisions: ...


@dataclass
class RunTotals:
    """KPIs accumulated over a run (per-tick KPIs are in the twin store)."""

    ticks: int = 0
    vehicle_ticks: int = 0
    failures: int = 0
    migrations: int = 0
    latency_s: float = 0.0
    offload_cost: float = 0.0
    offload_delay_s: float = 0.0
    offload_energy_j: float = 0.0
    tasks_succeeded: int = 0
    load_variance_sum: float = 0.0
    fallback_ticks: int = 0
    offload_vehicle_ticks: int = 0
    """Vehicle-ticks with paper B computed (0 when the engine ran without it)."""
    trips: list[TripRecord] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        vt = max(self.vehicle_ticks, 1)
        ot = max(self.offload_vehicle_ticks, 1)
        finished = [t for t in self.trips if t.ticks > 0]
        return {
            "ticks": self.ticks,
            "vehicle_ticks": self.vehicle_ticks,
            "trips_completed": len(finished),
            "latency_mean_s": self.latency_s / vt,
            "latency_total_s": self.latency_s,
            "packet_loss_rate": self.failures / vt,
            "trip_packet_loss_mean": float(np.mean([t.packet_loss_rate for t in finished])) if finished else 0.0,
            "load_variance_sum_mb2": self.load_variance_sum,
            "migrations": self.migrations,
            "offload_cost_mean": self.offload_cost / ot,
            "task_success_rate": self.tasks_succeeded / ot,
            "offload_delay_mean_s": self.offload_delay_s / ot,
            "offload_energy_mean_j": self.offload_energy_j / ot,
            "fallback_ticks": self.fallback_ticks,
        }
