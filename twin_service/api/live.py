"""The live view of a run for the dashboard: a snapshot, then per tick only what changed.

:class:`DeltaEncoder` keeps, per client, what that client was last sent and turns each new tick into a
delta: vehicles that appeared, moved (0.1 m), changed host or failed; ids that left; servers whose
position, load, hosting or forecast changed; host changes since the last message (migrations); and the
KPI samples written since. A client that falls behind (the bridge ticks faster than it reads) skips
ticks and still ends up with the exact state of the tick it is sent, because the delta is taken against
what it holds, not against the previous tick.

:class:`LiveFeed` reads the store for one client and formats Server-Sent Events; the route
(``routes/live.py``) runs it in the thread pool and streams the result.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from twin_service.api.service import LOAD_SOURCE, snapshot_from_store
from twin_service.api.state import ApiState
from twin_service.twins import TwinStore

VEHICLE_FIELDS = ("x_m", "y_m", "host_index", "failed")
"""A vehicle row of a delta: ``[id, x_m, y_m, host_index, failed]``."""
SERVER_FIELDS = ("x_m", "y_m", "load_bits", "hosted", "overloaded", "predicted_load_bits")
"""A server row of a delta: ``[index, x_m, y_m, load_bits, hosted, overloaded, predicted_load_bits]``."""
KPI_BACKFILL = 300
"""KPI samples a new client gets with its snapshot (the charts' history)."""


@dataclass
class LiveTick:
    """What the dashboard shows of one tick, already rounded to what is worth sending."""

    tick: int
    sim_time_s: float
    wall_time: float
    vehicle_ids: list[str]
    vehicles: NDArray[np.float64]
    """(n, 4): x_m, y_m (0.1 m), host_index, failed."""
    server_ids: list[str]
    servers: NDArray[np.float64]
    """(m, 6): x_m, y_m (0.1 m), load_bits, hosted, overloaded, predicted_load_bits (whole bits)."""

    @classmethod
    def from_columns(
        cls,
        tick: int,
        sim_time_s: float,
        wall_time: float,
        vehicle_ids: list[str],
        vehicle_columns: dict[str, NDArray[np.float64]],
        server_ids: list[str],
        server_columns: dict[str, NDArray[np.float64]],
        predicted_load_bits: NDArray[np.float64],
    ) -> LiveTick:
        n, m = len(vehicle_ids), len(server_ids)
        veh = np.zeros((n, len(VEHICLE_FIELDS)))
        for j, name in enumerate(VEHICLE_FIELDS):
            if name in vehicle_columns:
                veh[:, j] = vehicle_columns[name]
        srv = np.zeros((m, len(SERVER_FIELDS)))
        for j, name in enumerate(SERVER_FIELDS[:-1]):
            if name in server_columns:
                srv[:, j] = server_columns[name]
        srv[:, -1] = predicted_load_bits
        veh[:, :2] = np.round(veh[:, :2], 1)
        srv[:, :2] = np.round(srv[:, :2], 1)
        srv[:, 2:] = np.round(srv[:, 2:])
        return cls(tick, sim_time_s, wall_time, list(vehicle_ids), veh, list(server_ids), np.nan_to_num(srv))


def _vehicle_rows(ids: list[str], table: NDArray[np.float64], rows: NDArray[np.intp]) -> list[list[Any]]:
    x, y, host, failed = (table[rows, j].tolist() for j in range(4))
    return [[ids[r], x[k], y[k], int(host[k]), int(failed[k])] for k, r in enumerate(rows.tolist())]


def _server_rows(table: NDArray[np.float64], rows: NDArray[np.intp]) -> list[list[Any]]:
    cols = [table[rows, j].tolist() for j in range(table.shape[1])]
    return [[r, cols[0][k], cols[1][k], *(int(c[k]) for c in cols[2:])] for k, r in enumerate(rows.tolist())]


@dataclass
class DeltaEncoder:
    """What one client holds, and the delta that brings it to a new tick."""

    _row_of: dict[str, int] = field(default_factory=dict)
    _vehicles: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, len(VEHICLE_FIELDS))))
    _ids: list[str] = field(default_factory=list)
    _server_ids: list[str] | None = None
    _servers: NDArray[np.float64] | None = None

    def reset(self) -> None:
        """Forget what the client holds: the next :meth:`encode` sends everything."""
        self.__init__()  # type: ignore[misc]

    def encode(self, live: LiveTick) -> dict[str, Any]:
        """The delta from what the client holds to ``live``; the client then holds ``live``."""
        ids, table = live.vehicle_ids, live.vehicles
        prev = np.fromiter((self._row_of.get(v, -1) for v in ids), np.intp, len(ids))
        known = prev >= 0
        changed = ~known
        if known.any():
            changed[known] = (self._vehicles[prev[known]] != table[known]).any(axis=1)
        host_col = VEHICLE_FIELDS.index("host_index")
        moved_host = np.zeros(len(ids), dtype=bool)
        if known.any():
            moved_host[known] = self._vehicles[prev[known], host_col] != table[known, host_col]
        now = set(ids)
        left = [v for v in self._ids if v not in now]
        migrations = [
            [ids[k], int(self._vehicles[prev[k], host_col]), int(table[k, host_col])]
            for k in np.flatnonzero(moved_host).tolist()
        ]

        if self._servers is None or self._server_ids != live.server_ids:
            srv_rows = np.arange(len(live.server_ids))
        else:
            srv_rows = np.flatnonzero((self._servers != live.servers).any(axis=1))

        delta = {
            "tick": live.tick,
            "sim_time_s": live.sim_time_s,
            "wall_time": live.wall_time,
            "n_vehicles": len(ids),
            "vehicles": _vehicle_rows(ids, table, np.flatnonzero(changed)),
            "left": left,
            "migrations": migrations,
            "servers": _server_rows(live.servers, srv_rows),
        }
        self._row_of = {v: k for k, v in enumerate(ids)}
        self._vehicles = table
        self._ids = ids
        self._server_ids = live.server_ids
        self._servers = live.servers
        return delta


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One Server-Sent Event (``data`` as compact JSON, non-finite floats as null)."""
    body = json.dumps(_finite(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {body}\n\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class LiveFeed:
    """One client's feed: call :meth:`poll` repeatedly; it returns the next event or None (no new tick).

    The first event is a ``snapshot`` (everything, and the KPI history); then one ``tick`` delta per new
    tick seen. A new run (its start time changes, or ticks go back) starts over with a snapshot.
    """

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.encoder = DeltaEncoder()
        self._seen: tuple[int, str] | None = None
        self._run_started: str | None = None
        self._last_kpi_tick: int | None = None

    def poll(self) -> str | None:
        """The next event, or None when the latest tick was sent already (or none is written yet).

        Raises ``TwinStoreUnavailable`` while Redis cannot be reached.
        """
        state = self.state
        store = state.store()
        meta = store.latest_tick()
        if meta is None or self._seen == (meta.tick, meta.write_id):
            return None
        run = store.read_run_meta()
        started = run.get("started_wall_time", "")
        fresh = self._seen is None or started != self._run_started or meta.tick < self._seen[0]
        if fresh:
            self.encoder.reset()
            self._last_kpi_tick = None
        snap = snapshot_from_store(state, meta.tick)
        live = LiveTick.from_columns(
            meta.tick,
            meta.sim_time_s,
            meta.wall_time,
            snap.vehicle_ids,
            snap.vehicle_columns,
            list(snap.servers.ids),
            snap.server_columns,
            snap.inputs.observation.predicted_load_bits,
        )
        body = self.encoder.encode(live)
        body["kpis"] = self._new_kpis(store, live.tick)
        self._seen = (meta.tick, meta.write_id)
        self._run_started = started
        if not fresh:
            return sse("tick", body, live.tick)
        body["run"] = {
            "scenario": run.get("scenario"),
            "started_wall_time": started,
            "tick_s": float(run.get("tick_s", "1") or 1),
            "window": int(run.get("window", "10") or 10),
        }
        body["server_ids"] = live.server_ids
        body["server_tiers"] = list(snap.servers.tiers)
        body["load_source"] = LOAD_SOURCE
        return sse("snapshot", body, live.tick)

    def _new_kpis(self, store: TwinStore, tick: int) -> list[dict[str, Any]]:
        """KPI samples written after the last ones sent, up to ``tick`` (all of a new client's backfill)."""
        since = self._last_kpi_tick
        wanted = KPI_BACKFILL if since is None else max(1, min(tick - since, KPI_BACKFILL))
        samples = [s for s in store.kpi_history(last_n=wanted) if (since is None or s.tick > since) and s.tick <= tick]
        if samples:
            self._last_kpi_tick = samples[-1].tick
        return [{"tick": s.tick, "sim_time_s": s.sim_time_s, "kpis": s.kpis} for s in samples]
