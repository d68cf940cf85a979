"""Data model of the twin store: what the bridge writes each tick and what readers get back.

Columns are generic: any numeric column name (``x_m``, ``speed_mps``, ``host_index``, ``f_hz``,
``load_bits``, ...) and any text column name (``road_id``, ``host_id``, ``tier``, ...) may appear,
and the set may change from one tick to the next; each tick stores its own column lists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from twin_service.twins.declog import DecisionLogEntry

Value = float | str
"""One cell of a twin's state: numeric columns give floats, text columns strings."""


@dataclass(kw_only=True)
class TickFrame:
    """One simulation tick as the bridge hands it to :meth:`TwinStore.write_tick`.

    Numeric columns are 1-D arrays (converted to float64) with one entry per id, in the order of
    the ids; text columns are lists of ``str`` in the same order. Ids must be unique and non-empty
    without newline or NUL (the id block is newline-joined); text values must not hold NUL (the
    text table pads with it).
    """

    tick: int
    """Tick number; ticks written to one prefix must not go back (rewriting the latest is fine)."""
    sim_time_s: float
    """SUMO simulation time of the tick."""
    wall_time: float = field(default_factory=time.time)
    """Unix time (s) when the tick was taken."""
    vehicle_ids: list[str] = field(default_factory=list)
    vehicle_columns: dict[str, np.ndarray] = field(default_factory=dict)
    vehicle_text: dict[str, list[str]] = field(default_factory=dict)
    server_ids: list[str] = field(default_factory=list)
    server_columns: dict[str, np.ndarray] = field(default_factory=dict)
    """E.g. x, y, lon, lat, load_bits, backlog_bits, hosted, overloaded."""
    server_text: dict[str, list[str]] = field(default_factory=dict)
    """E.g. ``tier``: ``rsu`` / ``uav`` / ``satellite``."""
    kpis: dict[str, float] = field(default_factory=dict)
    event_states: dict[str, str] = field(default_factory=dict)
    """What-if events whose course changed in this tick (started, ended): id -> JSON, stored in the tick's
    transaction (``P:events:state``)."""
    decision_log: DecisionLogEntry | None = None
    """An entry for the decision log, appended in the tick's transaction: the decisions made on the tick before
    (the ones that govern this tick)."""


@dataclass(frozen=True)
class TickMeta:
    """What is known about one stored tick without reading its blocks."""

    tick: int
    sim_time_s: float
    wall_time: float
    n_vehicles: int
    n_servers: int
    vehicle_columns: tuple[str, ...]
    vehicle_text_columns: tuple[str, ...]
    server_columns: tuple[str, ...]
    server_text_columns: tuple[str, ...]
    write_id: str = field(default="", repr=False)
    """Random id of the write that produced the tick; changes when a tick is rewritten."""


@dataclass(frozen=True)
class TwinState:
    """A twin's state at one tick: numeric and text columns by name."""

    tick: int
    sim_time_s: float
    values: dict[str, Value]


@dataclass(frozen=True)
class Twin:
    """One twin at a tick, with its sliding-window history.

    ``history`` holds the twin's states in the last ``window`` ticks where it existed, oldest
    first, ending with the current state. ``window_mean`` is paper B Eq. 37: the mean of each
    numeric column over ``history`` (over the entries holding that column).
    """

    id: str
    tick: int
    sim_time_s: float
    state: dict[str, Value]
    history: list[TwinState]
    window_mean: dict[str, float]


@dataclass(frozen=True)
class VehicleTwin(Twin):
    """Twin of one vehicle."""


@dataclass(frozen=True)
class ServerTwin(Twin):
    """Twin of one edge server (RSU, UAV or the satellite)."""


class Block(NamedTuple):
    """All twins of one entity at one tick; ``ids, columns, text = store.vehicles_frame()``."""

    ids: list[str]
    columns: dict[str, np.ndarray]
    """Numeric column name -> float64 array aligned with ``ids``."""
    text: dict[str, list[str]]
    """Text column name -> values aligned with ``ids``."""


class WindowMean(NamedTuple):
    """Window means (paper B Eq. 37) of every numeric column, aligned with the current ids."""

    ids: list[str]
    columns: dict[str, np.ndarray]
    """Column -> mean over the ticks of the window where the twin held it (NaN if none)."""
    counts: np.ndarray
    """Number of ticks in the window where each twin existed (>= 1)."""


class KpiSample(NamedTuple):
    """KPIs of one tick."""

    tick: int
    sim_time_s: float
    wall_time: float
    kpis: dict[str, float]


class Page(NamedTuple):
    """One page of ids and the total number of ids in the tick."""

    ids: list[str]
    total: int
