"""Twin state -> observations and action masks, shared by serving (API, bridge) and training (envs).

One function per decision keeps the policy's input identical wherever it runs:

* :func:`migration_observation` (paper A, Eq. 19 and 23): per vehicle, the distances to the M-1 ground and
  air servers and the predicted workload of all M servers, plus the dynamic mask.
* :func:`offload_observation` (paper B, Eq. 3-4 and 37): per vehicle, its twin now, the 10 s window mean,
  and the host server's twin.

Inputs are plain arrays so that the bridge (in memory), the API (from Redis) and an environment (from a
recording) all call the same code.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from numpy.typing import NDArray

from twin_service.config import BITS_PER_MB, ChannelParams, SatelliteParams, TaskParams
from twin_service.physics import (
    MIN_LINK_DISTANCE_M,
    access_latency_s,
    free_space_gain,
    free_space_rate_bps,
    migration_mask,
    migration_rate_bps,
    satellite_leg_delay_s,
    satellite_propagation_delay_s,
)
from twin_service.physics.compiled import pair_latency_compiled
from twin_service.twins.window import window_mean_aligned

OBS_SPEC_VERSION = "1"
"""Bump when the meaning or order of observation features changes; models record it."""


@dataclass(frozen=True)
class ServerTable:
    """The candidate hosts, in layout order (RSUs, UAVs, then the satellite last or anywhere)."""

    ids: tuple[str, ...]
    tiers: tuple[str, ...]
    range_m: NDArray[np.float64]
    load_max_bits: NDArray[np.float64]
    cpu_hz: NDArray[np.float64]
    altitude_m: NDArray[np.float64]
    active: NDArray[np.bool_] | None = None
    """``(M,)`` False for a server out of service now (a UAV not yet arrived or gone, an RSU outage): it is
    masked (Eq. 23), and a twin still on it fails (Eq. 14). None: all in service."""

    def __post_init__(self) -> None:
        # The satellite has unlimited range and room (NOTES.md, Eq. 14 and 23). Stored layouts and API
        # requests carry finite stand-ins for it (JSON has no infinity: 1e12 m, 1e9 MB); the table holds inf
        # whatever the source, so that the bridge's own table and one rebuilt from records give the same
        # features (the satellite's load feature is 0) and the same free room.
        for name in ("range_m", "load_max_bits"):
            object.__setattr__(self, name, np.where(self.is_satellite, np.inf, np.asarray(getattr(self, name), float)))
        active = np.ones(len(self.ids), dtype=bool) if self.active is None else np.asarray(self.active, dtype=bool)
        if active.shape != (len(self.ids),):
            raise ValueError(f"active must be ({len(self.ids)},), got {active.shape}")
        object.__setattr__(self, "active", active)

    def with_active(self, active: NDArray[np.bool_] | None) -> ServerTable:
        """The same servers with another in-service flag per server (None: all in service)."""
        return ServerTable(self.ids, self.tiers, self.range_m, self.load_max_bits, self.cpu_hz, self.altitude_m, active)

    @cached_property
    def all_active(self) -> bool:
        return bool(self.active.all())

    @property
    def size(self) -> int:
        return len(self.ids)

    # The table is frozen and these are read several times a tick (masks, features, policies): computed once.
    @cached_property
    def is_satellite(self) -> NDArray[np.bool_]:
        return np.array([t == "satellite" for t in self.tiers])

    @cached_property
    def rsu_indices(self) -> NDArray[np.intp]:
        return np.flatnonzero(np.array([t == "rsu" for t in self.tiers], dtype=bool))

    @cached_property
    def satellite_index(self) -> int:
        hits = np.flatnonzero(self.is_satellite)
        if len(hits) != 1:
            raise ValueError(f"expected exactly one satellite among the servers, found {len(hits)}")
        return int(hits[0])

    @cached_property
    def ground_air_indices(self) -> NDArray[np.intp]:
        return np.flatnonzero(~self.is_satellite)

    @classmethod
    def from_records(cls, servers: list[dict]) -> ServerTable:
        """From the layout records the bridge stores (``id, tier, range_m, cache_mb, cpu_hz, altitude_m``)."""
        return cls(
            ids=tuple(str(s["id"]) for s in servers),
            tiers=tuple(str(s["tier"]) for s in servers),
            range_m=np.array([float(s["range_m"]) for s in servers]),
            load_max_bits=np.array([float(s["cache_mb"]) * BITS_PER_MB for s in servers]),
            cpu_hz=np.array([float(s["cpu_hz"]) for s in servers]),
            altitude_m=np.array([float(s["altitude_m"]) for s in servers]),
        )


@dataclass(frozen=True)
class VehicleMotion:
    """Where the vehicles and servers are and how the vehicles move (the net's plane metres, m/s).

    The twins hold position, speed and heading (SUMO's angle: degrees clockwise from north), so the bridge, an
    environment and the API all know which servers a vehicle is driving towards or away from.
    """

    vehicle_xy_m: NDArray[np.float64]
    """``(V, 2)``."""
    velocity_mps: NDArray[np.float64]
    """``(V, 2)``."""
    server_xy_m: NDArray[np.float64]
    """``(M, 2)``."""

    @classmethod
    def from_twins(
        cls,
        x_m: NDArray[np.floating],
        y_m: NDArray[np.floating],
        speed_mps: NDArray[np.floating],
        heading_deg: NDArray[np.floating],
        server_x_m: NDArray[np.floating],
        server_y_m: NDArray[np.floating],
    ) -> VehicleMotion:
        angle = np.radians(np.asarray(heading_deg, dtype=np.float64))
        speed = np.asarray(speed_mps, dtype=np.float64)
        return cls(
            np.stack([np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64)], axis=1),
            np.stack([speed * np.sin(angle), speed * np.cos(angle)], axis=1),
            np.stack([np.asarray(server_x_m, dtype=np.float64), np.asarray(server_y_m, dtype=np.float64)], axis=1),
        )

    def closing_mps(self, rows: NDArray[np.intp], cols: NDArray[np.intp]) -> NDArray[np.float64]:
        """How fast each vehicle ``rows`` approaches server ``cols`` on the ground (negative: moving away)."""
        # Per coordinate, on contiguous copies of the (small) position tables: the same operations as the dot
        # product of the (P, 2) offsets and velocities (dx*vx + dy*vy), a third of the time on a tick's pairs.
        sx, sy = self.server_xy_m.T.copy()
        vx, vy = self.vehicle_xy_m.T.copy()
        ux, uy = self.velocity_mps.T.copy()
        dx = sx[cols] - vx[rows]
        dy = sy[cols] - vy[rows]
        norm = np.maximum(np.hypot(dx, dy), 1.0)
        dx *= ux[rows]
        dy *= uy[rows]
        dx += dy
        return dx / norm


@dataclass(frozen=True)
class MigrationObservation:
    """Paper A observation o_v (Eq. 19) and mask K_v (Eq. 23) for a batch of vehicles."""

    mask: NDArray[np.bool_]
    """``(V, M)``: True where the vehicle's twin may be hosted (Eq. 23); the satellite is always True."""
    distances_m: NDArray[np.floating]
    """``(V, M)`` metres: float32 from the bridge (its plane distances), float64 from API requests."""
    predicted_load_bits: NDArray[np.float64]
    servers: ServerTable
    motion: VehicleMotion | None = None
    """How the vehicles move relative to the servers (None where the twins carry no position or heading)."""
    incoming_bits: NDArray[np.float64] | float = 0.0
    """What hosting each vehicle adds to a server (S_v), as the mask was built with."""
    dynamic_mask: bool = True
    """False: the mask allows every server (paper A's ablation without the mask)."""

    def subset(
        self,
        rows: NDArray[np.intp],
        predicted_load_bits: NDArray[np.float64] | None = None,
        host_index: NDArray[np.int64] | None = None,
    ) -> MigrationObservation:
        """The observation of the vehicles ``rows`` only, with other predicted loads (their mask rebuilt).

        What a vehicle deciding after others sees: the loads their moves left (``policies.sequential``).
        """
        loads = self.predicted_load_bits if predicted_load_bits is None else predicted_load_bits
        motion = self.motion
        if motion is not None:
            motion = VehicleMotion(motion.vehicle_xy_m[rows], motion.velocity_mps[rows], motion.server_xy_m)
        incoming = self.incoming_bits if np.ndim(self.incoming_bits) == 0 else np.asarray(self.incoming_bits)[rows]
        return migration_observation(
            self.distances_m[rows],
            loads,
            incoming,
            self.servers,
            host_index,
            dynamic_mask=self.dynamic_mask,
            motion=motion,
        )

    @cached_property
    def features(self) -> NDArray[np.float32]:
        """``(V, (M-1) + M)``: distances to ground/air servers / their range, then predicted loads / L_max.

        Built on first use: rule-based policies need only the mask and distances.
        """
        servers = self.servers
        ga = servers.ground_air_indices
        k = len(ga)
        n = self.distances_m.shape[0]
        features = np.empty((n, migration_feature_dim(servers.size)), dtype=np.float32)
        # Every tick over every vehicle and server: one pass in float32, no fancy-indexed copy when the
        # satellite is the last column (as in every layout the service writes).
        dist = self.distances_m[:, :k] if np.array_equal(ga, np.arange(k)) else self.distances_m[:, ga]
        np.multiply(dist, (1.0 / servers.range_m[ga]).astype(np.float32), out=features[:, :k], casting="unsafe")
        features[:, k:] = self.predicted_load_bits / servers.load_max_bits
        return features

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])


