"""What a tick source hands the engine: every running vehicle after a step, and the sim clock.

A live SUMO (``twin_service.bridge``), a recording (:mod:`twin_service.engine.recording`) and a test all
produce these; the engine never asks where they came from.

Vehicles are read at SUMO's own output precision (its FCD and twin outputs print 2 decimals): positions
to 1 cm, speeds to 1 cm/s and headings to 0.01 degree (:func:`quantise_batch`). A recording stores them
as integers of those units, so a replayed tick is bit for bit the tick the live bridge computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

POSITION_RESOLUTION_M = 0.01
SPEED_RESOLUTION_MPS = 0.01
HEADING_RESOLUTION_DEG = 0.01
_STEPS_PER_UNIT = 100.0
"""1 / the resolutions above (all 0.01): a value ``v`` is held as ``rint(v * 100) / 100``."""


@dataclass(slots=True)
class VehicleBatch:
    """Every running vehicle after a step, in SUMO's id order."""

    ids: list[str]
    x_m: NDArray[np.float64]
    y_m: NDArray[np.float64]
    speed_mps: NDArray[np.float64]
    heading_deg: NDArray[np.float64]
    road_ids: list[str]
    numbers: NDArray[np.int64] | None = None
    """A recording's numbers of the vehicles (unique within it), when replayed; None from a live SUMO."""

    def __len__(self) -> int:
        return len(self.ids)

    def __reduce__(self) -> tuple[Any, tuple[str, str, bytes]]:
        # Compact pickling for the worker's pipe: two joined strings and one block of floats pickle in a
        # third of the time of two lists of strings and four arrays. SUMO ids never hold NUL (they are XML
        # attribute values).
        columns = np.stack([self.x_m, self.y_m, self.speed_mps, self.heading_deg]).astype(np.float64, copy=False)
        return _unpack_batch, ("\0".join(self.ids), "\0".join(self.road_ids), columns.tobytes())


def _unpack_batch(ids: str, roads: str, columns: bytes) -> VehicleBatch:
    x_m, y_m, speed, heading = np.frombuffer(columns, dtype=np.float64).reshape(4, -1).copy()
    if not ids:
        return VehicleBatch([], x_m, y_m, speed, heading, [])
    return VehicleBatch(ids.split("\0"), x_m, y_m, speed, heading, roads.split("\0"))


def to_units(values: NDArray[np.floating]) -> NDArray[np.int64]:
    """Values in hundredths (cm, cm/s, centidegrees) as integers: what a recording stores."""
    return np.rint(np.asarray(values, dtype=np.float64) * _STEPS_PER_UNIT).astype(np.int64)


def from_units(units: NDArray[np.integer]) -> NDArray[np.float64]:
    """The inverse of :func:`to_units`; ``from_units(to_units(v))`` equals ``quantise(v)`` bit for bit."""
    return np.asarray(units, dtype=np.float64) / _STEPS_PER_UNIT


def quantise(values: NDArray[np.floating]) -> NDArray[np.float64]:
    """Round to SUMO's output precision (2 decimals)."""
    return from_units(to_units(values))


def quantise_batch(batch: VehicleBatch) -> VehicleBatch:
    """The batch with positions, speeds and headings at SUMO's output precision (module docstring)."""
    return VehicleBatch(
        batch.ids,
        quantise(batch.x_m),
        quantise(batch.y_m),
        quantise(batch.speed_mps),
        quantise(batch.heading_deg),
        batch.road_ids,
    )


@dataclass(slots=True, frozen=True)
class SumoTick:
    """What the engine reads from its tick source after one step."""

    time_s: float
    wall_time: float
    arrived: tuple[str, ...]
    vehicles: VehicleBatch
    expected_remaining: int
    step_s: float = 0.0
    """Wall seconds SUMO's own ``simulationStep`` took (the bare step, for comparison with the bridge)."""
    read_s: float = 0.0
    """Wall seconds reading the vehicles took."""


class TickSource(Protocol):
    """A simulation the engine can step: a live SUMO backend, a worker process, or a recording."""

    name: str
    has_gui: bool

    @property
    def time_s(self) -> float:
        """Sim time of the last step (before the first: the start time)."""
        ...

    @property
    def epoch_s(self) -> float:
        """Sim time the run started at: the UAVs' patrol clock counts from here."""
        ...

    def step(self) -> None: ...

    def observe_tick(self) -> SumoTick: ...

    def expected_remaining(self) -> int: ...

    def close(self) -> None: ...
