"""Per-vehicle state that outlives a tick, kept in preallocated numpy arrays indexed by slot.

SUMO gives a new list of running vehicles every tick. Mapping each id to a stable slot lets the bridge
update every vehicle with array operations; a departed vehicle's slot is freed at once and reused.

Paper B's static twin fields (f_n, E_n at departure) are drawn from a generator seeded by the run seed
and the vehicle id, so a vehicle gets the same values whatever the backend or the order of departures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from twin_service.config import BITS_PER_MB, OffloadParams

WH_TO_J = 3600.0


def vehicle_rng(seed: int, vehicle_id: str, stream: str = "static") -> np.random.Generator:
    """A generator that depends only on (seed, vehicle id, stream)."""
    digest = hashlib.blake2b(f"{seed}\x00{stream}\x00{vehicle_id}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


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
    INT_FIELDS = ("host", "next_host", "ticks", "failures", "migrations", "serial")
    """``serial`` numbers the vehicles in order of admission: unlike a slot, it is never reused."""

    def __init__(self, offload: OffloadParams, seed: int, capacity: int = 1024) -> None:
        self._offload = offload
        self._seed = seed
        self._slot_of: dict[str, int] = {}
        self._free: list[int] = []
        self._capacity = 0
        self._admitted = 0
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
            self.i[name] = np.concatenate([arr, np.full(capacity - old, -1 if "host" in name else 0)])
        self._free.extend(range(capacity - 1, old - 1, -1))
        self._capacity = capacity

    def slots_for(self, ids: list[str], now_s: float) -> NDArray[np.int64]:
        """Slots of ``ids`` in order, admitting vehicles seen for the first time."""
        slot_of = self._slot_of
        missing = [v for v in ids if v not in slot_of]
        for vid in missing:
            self._admit(vid, now_s)
        return np.fromiter((slot_of[v] for v in ids), np.int64, len(ids))

    def _admit(self, vehicle_id: str, now_s: float) -> None:
        if not self._free:
            self._grow(max(2 * self._capacity, 64))
        slot = self._free.pop()
        self._slot_of[vehicle_id] = slot
        rng = vehicle_rng(self._seed, vehicle_id)
        o = self._offload
        self.f["f_hz"][slot] = rng.uniform(*o.vehicle_cpu_hz)
        capacity_j = rng.uniform(*o.vehicle_energy_wh) * WH_TO_J
        self.f["energy_capacity_j"][slot] = capacity_j
        self.f["energy_j"][slot] = capacity_j
        self.f["depart_s"][slot] = now_s
        self.f["rho"][slot] = 0.0
        for name in ("task_bits", "task_cycles", "task_deadline_s"):
            self.f[name][slot] = np.nan
        for name in self.INT_FIELDS:
            self.i[name][slot] = -1 if "host" in name else 0
        self.i["serial"][slot] = self._admitted
        self._admitted += 1

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