def migration_feature_dim(n_servers: int) -> int:
    return 2 * n_servers - 1


def migration_observation(
    distances_m: NDArray[np.float64],
    predicted_load_bits: NDArray[np.float64],
    incoming_bits: NDArray[np.float64] | float,
    servers: ServerTable,
    host_index: NDArray[np.int64] | None = None,
    *,
    dynamic_mask: bool = True,
    motion: VehicleMotion | None = None,
) -> MigrationObservation:
    """Build paper A's observation and dynamic mask.

    Parameters
    ----------
    distances_m:
        ``(V, M)`` vehicle-to-server distances (Eq. 2).
    predicted_load_bits:
        ``(M,)`` each server's predicted load S'_m for the next slot, backlog included (Eq. 8 and the
        workload predictor; the current load when no predictor is loaded).
    incoming_bits:
        What hosting the vehicle adds to a server (S_v), scalar or ``(V,)``.
    host_index:
        ``(V,)`` current hosts (-1 for none): staying on the current host adds nothing (see the mask).
    dynamic_mask:
        False removes the dynamic mask module (paper A's ablation, Fig. 9): every server is allowed, and a
        policy may send a twin out of range or onto an overloaded server (where it fails, Eq. 14).
    """
    dist = np.asarray(distances_m)
    if dist.dtype not in (np.float32, np.float64):  # the bridge's float32 matrix is kept as it is
        dist = dist.astype(np.float64)
    loads = np.asarray(predicted_load_bits, dtype=np.float64)
    if dist.ndim != 2 or dist.shape[1] != servers.size:
        raise ValueError(f"distances must be (V, {servers.size}), got {dist.shape}")
    if loads.shape != (servers.size,):
        raise ValueError(f"predicted loads must be ({servers.size},), got {loads.shape}")
    incoming = incoming_bits if np.ndim(incoming_bits) == 0 else np.asarray(incoming_bits, dtype=np.float64)
    if not dynamic_mask:
        return MigrationObservation(np.ones(dist.shape, dtype=bool), dist, loads, servers, motion, incoming, False)
    mask = migration_mask(
        dist,
        servers.range_m,
        loads,
        incoming_bits,
        servers.load_max_bits,
        servers.is_satellite,
        host_index,
        None if servers.all_active else servers.active,
    )
    return MigrationObservation(mask, dist, loads, servers, motion, incoming, True)


