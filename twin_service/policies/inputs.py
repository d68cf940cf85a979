"""Twin columns -> decision inputs, for callers that hold twins as tables (the API, recorded runs).

The bridge builds its ``TickContext`` from its own arrays; a reader of the twin store (or of a request
carrying the twins) has the columns the bridge wrote instead. :func:`tick_inputs` turns those into the
same observation (:func:`twin_service.observe.migration_observation`) and offload features
(:data:`twin_service.observe.OFFLOAD_FEATURES`), so a decision served over HTTP is computed from exactly
what the bridge would have used.

Column names are the bridge's (``twin_service.engine.core``): vehicles ``lon``, ``lat``,
``host_index``, ``f_hz``, ``r_bps``, ``energy_j``, ``speed_mps``, ``data_bits``, ``cycles``,
``deadline_s``; servers ``lon``, ``lat``, ``altitude_m``, ``load_bits``, ``f_hz``, ``offloaders``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from twin_service.observe import MigrationObservation, ServerTable, VehicleMotion, migration_observation
from twin_service.physics import distance_matrix_m, projected_distance_matrix_m
from twin_service.policies.errors import PolicyError

Columns = Mapping[str, NDArray[np.float64]]


class MissingTwinData(PolicyError):
    """The twins lack a column (or the layout) a decision needs."""


def _column(columns: Columns, name: str, what: str, n: int) -> NDArray[np.float64]:
    if name not in columns:
        raise MissingTwinData(f"{what} twins lack the column {name!r}")
    values = np.asarray(columns[name], dtype=np.float64)
    if values.shape != (n,):
        raise MissingTwinData(f"{what} column {name!r} has shape {values.shape}, expected ({n},)")
    return values


def server_table(layout: Sequence[Mapping[str, Any]], server_ids: Sequence[str]) -> ServerTable:
    """The layout's :class:`ServerTable` in the order of ``server_ids`` (the tick's server rows).

    Raises :class:`MissingTwinData` when the layout does not hold exactly these servers.
    """
    if not layout:
        raise MissingTwinData("no edge-server layout is stored (the bridge writes it when a run starts)")
    by_id = {str(rec["id"]): rec for rec in layout}
    missing = [s for s in server_ids if s not in by_id]
    if missing or len(by_id) != len(server_ids):
        raise MissingTwinData(
            f"the stored layout ({len(by_id)} servers) does not match the tick's {len(server_ids)} servers"
            + (f"; missing {missing[:5]}" if missing else "")
        )
    try:
        return ServerTable.from_records([dict(by_id[s]) for s in server_ids])
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingTwinData(f"the stored layout is incomplete: {exc}") from exc


@dataclass(frozen=True)
class TickInputs:
    """Decision inputs for every vehicle of a tick; has the attributes ``decide_all`` needs."""

    vehicle_ids: list[str]
    servers: ServerTable
    host: NDArray[np.int64]
    observation: MigrationObservation
    offload_now: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    """Empty when built with ``offload=False``."""


def tick_inputs(
    vehicle_ids: Sequence[str],
    vehicle_columns: Columns,
    servers: ServerTable,
    server_columns: Columns,
    incoming_bits: float,
    *,
    offload: bool = True,
    energy_capacity_j: float = 1.0,
    predicted_load_bits: NDArray[np.float64] | None = None,
) -> TickInputs:
    """Observation, mask and offload features from the twins' columns (one tick).

    The predicted load of each server is ``predicted_load_bits`` (a workload predictor's forecast from the
    servers' window) or, without one, its current ``load_bits`` (persistence);
    servers' current positions (UAVs move) come from their ``x_m``/``y_m`` columns (else ``lon``/``lat``),
    their range, cache and CPU from the layout. ``energy_capacity_j`` turns ``energy_j`` into the feature
    ``energy_frac`` when the vehicles carry neither ``energy_frac`` nor ``energy_capacity_j``.
    """
    n, m = len(vehicle_ids), servers.size
    v_lon = _column(vehicle_columns, "lon", "vehicle", n)
    v_lat = _column(vehicle_columns, "lat", "vehicle", n)
    host = _column(vehicle_columns, "host_index", "vehicle", n) if "host_index" in vehicle_columns else np.full(n, -1.0)
    host = np.where(np.isfinite(host) & (host >= 0) & (host < m), host, -1).astype(np.int64)
    s_lon = _column(server_columns, "lon", "server", m)
    s_lat = _column(server_columns, "lat", "server", m)
    s_alt = _column(server_columns, "altitude_m", "server", m) if "altitude_m" in server_columns else servers.altitude_m
    load = _column(server_columns, "load_bits", "server", m)
    if {"x_m", "y_m"} <= set(vehicle_columns) and {"x_m", "y_m"} <= set(server_columns):
        # Twins written by the bridge: the very distances the bridge used (plane, in the net's projection),
        # so that the service's masks and the bridge's agree to the metre at a range boundary.
        dist = projected_distance_matrix_m(
            _column(vehicle_columns, "x_m", "vehicle", n),
            _column(vehicle_columns, "y_m", "vehicle", n),
            _column(server_columns, "x_m", "server", m),
            _column(server_columns, "y_m", "server", m),
            s_alt,
        )
    else:  # positions given only as lon/lat (stateless requests): Eq. 1-2 on the sphere
        dist = distance_matrix_m(v_lat, v_lon, s_lat, s_lon, s_alt)
    motion = None
    if {"x_m", "y_m", "speed_mps", "heading_deg"} <= set(vehicle_columns) and {"x_m", "y_m"} <= set(server_columns):
        motion = VehicleMotion.from_twins(
            *(_column(vehicle_columns, c, "vehicle", n) for c in ("x_m", "y_m", "speed_mps", "heading_deg")),
            _column(server_columns, "x_m", "server", m),
            _column(server_columns, "y_m", "server", m),
        )
    if "in_service" in server_columns:  # servers out of service (an outage, a recalled UAV) are masked, as live
        in_service = _column(server_columns, "in_service", "server", m) > 0.5
        if not in_service.all():
            servers = servers.with_active(in_service)
    predicted = load if predicted_load_bits is None else np.asarray(predicted_load_bits, dtype=np.float64)
    obs = migration_observation(dist, predicted, incoming_bits, servers, host, motion=motion)
    now: dict[str, NDArray[np.float64]] = {}
    if offload:
        now = offload_features(vehicle_columns, n, servers, server_columns, host, energy_capacity_j)
    return TickInputs(list(vehicle_ids), servers, host, obs, now)


def offload_features(
    vehicle_columns: Columns,
    n: int,
    servers: ServerTable,
    server_columns: Columns,
    host: NDArray[np.int64],
    energy_capacity_j: float = 1.0,
) -> dict[str, NDArray[np.float64]]:
    """Paper B's per-vehicle features (``OFFLOAD_FEATURES``) from vehicle and host-server columns."""
    m = servers.size
    now = {
        name: _column(vehicle_columns, name, "vehicle", n)
        for name in ("f_hz", "r_bps", "data_bits", "cycles", "deadline_s")
    }
    now["speed_mps"] = (
        _column(vehicle_columns, "speed_mps", "vehicle", n) if "speed_mps" in vehicle_columns else np.zeros(n)
    )
    if "energy_frac" in vehicle_columns:
        now["energy_frac"] = _column(vehicle_columns, "energy_frac", "vehicle", n)
    elif "energy_j" in vehicle_columns:
        capacity = (
            _column(vehicle_columns, "energy_capacity_j", "vehicle", n)
            if "energy_capacity_j" in vehicle_columns
            else np.full(n, energy_capacity_j)
        )
        now["energy_frac"] = _column(vehicle_columns, "energy_j", "vehicle", n) / np.maximum(capacity, 1e-9)
    else:
        now["energy_frac"] = np.ones(n)
    f_m = _column(server_columns, "f_hz", "server", m)
    offloaders = _column(server_columns, "offloaders", "server", m) if "offloaders" in server_columns else np.zeros(m)
    hosted = host >= 0
    at = np.maximum(host, 0)
    now["host_cpu_hz"] = np.where(hosted, f_m[at], 0.0)
    now["host_offloaders"] = np.where(hosted, offloaders[at], 0.0)
    now["host_is_satellite"] = np.where(hosted, servers.is_satellite[at], False).astype(np.float64)
    return now
