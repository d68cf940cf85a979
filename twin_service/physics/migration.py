"""Twin migration: latency, server load, failures, reward and action mask (paper A, Eq. 6-16, 21-23).

Sizes are bits (multiply the papers' MB by ``BITS_PER_MB``), rates bit/s, CPU Hz, times s, distances m.
Vehicles run along axis 0 and servers along axis 1 of every ``(V, M)`` matrix; a host index
below 0 means "not hosted yet". Inputs broadcast under numpy's rules: pair a per-vehicle
vector with a ``(V, M)`` matrix by passing it as a ``(V, 1)`` column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twin_service.physics.channel import free_space_rate_bps
from twin_service.physics.geo import SPEED_OF_LIGHT_MPS


def _f64(x: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64)


def _real(x: ArrayLike) -> NDArray[np.floating]:
    """As a float array, keeping float32: the (V, M) matrices of the bridge are float32 for speed."""
    arr = np.asarray(x)
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Transmission (Eq. 6-7, 11-13)
# ---------------------------------------------------------------------------------------------


def satellite_propagation_delay_s(distance_m: ArrayLike) -> NDArray[np.float64]:
    """One-way propagation delay ``D / c`` of a satellite leg, seconds. Our addition.

    Paper A charges the satellite only S / R_SAT (Eq. 6-7, 12) and so treats it as if it were
    next door; a LEO hop at 550 km adds 550e3 / 3e8 = 1.83 ms each way, which matters against
    the millisecond terrestrial latencies. Pass 0 where the paper's exact figures are wanted.
    """
    return _f64(distance_m) / SPEED_OF_LIGHT_MPS


def access_latency_s(
    data_bits: ArrayLike,
    rate_bps: ArrayLike,
    is_satellite: ArrayLike,
    satellite_rate_bps: float,
    satellite_propagation_s: float = 0.0,
) -> NDArray[np.float64]:
    """Uplink (paper A, Eq. 6) or downlink (Eq. 7) latency ``S_v / R``, seconds.

    Ground and air servers use the Shannon rate ``rate_bps`` (Eq. 4 for up, Eq. 5 for down); the
    satellite uses the fixed Starlink rate R_SAT plus ``satellite_propagation_s`` (our addition,
    see :func:`satellite_propagation_delay_s`). ``is_satellite`` marks the satellite server(s).
    """
    data = _f64(data_bits)
    with np.errstate(divide="ignore", invalid="ignore"):
        ground = data / _f64(rate_bps)
    satellite = data / satellite_rate_bps + satellite_propagation_s
    return np.where(np.asarray(is_satellite, dtype=bool), satellite, ground)


def migration_rate_bps(
    server_dist_m: ArrayLike,
    bandwidth_hz: float,
    tx_power_w: float,
    noise_w: float,
    carrier_hz: float,
    src_is_satellite: ArrayLike,
    dst_is_satellite: ArrayLike,
    satellite_rate_bps: float,
    gain_coefficient: float = 1.0,
) -> NDArray[np.float64]:
    """Migration rate R^mig_{m,m_d} of each leg (paper A, Eq. 11), bit/s; the arguments broadcast.

    ``B_mig log2(1 + p_m h^mig / sigma^2)`` with the free-space gain over the servers' distance
    (Eq. 3); any leg with the satellite at either end runs at R_SAT (NOTES.md). At 1000 m with
    B_mig = 300 MHz, p_m = 1 W, sigma^2 = 1e-13 W, 2.4 GHz: 2.986 Gbit/s.
    """
    rate = free_space_rate_bps(server_dist_m, bandwidth_hz, tx_power_w, noise_w, carrier_hz, gain_coefficient)
    via_sat = np.asarray(src_is_satellite, dtype=bool) | np.asarray(dst_is_satellite, dtype=bool)
    return np.where(via_sat, satellite_rate_bps, rate)


def migration_rate_matrix_bps(
    server_dist_m: ArrayLike,
    bandwidth_hz: float,
    tx_power_w: float,
    noise_w: float,
    carrier_hz: float,
    is_satellite: ArrayLike,
    satellite_rate_bps: float,
    gain_coefficient: float = 1.0,
) -> NDArray[np.float64]:
    """:func:`migration_rate_bps` for every pair of servers, shape ``(M, M)``, bit/s."""
    sat = np.asarray(is_satellite, dtype=bool).reshape(-1)
    return migration_rate_bps(
        server_dist_m,
        bandwidth_hz,
        tx_power_w,
        noise_w,
        carrier_hz,
        sat[:, None],
        sat[None, :],
        satellite_rate_bps,
        gain_coefficient,
    )


def satellite_leg_delay_s(
    src_is_satellite: ArrayLike, dst_is_satellite: ArrayLike, propagation_s: float
) -> NDArray[np.float64]:
    """Propagation delay of each migration leg, seconds (the arguments broadcast): ``propagation_s`` on a
    ground/air-to-satellite hop (exactly one end is the satellite), else 0 (terrestrial hops take
    microseconds). Our addition, as :func:`satellite_propagation_delay_s`."""
    one_end = np.asarray(src_is_satellite, dtype=bool) != np.asarray(dst_is_satellite, dtype=bool)
    return np.where(one_end, float(propagation_s), 0.0)


def satellite_leg_delay_matrix_s(is_satellite: ArrayLike, propagation_s: float) -> NDArray[np.float64]:
    """:func:`satellite_leg_delay_s` for every pair of servers, ``(M, M)``, seconds."""
    sat = np.asarray(is_satellite, dtype=bool).reshape(-1)
    return satellite_leg_delay_s(sat[:, None], sat[None, :], propagation_s)


def migration_flag(prev_host: ArrayLike, new_host: ArrayLike) -> NDArray[np.bool_]:
    """Migration indicator J (paper A, Eq. 10): True where the host changes.

    A vehicle's first placement (``prev_host < 0``) is not a migration: there is no twin yet
    on another server to move.
    """
    prev = np.asarray(prev_host)
    new = np.asarray(new_host)
    return (prev >= 0) & (new >= 0) & (prev != new)


def migration_latency_s(
    prev_host: ArrayLike,
    new_host: ArrayLike,
    migration_bits: ArrayLike,
    rate_matrix_bps: ArrayLike,
    leg_delay_matrix_s: ArrayLike | float = 0.0,
) -> NDArray[np.float64]:
    """Migration latency ``J S^mig_v / R^mig_{m,m_d}`` (paper A, Eq. 12) per vehicle, seconds.

    ``rate_matrix_bps`` comes from :func:`migration_rate_matrix_bps`; ``leg_delay_matrix_s``
    (scalar or ``(M, M)``) adds propagation on satellite legs
    (:func:`satellite_leg_delay_matrix_s`). 60 MB to the satellite at 150 Mbit/s: 3.2 s.
    """
    prev = np.asarray(prev_host, dtype=np.intp)
    new = np.asarray(new_host, dtype=np.intp)
    moved = migration_flag(prev, new)
    rates = _f64(rate_matrix_bps)
    src = np.where(moved, prev, 0)
    dst = np.where(moved, new, 0)
    legs = np.broadcast_to(_f64(leg_delay_matrix_s), rates.shape)
    with np.errstate(divide="ignore"):
        moving = _f64(migration_bits) / rates[src, dst] + legs[src, dst]
    return np.where(moved, moving, 0.0)


def total_latency_s(
    uplink_s: ArrayLike, downlink_s: ArrayLike, compute_s: ArrayLike, migration_s: ArrayLike
) -> NDArray[np.float64]:
    """Total latency ``T^sum = T^up + T^down + T^cul + T^mig`` (paper A, Eq. 13), seconds."""
    return _f64(uplink_s) + _f64(downlink_s) + _f64(compute_s) + _f64(migration_s)


# ---------------------------------------------------------------------------------------------
# Load and computing (Eq. 8-9, plus the backlog dynamic the paper omits)
# ---------------------------------------------------------------------------------------------


def server_load_bits(host_index: ArrayLike, data_bits: ArrayLike, backlog_bits: ArrayLike) -> NDArray[np.float64]:
    """Server load ``S'_m = S_m + sum_v g_{v,m} S_v`` (paper A, Eq. 8), shape ``(M,)``, bits.

    ``host_index`` (V,) names each vehicle's host (negative: none, not counted); ``data_bits``
    is S_v, scalar or (V,); ``backlog_bits`` (M,) is S_m, the unfinished work in each cache.
    """
    hosts = np.asarray(host_index, dtype=np.intp).reshape(-1)
    backlog = _f64(backlog_bits).reshape(-1)
    data = np.broadcast_to(_f64(data_bits), hosts.shape)
    hosted = hosts >= 0
    arriving = np.bincount(hosts[hosted], weights=data[hosted], minlength=backlog.size)
    return backlog + arriving[: backlog.size]


def drain_backlog_bits(
    load_bits: ArrayLike,
    cpu_hz: ArrayLike,
    cycles_per_bit: ArrayLike,
    tick_s: float,
    cache_bits: ArrayLike = np.inf,
) -> NDArray[np.float64]:
    """Backlog left after one tick: ``S_m(t+1) = clip(S'_m(t) - C_m / e_v * tick, 0, cache)``, bits.

    Paper A (Eq. 8-9) keeps unfinished work S_m in the cache but never says how it shrinks;
    NOTES.md's reading: a server works off ``C_m / e_v`` bits per second. 32 GHz at 1000
    cycles/bit drains 32 Mbit (4 MB) per second. ``cache_bits`` optionally drops what would
    not fit in the cache (L_max); the default keeps everything.
    """
    drained = _f64(cpu_hz) / _f64(cycles_per_bit) * tick_s
    return np.clip(_f64(load_bits) - drained, 0.0, _f64(cache_bits))


def dropped_bits(
    load_bits: ArrayLike,
    cpu_hz: ArrayLike,
    cycles_per_bit: ArrayLike,
    tick_s: float,
    cache_bits: ArrayLike,
) -> NDArray[np.float64]:
    """Data a server drops in one tick: ``max(0, S'_m - C_m / e_v * tick - cache)``, bits.

    What :func:`drain_backlog_bits` clips off with ``cache_bits``: the work neither done in the tick
    nor held in the cache (L_max; the satellite: its queue). 32 GHz at 1000 cycles/bit with a 2.4e9 bit
    cache: a load of 3e9 bits drops 3e9 - 32e6 - 2.4e9 = 568e6 bits.
    """
    drained = _f64(cpu_hz) / _f64(cycles_per_bit) * tick_s
    return np.maximum(_f64(load_bits) - drained - _f64(cache_bits), 0.0)


def compute_latency_s(
    load_bits: ArrayLike,
    cycles_per_bit: ArrayLike,
    cpu_hz: ArrayLike,
    load_max_bits: ArrayLike,
    satellite_cpu_hz: float,
    queue_bits: ArrayLike = np.inf,
) -> NDArray[np.float64]:
    """Computing latency (paper A, Eq. 9), seconds.

    ``e_v S'_m / C_m`` while ``S'_m <= L_max``; once the server is overloaded its twins are
    computed by the satellite: ``e_v S'_m / C_s``. For the satellite host pass its own CPU
    as ``cpu_hz`` and ``load_max_bits = inf``. 2 MB at 1000 cycles/bit on 32 GHz: 0.5 s.

    ``queue_bits`` (ours, see :func:`satellite_queue_bits`) is a finite queue in front of the CPU:
    data that does not fit is dropped (a failure, :func:`service_failure`), so the work waited on is
    ``min(S'_m, Q)`` and the latency never exceeds ``e_v Q / C``. 750 MB on 80 GHz at 72.3 cycles/bit:
    5.42 s, however much arrives.
    """
    load = _f64(load_bits)
    cpu = np.where(load > _f64(load_max_bits), satellite_cpu_hz, _f64(cpu_hz))
    return _f64(cycles_per_bit) * np.minimum(load, _f64(queue_bits)) / cpu


def satellite_queue_bits(is_satellite: ArrayLike, queue_bits: float) -> NDArray[np.float64]:
    """Queue bound of each server, bits: ``queue_bits`` for the satellite, ``inf`` for the others. Ours.

    Paper A gives the satellite unlimited room: it is never masked (Eq. 23) and never overloaded
    in Eq. 9's sense. Its backlog then grows without bound once the ground servers are full, and so
    does Eq. 9's latency (hundreds of seconds, which no real system reports). A real satellite
    queues a finite amount: what arrives while the queue is full is dropped, and its twins fail
    (Eq. 14) while it overflows. Ground and air servers are bounded by their cache L_max already
    (:func:`drain_backlog_bits` with ``cache_bits``), so they get ``inf`` here. Pass the result as
    ``queue_bits`` to :func:`compute_latency_s` and :func:`service_failure`, and its minimum with
    the cache as ``cache_bits`` to :func:`drain_backlog_bits`.
    """
    return np.where(np.asarray(is_satellite, dtype=bool), float(queue_bits), np.inf)


# ---------------------------------------------------------------------------------------------
# Failure, packet loss, load balance (Eq. 14-16)
# ---------------------------------------------------------------------------------------------


def service_failure(
    host_distance_m: ArrayLike,
    host_range_m: ArrayLike,
    host_load_bits: ArrayLike,
    host_load_max_bits: ArrayLike,
    host_queue_bits: ArrayLike = np.inf,
) -> NDArray[np.bool_]:
    """Service failure xi (paper A, Eq. 14): out of the host's range or the host overloaded.

    ``D_{v,m} > D_max or S'_m > L_max``, all taken at each vehicle's host. The satellite has
    unlimited range and cache: pass ``inf`` for both. Ours: a twin also fails while its host's
    finite queue overflows, ``S'_m > Q_m`` (:func:`satellite_queue_bits`): its data is dropped.
    """
    load = _f64(host_load_bits)
    return (
        (_f64(host_distance_m) > _f64(host_range_m))
        | (load > _f64(host_load_max_bits))
        | (load > _f64(host_queue_bits))
    )


def packet_loss_rate(failure_count: ArrayLike, slot_count: ArrayLike) -> NDArray[np.float64]:
    """Packet-loss rate ``q_v = sum_t xi_v^t / t_end`` (paper A, Eq. 15), a fraction in [0, 1].

    Paper A sums slots 0..t_end (t_end + 1 terms) but divides by t_end, which can exceed 100 %;
    we divide by the number of slots observed. A vehicle with no slot yet has q = 0.
    Multiply by 100 for the paper's per cent.
    """
    slots = _f64(slot_count)
    return np.where(slots > 0, _f64(failure_count) / np.maximum(slots, 1.0), 0.0)


def load_variance(load_bits: ArrayLike, axis: int = -1) -> NDArray[np.float64]:
    """Load variance over servers ``(1/M) sum_i (S'_i - mean)^2`` (paper A, Eq. 16b), bits^2."""
    return np.var(_f64(load_bits), axis=axis)


# ---------------------------------------------------------------------------------------------
# Reward (Eq. 21-22)
# ---------------------------------------------------------------------------------------------


@dataclass
class RunningZScore:
    """Online mean / std of a stream, for paper A's "Z-score normalisation in the time dimension".

    Batches merge with Chan et al.'s parallel update, so feeding a whole tick of vehicles at once
    gives the same moments as feeding them one by one. ``std`` never falls below ``std_floor``,
    so the first samples (std 0) normalise to 0 instead of dividing by zero.
    """

    std_floor: float = 1e-6
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, values: ArrayLike) -> None:
        """Fold a batch of observations (any shape, NaN-free) into the running moments."""
        x = _f64(values).reshape(-1)
        n = x.size
        if n == 0:
            return
        batch_mean = float(x.mean())
        batch_m2 = float(((x - batch_mean) ** 2).sum())
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Population standard deviation seen so far, floored at ``std_floor``."""
        if self.count == 0:
            return self.std_floor
        return max(float(np.sqrt(self.m2 / self.count)), self.std_floor)

    def normalize(self, values: ArrayLike) -> NDArray[np.float64]:
        """``(x - mean) / std`` with the moments seen so far (call :meth:`update` first to include x)."""
        return (_f64(values) - self.mean) / self.std


def shaped_reward(
    latency_z: ArrayLike,
    host_load_z: ArrayLike,
    failed: ArrayLike,
    *,
    w_latency: float,
    w_load: float,
    w_failure: float,
) -> NDArray[np.float64]:
    """Shaped migration reward ``-(w_T z(T^sum) + w_s z(S_m) + w_d xi)`` (paper A, Eq. 22).

    ``host_load_z`` is the z-scored load of the server the vehicle chose; Table I weights 2, 1, 1.
    """
    return -(w_latency * _f64(latency_z) + w_load * _f64(host_load_z) + w_failure * _f64(failed))


def unshaped_reward(
    latency_z: ArrayLike,
    load_variance_z: ArrayLike,
    failed: ArrayLike,
    *,
    w_latency: float,
    w_load: float,
    w_failure: float,
) -> NDArray[np.float64]:
    """Migration reward ``-(w_T z(T^sum) + w_s z(Var(S')) + w_d xi)`` (paper A, Eq. 21).

    As :func:`shaped_reward` but with the z-scored load variance over all servers (Eq. 16b),
    the same for every vehicle in a tick.
    """
    return -(w_latency * _f64(latency_z) + w_load * _f64(load_variance_z) + w_failure * _f64(failed))


# ---------------------------------------------------------------------------------------------
# Dynamic action mask (Eq. 23)
# ---------------------------------------------------------------------------------------------


def migration_mask(
    dist_m: ArrayLike,
    server_range_m: ArrayLike,
    load_bits: ArrayLike,
    incoming_bits: ArrayLike,
    load_max_bits: ArrayLike,
    is_satellite: ArrayLike,
    host_index: ArrayLike | None = None,
    active: ArrayLike | None = None,
) -> NDArray[np.bool_]:
    """Dynamic action mask K (paper A, Eq. 23), ``(V, M)`` bool: True = the vehicle may move there.

    A server is masked out (False) when it is out of range (``D_{v,m} > D_max``) or when taking
    the vehicle would overload it (``load + incoming > L_max``). ``load_bits`` (M,) or (V, M) is
    the server's predicted or current load including its backlog; ``incoming_bits`` (scalar or
    (V,)) is what the move adds: S_v by default in our service (the paper's text also speaks of
    "the size of the VT migration task", S^mig, which a caller may pass instead). With
    ``host_index`` (V,), a vehicle staying on its current host adds nothing, because its S_v
    is already part of that host's load. ``active`` (M,) masks servers that are out of service
    (a UAV not yet arrived or gone, an RSU outage). The satellite column is never masked: it is the
    action that is always there.
    """
    dist = _real(dist_m)
    if dist.ndim != 2:
        raise ValueError(f"dist_m must be (V, M), got shape {dist.shape}")
    ftype = dist.dtype
    incoming = np.asarray(incoming_bits, dtype=np.float64)
    if incoming.ndim == 1:
        incoming = incoming[:, None]
    # Room left on each server; a server whose load plus the vehicle's data exceeds L_max is masked.
    room = np.asarray(load_max_bits, dtype=np.float64) - np.asarray(load_bits, dtype=np.float64)
    if incoming.ndim == 0 and room.ndim == 1:
        fits = np.broadcast_to(room >= incoming, dist.shape)  # the same for every vehicle: one row
    else:
        fits = np.broadcast_to(incoming, dist.shape) <= room
    if host_index is not None:
        # Staying adds nothing: the own host's column needs only room >= 0. Fixed up per vehicle, so no
        # (V, M) float temporary is built (this runs every tick over every vehicle and server).
        hosts = np.asarray(host_index, dtype=np.intp).reshape(-1)
        rows = np.flatnonzero((hosts >= 0) & (hosts < dist.shape[1]))
        if not fits.flags.writeable:  # the one-row broadcast above
            fits = fits.copy()
        cols = hosts[rows]
        fits[rows, cols] = (room[cols] if room.ndim == 1 else room[rows, cols]) >= 0.0
    in_range = dist <= np.asarray(server_range_m, dtype=np.float64).astype(ftype)
    allowed = in_range & fits
    if active is not None:
        allowed &= np.asarray(active, dtype=bool)
    allowed |= np.asarray(is_satellite, dtype=bool)
    return allowed


def nearest_feasible_server(dist_m: ArrayLike, mask: ArrayLike, satellite_index: int) -> NDArray[np.intp]:
    """Nearest unmasked ground/air server per vehicle, else the satellite, shape ``(V,)``.

    The satellite is the fallback, never the "nearest": it is chosen only when no other server
    is feasible (the Greedy baseline of paper A and the service's safe default).
    """
    dist = _real(dist_m)
    allowed = np.asarray(mask, dtype=bool).copy()
    allowed[:, satellite_index] = False
    candidates = np.where(allowed, dist, np.inf).astype(dist.dtype, copy=False)
    best = np.argmin(candidates, axis=1)
    none_left = ~allowed.any(axis=1)
    return np.where(none_left, satellite_index, best).astype(np.intp)