@dataclass(frozen=True)
class LatencyModel:
    """The constants a latency estimate needs: ``[task]`` (S_v, S_mig, e_v), ``[channel]`` and ``[satellite]``."""

    task: TaskParams = TaskParams()
    channel: ChannelParams = ChannelParams()
    satellite: SatelliteParams = SatelliteParams()


def pair_latency_s(
    distances_m: NDArray[np.floating],
    host: NDArray[np.int64],
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    is_satellite: NDArray[np.bool_],
    model: LatencyModel,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """What hosting vehicle ``rows`` on server ``cols`` costs in latency besides computing, seconds.

    Returns the access latency (up and down at the current distance, Eq. 4-7; the satellite at R_SAT plus its
    propagation) and the migration latency if the server is not the vehicle's host (Eq. 11-12, over
    ``D_vh + D_vm``, which bounds the distance between the two servers; 0 on the host or for a vehicle
    without one). For the given pairs only: a few per vehicle.

    Compiled with numba where it can be (:func:`twin_service.physics.compiled.pair_latency_compiled`: the same
    numbers to the bit, tested), several times faster than the array expression
    :func:`pair_latency_s_numpy`, which is the reference and the fallback.
    """
    c, task = model.channel, model.task
    fast = pair_latency_compiled(
        distances_m,
        host,
        rows,
        cols,
        is_satellite,
        gain_at_1m=_gain_at_1m(c.carrier_hz, c.gain_coefficient),
        min_distance_m=MIN_LINK_DISTANCE_M,
        noise_w=c.noise_w,
        up=(c.bandwidth_up_hz, c.vehicle_tx_power_w),
        down=(c.bandwidth_down_hz, c.server_tx_power_w),
        mig=(c.bandwidth_mig_hz, c.server_tx_power_w),
        data_bits=task.data_size_mb * BITS_PER_MB,
        migration_bits=task.migration_size_mb * BITS_PER_MB,
        satellite_rate_bps=c.satellite_rate_bps,
        propagation_s=_propagation_s(model.satellite.altitude_m),
    )
    if fast is not None:
        return fast
    return pair_latency_s_numpy(distances_m, host, rows, cols, is_satellite, model)


@lru_cache(maxsize=8)
def _propagation_s(altitude_m: float) -> float:
    return float(satellite_propagation_delay_s(altitude_m))


@lru_cache(maxsize=8)
def _gain_at_1m(carrier_hz: float, gain_coefficient: float) -> float:
    return float(free_space_gain(1.0, carrier_hz, gain_coefficient))


def pair_latency_s_numpy(
    distances_m: NDArray[np.floating],
    host: NDArray[np.int64],
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    is_satellite: NDArray[np.bool_],
    model: LatencyModel,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`pair_latency_s` as array expressions: the reference its compiled form is tested against, and its
    fallback."""
    c, task = model.channel, model.task
    data = task.data_size_mb * BITS_PER_MB
    prop = float(satellite_propagation_delay_s(model.satellite.altitude_m))
    d = np.asarray(distances_m[rows, cols], dtype=np.float64)
    on_sat = is_satellite[cols]
    up = free_space_rate_bps(d, c.bandwidth_up_hz, c.vehicle_tx_power_w, c.noise_w, c.carrier_hz, c.gain_coefficient)
    up_s = access_latency_s(data, up, on_sat, c.satellite_rate_bps, prop)
    if (c.bandwidth_down_hz, c.server_tx_power_w) == (c.bandwidth_up_hz, c.vehicle_tx_power_w):
        down_s = up_s  # a symmetric link (the defaults): the same numbers, computed once
    else:
        down = free_space_rate_bps(
            d, c.bandwidth_down_hz, c.server_tx_power_w, c.noise_w, c.carrier_hz, c.gain_coefficient
        )
        down_s = access_latency_s(data, down, on_sat, c.satellite_rate_bps, prop)
    access = up_s + down_s
    migration = np.zeros(len(rows))
    h = np.asarray(host, dtype=np.int64)[rows]
    moving = (h >= 0) & (h != cols)
    if moving.any():
        hm, rm, cm = h[moving], rows[moving], cols[moving]
        legs = np.asarray(distances_m[rm, hm], dtype=np.float64) + d[moving]
        rate = migration_rate_bps(
            legs,
            c.bandwidth_mig_hz,
            c.server_tx_power_w,
            c.noise_w,
            c.carrier_hz,
            is_satellite[hm],
            is_satellite[cm],
            c.satellite_rate_bps,
            c.gain_coefficient,
        )
        migration[moving] = task.migration_size_mb * BITS_PER_MB / rate + satellite_leg_delay_s(
            is_satellite[hm], is_satellite[cm], prop
        )
    return access, migration


PER_SERVER_FEATURES = (
    "distance_over_range",
    "access_latency_s",
    "migration_latency_s",
    "compute_latency_if_hosted_s",
    "load_over_cache",
    "room_after_join",
    "is_current_host",
    "tier_rsu",
    "tier_uav",
    "tier_satellite",
    "host_compute_latency_s",
    "host_distance_over_range",
    "closing_speed",
    "minutes_in_range",
)
"""Features of each (vehicle, server) pair for an actor that scores every server with one shared network.

Unlike o_v (Eq. 19), whose length is tied to the layout, these describe a candidate host by what the
physics makes of it: how far it is relative to its range, the access latency there and the migration latency
of moving there (:func:`pair_latency_s`), the compute latency the twin would see there (Eq. 9 with the
predicted load plus the twin's own data unless it is already there), how full it is, its
tier, whether it is the current host; the vehicle's current host's latency and distance; and how the vehicle
moves relative to it: its closing speed (m/s over 20, negative when driving away) and how long it stays in range
at that speed (minutes, at most 2). One policy then serves any number of servers in any city, and UAVs joining or
leaving need no retraining."""
IN_RANGE_CAP_S = 120.0
"""Beyond two minutes in range a server is as good as staying for ever (and the satellite always is)."""


LOAD_FEATURES = ("compute_latency_if_hosted_s", "load_over_cache", "room_after_join", "host_compute_latency_s")
"""The pair features that depend on the servers' predicted loads: the only ones that change between the turns of a
tick (``policies.sequential``), where moves change loads but not where anyone is. The others are load-free."""
LOAD_COLUMNS = tuple(PER_SERVER_FEATURES.index(name) for name in LOAD_FEATURES)
"""Their columns in ``PER_SERVER_FEATURES``."""


def per_server_features(
    observation: MigrationObservation,
    host_index: NDArray[np.int64] | None,
    model: LatencyModel,
    pairs: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None,
) -> NDArray[np.float32]:
    """Float32 features (``PER_SERVER_FEATURES``) of (vehicle, server) pairs.

    ``pairs`` = ``(rows, cols)`` gives the pairs wanted (the feasible ones: an actor scores only those) and
    the result is ``(P, F)``; without it every pair, ``(V, M, F)``. ``model`` holds the scenario's constants
    (the serving scenario's: a policy computes its features with the physics it serves); the satellite's L_max
    is unlimited, so its load and room features are 0 and 1 and its compute latency carries its load.

    It is :func:`load_free_features` then :func:`set_load_features`, which a caller that scores the same pairs
    again under other loads (the per-server actor's turns) uses apart.
    """
    n, m = observation.distances_m.shape
    if pairs is None:
        rows, cols = (a.reshape(-1) for a in np.indices((n, m)))
    else:
        rows, cols = np.asarray(pairs[0], dtype=np.intp), np.asarray(pairs[1], dtype=np.intp)
    out = load_free_features(observation, host_index, model, (rows, cols))
    set_load_features(out, observation.predicted_load_bits, observation.servers, host_index, model, (rows, cols))
    return out if pairs is not None else out.reshape(n, m, len(PER_SERVER_FEATURES))


def load_free_features(
    observation: MigrationObservation,
    host_index: NDArray[np.int64] | None,
    model: LatencyModel,
    pairs: tuple[NDArray[np.intp], NDArray[np.intp]],
) -> NDArray[np.float32]:
    """``(P, F)`` features of the pairs ``(rows, cols)`` (:func:`per_server_features`) whose values do not depend
    on the predicted loads; the ``LOAD_COLUMNS`` are left undefined (:func:`set_load_features` writes them).

    Elementwise per pair: a pair's values are the same whichever other pairs are computed with it (what lets a
    caller keep them and compute only the pairs it lacks)."""
    servers = observation.servers
    dist_all = observation.distances_m
    n, m = dist_all.shape
    rows, cols = np.asarray(pairs[0], dtype=np.intp), np.asarray(pairs[1], dtype=np.intp)
    host = np.full(n, -1, dtype=np.int64) if host_index is None else np.asarray(host_index, dtype=np.int64)
    has_host = (host >= 0) & (host < m)
    at = np.where(has_host, host, 0)
    sat = servers.is_satellite
    range_m = np.where(sat, 1.0, servers.range_m)
    dist = np.asarray(dist_all[rows, cols], dtype=np.float64)
    s = sat[cols]
    is_host = has_host[rows] & (host[rows] == cols)
    out = np.empty((len(rows), len(PER_SERVER_FEATURES)), dtype=np.float32)
    access, migration = pair_latency_s(dist_all, host, rows, cols, sat, model)
    out[:, 0] = np.where(s, 0.0, dist / range_m[cols])
    out[:, 1] = access
    out[:, 2] = migration
    out[:, 6] = is_host
    tier = np.array([{"rsu": 0, "uav": 1}.get(t, 2) for t in servers.tiers])[cols]
    for k in range(3):  # one-hot
        np.equal(tier, k, out=out[:, 7 + k], casting="unsafe")
    host_ratio = np.where(
        has_host & ~sat[at], np.asarray(dist_all[np.arange(n), at], dtype=np.float64) / range_m[at], 0.0
    )
    out[:, 11] = host_ratio[rows]
    motion = observation.motion
    if motion is None:  # twins without position or heading: as if parked, in range for good
        out[:, 12] = 0.0
        out[:, 13] = IN_RANGE_CAP_S / 60.0
    else:
        closing = motion.closing_mps(rows, cols)
        with np.errstate(divide="ignore", invalid="ignore"):
            leaving_s = np.where(closing < -0.1, (servers.range_m[cols] - dist) / -closing, IN_RANGE_CAP_S)
        out[:, 12] = closing / 20.0
        out[:, 13] = np.where(s, IN_RANGE_CAP_S, np.clip(leaving_s, 0.0, IN_RANGE_CAP_S)) / 60.0
    return out


def set_load_features(
    features: NDArray[np.float32],
    predicted_load_bits: NDArray[np.float64],
    servers: ServerTable,
    host_index: NDArray[np.int64] | None,
    model: LatencyModel,
    pairs: tuple[NDArray[np.intp], NDArray[np.intp]],
) -> None:
    """Write the ``LOAD_COLUMNS`` of ``features`` (the pairs ``(rows, cols)``; ``host_index`` per row of the
    observation they index) for the loads ``predicted_load_bits``, in place."""
    cycles_per_bit = model.task.cycles_per_bit
    incoming_bits = model.task.data_size_mb * BITS_PER_MB
    rows, cols = np.asarray(pairs[0], dtype=np.intp), np.asarray(pairs[1], dtype=np.intp)
    m = servers.size
    load = np.asarray(predicted_load_bits, dtype=np.float64)
    host_of_pair = (
        np.full(len(rows), -1, dtype=np.int64) if host_index is None else np.asarray(host_index, dtype=np.int64)[rows]
    )
    pair_has_host = (host_of_pair >= 0) & (host_of_pair < m)
    sat = servers.is_satellite
    limit = np.where(sat, 1.0, servers.load_max_bits)  # finite stand-in for the satellite (its ratios are fixed)
    cpu = np.asarray(servers.cpu_hz, dtype=np.float64)
    s = sat[cols]
    is_host = pair_has_host & (host_of_pair == cols)
    joined = load[cols] + np.where(is_host, 0.0, incoming_bits)
    features[:, 3] = cycles_per_bit * joined / cpu[cols]
    features[:, 4] = np.where(s, 0.0, load[cols] / limit[cols])
    features[:, 5] = np.where(s, 1.0, np.clip((limit[cols] - joined) / limit[cols], -1.0, 1.0))
    at = np.where(pair_has_host, host_of_pair, 0)
    features[:, 10] = np.where(pair_has_host, cycles_per_bit * load[at] / cpu[at], 0.0)


OFFLOAD_FEATURES = (
    "f_hz",
    "r_bps",
    "energy_frac",
    "speed_mps",
    "data_bits",
    "cycles",
    "deadline_s",
    "host_cpu_hz",
    "host_offloaders",
    "host_is_satellite",
)
"""Per-vehicle offload features, each given now and as its 10 s window mean (paper B Eq. 3, 4, 37)."""

_OFFLOAD_SCALE = {
    "f_hz": 1e9,
    "r_bps": 1e8,
    "energy_frac": 1.0,
    "speed_mps": 20.0,
    "data_bits": 1e7,
    "cycles": 1e9,
    "deadline_s": 1.0,
    "host_cpu_hz": 1e9,
    "host_offloaders": 10.0,
    "host_is_satellite": 1.0,
}


def offload_feature_dim() -> int:
    return 2 * len(OFFLOAD_FEATURES)


def offload_observation(
    now: dict[str, NDArray[np.float64]], window_mean: dict[str, NDArray[np.float64]] | None = None
) -> NDArray[np.float32]:
    """Paper B observation ``(V, 2 * len(OFFLOAD_FEATURES))``: the twin now, then its window mean (Eq. 37).

    Missing window means (a vehicle's first tick) fall back to the current value.
    """
    missing = [k for k in OFFLOAD_FEATURES if k not in now]
    if missing:
        raise ValueError(f"offload observation lacks {missing}")
    cols = []
    for key in OFFLOAD_FEATURES:
        cols.append(np.asarray(now[key], dtype=np.float64) / _OFFLOAD_SCALE[key])
    for key in OFFLOAD_FEATURES:
        current = np.asarray(now[key], dtype=np.float64)
        mean = current if window_mean is None or key not in window_mean else np.asarray(window_mean[key])
        mean = np.where(np.isfinite(mean), mean, current)
        cols.append(mean / _OFFLOAD_SCALE[key])
    return np.stack(cols, axis=1).astype(np.float32) if cols[0].size else np.zeros((0, len(cols)), np.float32)


class OffloadWindow:
    """Paper B's 10 s context (Eq. 37) for the offload features, kept as the twin store keeps it.

    Each tick :meth:`push` adds the vehicles' current :data:`OFFLOAD_FEATURES`; :meth:`mean` averages each
    present vehicle's features over the ticks of the window that hold it, with the same function as
    :meth:`twin_service.twins.TwinStore.vehicles_window_mean` over the same ticks
    (:func:`twin_service.twins.window.window_mean_aligned`). So the engine (bridge and environments) and the
    API, reading the window back from Redis, give a learned policy the same context.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size = size
        self._blocks: deque[tuple[NDArray, NDArray[np.float64], tuple[str, ...]]] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._blocks)

    def clear(self) -> None:
        self._blocks.clear()

    def push(self, keys: NDArray, now: Mapping[str, NDArray[np.floating]]) -> None:
        """Add one tick: ``keys`` (V,) identify the vehicles (unique, sortable), ``now`` their features."""
        keys = np.asarray(keys)
        table = np.empty((len(keys), len(OFFLOAD_FEATURES)))
        for j, name in enumerate(OFFLOAD_FEATURES):
            table[:, j] = now[name]
        self._blocks.append((keys, table, OFFLOAD_FEATURES))

    def mean(self) -> dict[str, NDArray[np.float64]]:
        """Window mean of every feature, aligned with the last pushed tick's vehicles."""
        return self.snapshot().mean()

    def snapshot(self) -> WindowSnapshot:
        """The window as it is now; its mean can be taken later, after more ticks were pushed."""
        if not self._blocks:
            raise ValueError("the window is empty")
        return WindowSnapshot(tuple(self._blocks))


@dataclass(frozen=True)
class WindowSnapshot:
    """The blocks of an :class:`OffloadWindow` at one tick; the mean is computed on demand (once)."""

    blocks: tuple[tuple[NDArray, NDArray[np.float64], tuple[str, ...]], ...]

    @cached_property
    def _mean(self) -> dict[str, NDArray[np.float64]]:
        columns, _ = window_mean_aligned(self.blocks[-1][0], list(self.blocks))
        return columns

    def mean(self) -> dict[str, NDArray[np.float64]]:
        """Paper B Eq. 37 per feature, aligned with the snapshot's last tick."""
        return self._mean
