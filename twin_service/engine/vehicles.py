"""Per-vehicle state that outlives a tick, kept in preallocated numpy arrays indexed by slot.

SUMO gives a new list of running vehicles every tick. Mapping each id to a stable slot lets the bridge
update every vehicle with array operations; a departed vehicle's slot is freed at once and reused.

Paper B's static twin fields (f_n, E_n at departure) are drawn from a keyed hash of the run seed and the
vehicle id, so a vehicle gets the same values whatever the backend or the order of departures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from twin_service.config import BITS_PER_MB, OffloadParams

WH_TO_J = 3600.0
_MINUS_ONE = ("host", "next_host", "number")
"""Integer fields whose "none" is -1 rather than 0."""


def entity_uniforms(seed: int, entity_id: str, stream: str = "static", n: int = 1) -> NDArray[np.float64]:
    """``n`` uniform numbers in [0, 1) that depend only on (seed, entity id, stream).

    A keyed hash rather than a seeded generator: a vehicle's draws do not depend on the order in which
    vehicles depart, and hashing costs a few microseconds where creating a generator costs fifty (a city
    admits several vehicles a tick).
    """
    digest = hashlib.blake2b(f"{seed}\x00{stream}\x00{entity_id}".encode(), digest_size=8 * n).digest()
    return (np.frombuffer(digest, dtype="<u8") >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def uniform_between(u: NDArray[np.float64] | float, low_high: tuple[float, float]) -> NDArray[np.float64]:
    """Map uniforms in [0, 1) onto [low, high)."""
    low, high = low_high
    return low + (high - low) * np.asarray(u, dtype=np.float64)


@dataclass(slots=True)
class TripRecord:
    """What a vehicle's trip amounted to, recorded when it leaves the simulation."""

    vehicle_id: str
    ticks: int
    failures: int
    migrations: int

    @property
    def packet_loss_rate(self) -> float:
        """Paper A Eq. 15: share of the trip's ticks in which the twin service failed."""
        return self.failures / self.ticks if self.ticks else 0.0


class VehicleTable:
    """Slot-indexed arrays of everything the bridge remembers about running vehicles."""

    FLOAT_FIELDS = (
        "f_hz",  # paper B f_n: on-board CPU
        "energy_j",  # paper B E_n: remaining energy
        "energy_capacity_j",
        "depart_s",
        "rho",  # offloading fraction decided for the pending task
        "task_bits",  # paper B D_n of the task that arrived last tick (NaN: none yet)
        "task_cycles",  # C_n of that task
        "task_deadline_s",  # T_n of that task
    )
    INT_FIELDS = ("host", "next_host", "ticks", "failures", "migrations", "serial", "number")
    """``serial`` numbers the vehicles in order of admission: unlike a slot, it is never reused. ``number`` is
    the vehicle's number in a recording (-1 for live vehicles)."""

    def __init__(self, offload: OffloadParams, seed: int, capacity: int = 1024) -> None:
        self._offload = offload
        self._seed = seed
        self._slot_of: dict[str, int] = {}
        self._free: list[int] = []
        self._capacity = 0
        self._admitted = 0
        self._slot_by_number = np.zeros(0, dtype=np.int64)
        """A replayed recording numbers its vehicles: slots by number, looked up as one array operation."""
        self.f = {name: np.zeros(0) for name in self.FLOAT_FIELDS}
        self.i = {name: np.zeros(0, dtype=np.int64) for name in self.INT_FIELDS}
        self._grow(capacity)

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, vehicle_id: str) -> bool:
        return vehicle_id in self._slot_of

    def _grow(self, capacity: int) -> None:
        old = self._capacity
        for name, arr in self.f.items():
            self.f[name] = np.concatenate([arr, np.zeros(capacity - old)])
        for name, arr in self.i.items():
            self.i[name] = np.concatenate([arr, np.full(capacity - old, -1 if name in _MINUS_ONE else 0)])
        self._free.extend(range(capacity - 1, old - 1, -1))
        self._capacity = capacity

    def slots_for(self, ids: list[str], now_s: float, numbers: NDArray[np.integer] | None = None) -> NDArray[np.int64]:
        """Slots of ``ids`` in order, admitting vehicles seen for the first time.

        ``numbers`` (a recording's vehicle numbers, aligned with ``ids``) make the lookup one array
        operation instead of a dictionary lookup per vehicle.
        """
        if numbers is None:
            slot_of = self._slot_of
            missing = [v for v in ids if v not in slot_of]
            for vid in missing:
                self._admit(vid, now_s)
            return np.fromiter((slot_of[v] for v in ids), np.int64, len(ids))
        numbers = np.asarray(numbers, dtype=np.int64)
        top = int(numbers.max()) + 1 if len(numbers) else 0
        if top > len(self._slot_by_number):
            grown = np.full(max(top, 2 * len(self._slot_by_number)), -1, dtype=np.int64)
            grown[: len(self._slot_by_number)] = self._slot_by_number
            self._slot_by_number = grown
        slots = self._slot_by_number[numbers]
        for k in np.flatnonzero(slots < 0).tolist():
            slot = self._admit(ids[k], now_s)
            self.i["number"][slot] = numbers[k]
            self._slot_by_number[numbers[k]] = slots[k] = slot
        return slots

    def _admit(self, vehicle_id: str, now_s: float) -> int:
        if not self._free:
            self._grow(max(2 * self._capacity, 64))
        slot = self._free.pop()
        self._slot_of[vehicle_id] = slot
        u_cpu, u_energy = entity_uniforms(self._seed, vehicle_id, n=2)
        o = self._offload
        self.f["f_hz"][slot] = uniform_between(u_cpu, o.vehicle_cpu_hz)
        capacity_j = uniform_between(u_energy, o.vehicle_energy_wh) * WH_TO_J
        self.f["energy_capacity_j"][slot] = capacity_j
        self.f["energy_j"][slot] = capacity_j
        self.f["depart_s"][slot] = now_s
        self.f["rho"][slot] = 0.0
        for name in ("task_bits", "task_cycles", "task_deadline_s"):
            self.f[name][slot] = np.nan
        for name in self.INT_FIELDS:
            self.i[name][slot] = -1 if name in _MINUS_ONE else 0
        self.i["serial"][slot] = self._admitted
        self._admitted += 1
        return slot

    def release(self, ids: tuple[str, ...] | list[str]) -> list[TripRecord]:
        """Forget vehicles that left the simulation and return their trip records."""
        records = []
        for vid in ids:
            slot = self._slot_of.pop(vid, None)
            if slot is None:
                continue
            records.append(
                TripRecord(
                    vid,
                    int(self.i["ticks"][slot]),
                    int(self.i["failures"][slot]),
                    int(self.i["migrations"][slot]),
                )
            )
            number = int(self.i["number"][slot])
            if number >= 0:
                self._slot_by_number[number] = -1
            self._free.append(slot)
        return records


def sample_tasks(
    rng: np.random.Generator, n: int, offload: OffloadParams
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """A new task per vehicle (paper B Table IV): data size D_n [bits], cycles C_n, deadline T_n [s]."""
    data_bits = rng.uniform(*offload.task_size_mb, size=n) * BITS_PER_MB
    cycles = rng.uniform(*offload.task_cycles, size=n)
    deadline_s = rng.uniform(*offload.deadline_s, size=n)
    return data_bits, cycles, deadline_s
