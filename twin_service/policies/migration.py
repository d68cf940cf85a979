"""Heuristic twin-migration policies (paper A): greedy, random, sticky-nearest and least-loaded.

Every policy picks only among the servers its mask allows (Eq. 23), so none can return an infeasible
target; the satellite is never masked, so there is always one.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twin_service.config import BITS_PER_MB, ChannelParams, SatelliteParams, TaskParams
from twin_service.observe import LatencyModel, MigrationObservation, ServerTable, pair_latency_s
from twin_service.physics import migration_rate_bps, nearest_feasible_server
from twin_service.policies import compiled
from twin_service.policies.base import HEURISTIC_VERSION, MigrationDecision, one_hot
from twin_service.policies.compiled import place_one_at_a_time_compiled


def _uniform_feasible(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """``(V, M)`` uniform probabilities over each row's feasible servers."""
    allowed = mask.astype(np.float64)
    return allowed / np.maximum(allowed.sum(axis=1, keepdims=True), 1.0)


def _sample_feasible(rng: np.random.Generator, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """One server per row, uniformly among the row's feasible ones (argmax of masked uniform noise)."""
    noise = rng.random(mask.shape)
    noise[~mask] = -1.0
    return np.argmax(noise, axis=1).astype(np.int64)


def capacity_aware_nearest(
    dist_m: ArrayLike,
    mask: ArrayLike,
    free_bits: ArrayLike,
    incoming_bits: ArrayLike,
    satellite_index: int,
) -> NDArray[np.int64]:
    """Nearest feasible server per vehicle, without herding more vehicles onto a server than it can take.

    Assignment runs in rounds. In each round every unassigned vehicle picks its nearest allowed ground or
    air server that still has room for its twin (``free_bits >= incoming_bits``); each server accepts its
    pickers nearest first while its free capacity lasts (the sum of the accepted ``incoming_bits`` stays
    within ``free_bits``); the rejected pick again in the next round, among the servers with room left for
    them. A vehicle with no allowed ground or air server with room goes to the satellite, which accepts
    everyone. So each twin ends on its nearest feasible server that had room when its turn came.

    Parameters
    ----------
    dist_m
        ``(V, M)`` vehicle-to-server distances (paper A, Eq. 2).
    mask
        ``(V, M)`` feasibility (Eq. 23); the result is always True here (the satellite column is
        feasible by definition).
    free_bits
        ``(M,)`` capacity left on each server this slot: ``L_max - predicted load``.
    incoming_bits
        What hosting each vehicle adds (S_v), scalar or ``(V,)``.
    satellite_index
        Column of the satellite.

    Returns
    -------
    ``(V,)`` server index per vehicle.

    The first picker of a server always fits (servers too full for a vehicle are dropped before it picks),
    so every round assigns at least one vehicle per picked server and the loop ends. With one size for
    all twins, a rejected vehicle never finds room on that server again.
    """
    dist = np.asarray(dist_m)
    if dist.dtype not in (np.float32, np.float64):  # keep the bridge's float32 matrix as it is
        dist = dist.astype(np.float64)
    if dist.ndim != 2:
        raise ValueError(f"dist_m must be (V, M), got {dist.shape}")
    n_vehicles, n_servers = dist.shape
    allowed = np.array(mask, dtype=bool, copy=True)
    if allowed.shape != dist.shape:
        raise ValueError(f"mask must be {dist.shape}, got {allowed.shape}")
    allowed[:, satellite_index] = False  # the fallback, never a pick
    free = np.array(np.broadcast_to(np.asarray(free_bits, dtype=np.float64), (n_servers,)))
    incoming = np.broadcast_to(np.asarray(incoming_bits, dtype=np.float64), (n_vehicles,))
    target = np.full(n_vehicles, satellite_index, dtype=np.int64)

    pending = np.arange(n_vehicles)
    while pending.size:
        choices = allowed[pending] & (free[None, :] >= incoming[pending, None])
        allowed[pending] = choices
        left = choices.any(axis=1)
        pending, choices = pending[left], choices[left]  # the others stay on the satellite
        if not pending.size:
            break
        cand = np.where(choices, dist[pending], np.inf)
        pick = np.argmin(cand, axis=1)
        d = cand[np.arange(pending.size), pick]
        order = np.lexsort((d, pick))  # by server, nearest first; stable, so ties keep vehicle order
        veh, srv, inc = pending[order], pick[order], incoming[pending[order]]
        cum = np.cumsum(inc)
        first = np.ones(srv.size, dtype=bool)
        first[1:] = srv[1:] != srv[:-1]
        group_start = np.maximum.accumulate(np.where(first, np.arange(srv.size), 0))
        taken = cum - (cum[group_start] - inc[group_start])  # running sum within the server's pickers
        accept = taken <= free[srv]
        target[veh[accept]] = srv[accept]
        free -= np.bincount(srv[accept], weights=inc[accept], minlength=n_servers)
        pending = np.sort(veh[~accept])
    return target


class GreedyPolicy:
    """Paper A's Greedy baseline: the nearest feasible server, with 10 % uniform feasible exploration.

    The satellite is chosen only when no ground or air server is feasible (as in the bridge's
    placement). Exploration draws from a generator seeded at construction, so a run is reproducible.
    Probabilities are the exact epsilon-greedy distribution: ``(1 - eps)`` on the nearest plus ``eps``
    spread uniformly over the feasible set.
    """

    version = HEURISTIC_VERSION

    def __init__(self, epsilon: float = 0.1, seed: int = 0, name: str = "greedy") -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.name = name
        self.epsilon = epsilon
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()  # the API may call one instance from several threads

    def decide(
        self,
        observation: MigrationObservation,
        servers: ServerTable,
        host: NDArray[np.int64] | None = None,
    ) -> MigrationDecision:
        mask = observation.mask
        nearest = nearest_feasible_server(observation.distances_m, mask, servers.satellite_index)
        with self._lock:
            explore = self._rng.random(len(nearest)) < self.epsilon
            random_pick = _sample_feasible(self._rng, mask[explore])
        target = nearest.astype(np.int64)
        target[explore] = random_pick
        probs = (1.0 - self.epsilon) * one_hot(nearest, servers.size) + self.epsilon * _uniform_feasible(mask)
        return MigrationDecision(target, probs)


class RandomPolicy:
    """Paper A's Random baseline: a server drawn uniformly from the feasible set (satellite included)."""

    version = HEURISTIC_VERSION

    def __init__(self, seed: int = 0, name: str = "random") -> None:
        self.name = name
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def decide(
        self,
        observation: MigrationObservation,
        servers: ServerTable,
        host: NDArray[np.int64] | None = None,
    ) -> MigrationDecision:
        with self._lock:
            target = _sample_feasible(self._rng, observation.mask)
        return MigrationDecision(target, _uniform_feasible(observation.mask))


class StickyNearestPolicy:
    """Our default: stay on a feasible ground/air host, else the nearest server with room for the twin.

    A twin whose host is a ground or air server still feasible (in range, not overloaded: Eq. 23) stays
    there, which avoids migrations (Eq. 10-12). Every other twin (new, on the satellite, or on a host
    that became infeasible) goes to the nearest feasible ground or air server by
    :func:`capacity_aware_nearest`, so that a crowd leaving one server does not all land on the same
    neighbour and overload it; with none left, the satellite. Deterministic; probabilities are one-hot.

    ``incoming_bits`` is what hosting a twin adds to a server (S_v, ``task.data_size_mb``).
    """

    version = HEURISTIC_VERSION

    def __init__(
        self, incoming_bits: float = TaskParams().data_size_mb * BITS_PER_MB, name: str = "sticky-nearest"
    ) -> None:
        self.name = name
        self.incoming_bits = float(incoming_bits)

    def decide(
        self,
        observation: MigrationObservation,
        servers: ServerTable,
        host: NDArray[np.int64] | None = None,
    ) -> MigrationDecision:
        mask = observation.mask
        n = mask.shape[0]
        sat = servers.satellite_index
        current = np.full(n, -1, dtype=np.int64) if host is None else np.asarray(host, dtype=np.int64)
        if current.shape != (n,):
            raise ValueError(f"host must be ({n},), got {current.shape}")
        valid = (current >= 0) & (current < servers.size)
        safe = np.where(valid, current, 0)
        keep = valid & (current != sat) & mask[np.arange(n), safe]
        target = np.where(keep, current, sat).astype(np.int64)
        movers = np.flatnonzero(~keep)
        if movers.size:
            free = servers.load_max_bits - observation.predicted_load_bits
            target[movers] = capacity_aware_nearest(
                observation.distances_m[movers], mask[movers], free, self.incoming_bits, sat
            )
        return MigrationDecision(target, one_hot(target, servers.size))


def place_one_at_a_time(
    order: NDArray[np.intp],
    starts: NDArray[np.intp],
    options: NDArray[np.intp],
    base_cost_s: NDArray[np.float64],
    load_bits: NDArray[np.float64],
    limit_bits: NDArray[np.float64],
    is_satellite: NDArray[np.bool_],
    cpu_hz: NDArray[np.float64],
    incoming_bits: float,
    cycles_per_bit: float,
    satellite_index: int,
) -> NDArray[np.int64]:
    """Least-loaded's placement of its movers, in ``order``: each to its option with the lowest latency given
    the twins placed before it (``base_cost_s + e_v (S'_m + S_v) / C_m`` among the options with room for S_v),
    whose load then grows by S_v; the satellite when none has room. ``load_bits`` is updated in place.

    Vehicle ``v``'s options are ``options[starts[v]:starts[v + 1]]`` (server order), their access and migration
    latency ``base_cost_s`` there. Each choice depends on the ones before it, so this is a loop; it runs over
    plain floats (a few options per mover), the same IEEE operations in the same order as the array expression
    ``costs + e_v * (load + S_v) / C_m`` with ``argmin`` (the first lowest, or the first NaN), so the placement
    is the same to the bit, several times faster than a handful of small array operations per mover.

    Compiled with numba where it can be (:mod:`twin_service.policies.compiled`: the same operations, tested equal),
    another 50-100x faster; this loop is the reference and the fallback.
    """
    compiled = place_one_at_a_time_compiled(
        order, starts, options, base_cost_s, load_bits, limit_bits, is_satellite, cpu_hz, incoming_bits,
        cycles_per_bit, satellite_index,
    )  # fmt: skip
    if compiled is not None:
        return compiled
    return place_one_at_a_time_python(
        order, starts, options, base_cost_s, load_bits, limit_bits, is_satellite, cpu_hz, incoming_bits,
        cycles_per_bit, satellite_index,
    )  # fmt: skip


def candidate_pairs(
    mask: NDArray[np.bool_], candidates: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """The feasible pairs ``(rows, cols)`` of the ``candidates`` (ascending vehicle indices), row-major, and where
    each vehicle's pairs start (``V + 1``: vehicle v's are ``starts[v]:starts[v + 1]``). Compiled where it can be
    (:func:`~twin_service.policies.compiled.candidate_pairs_compiled`, tested equal); this is the reference."""
    compiled_pairs = compiled.candidate_pairs_compiled(mask, candidates)
    if compiled_pairs is not None:
        return compiled_pairs
    cr, pc = np.nonzero(mask[candidates])
    pr = candidates[cr]
    return pr, pc, np.searchsorted(pr, np.arange(mask.shape[0] + 1))  # pairs are grouped by vehicle (row-major)


def best_moves(
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    base_cost_s: NDArray[np.float64],
    current: NDArray[np.int64],
    fits: NDArray[np.bool_],
    load_bits: NDArray[np.float64],
    cpu_hz: NDArray[np.float64],
    cycles_per_bit: float,
    incoming_bits: float,
    n: int,
) -> NDArray[np.float64]:
    """Each vehicle's lowest expected latency after a move over its pairs (inf where it has none): a pair costs
    ``base_cost_s + e_v (S'_m + S_v) / C_m`` (a move adds v's data to the new server; it already counts on its
    host), inf on the vehicle's host or where S_v does not fit. Compiled where it can be
    (:func:`~twin_service.policies.compiled.best_moves_compiled`, tested equal); this is the reference."""
    best = compiled.best_moves_compiled(
        rows, cols, base_cost_s, current, fits, load_bits, cpu_hz, cycles_per_bit, incoming_bits, n
    )
    if best is not None:
        return best
    e_v, s_v, load, cpu = cycles_per_bit, incoming_bits, load_bits, cpu_hz
    move = np.where((current[rows] == cols) | ~fits[cols], np.inf, base_cost_s + e_v * (load[cols] + s_v) / cpu[cols])
    best = np.full(n, np.inf)
    np.minimum.at(best, rows, move)
    return best


def place_one_at_a_time_python(
    order: NDArray[np.intp],
    starts: NDArray[np.intp],
    options: NDArray[np.intp],
    base_cost_s: NDArray[np.float64],
    load_bits: NDArray[np.float64],
    limit_bits: NDArray[np.float64],
    is_satellite: NDArray[np.bool_],
    cpu_hz: NDArray[np.float64],
    incoming_bits: float,
    cycles_per_bit: float,
    satellite_index: int,
) -> NDArray[np.int64]:
    """:func:`place_one_at_a_time` as a Python loop over plain floats: the reference of the compiled kernel."""
    opts, base, begin = options.tolist(), base_cost_s.tolist(), starts.tolist()
    load, limit, sat, cpu = load_bits.tolist(), limit_bits.tolist(), is_satellite.tolist(), cpu_hz.tolist()
    s_v, e_v = float(incoming_bits), float(cycles_per_bit)
    # Each server's compute term e_v (S'_m + S_v) / C_m and whether S_v fits there, as the expression computes
    # them from its load (the same operations: ``base + e_v * joined / cpu`` is ``base + ((e_v * joined) / cpu)``),
    # kept per server and updated when a twin joins it, instead of recomputed for every option of every mover.
    term, room = [], []
    for server_load, server_cpu, server_limit, server_sat in zip(load, cpu, limit, sat, strict=True):
        joined = server_load + s_v
        term.append(e_v * joined / server_cpu)
        room.append(server_sat or joined <= server_limit)
    picks = []
    for v in order.tolist():
        pick, best, found = satellite_index, 0.0, False
        lo, hi = begin[v], begin[v + 1]
        for server, option_base in zip(opts[lo:hi], base[lo:hi], strict=True):
            if not room[server]:
                continue
            cost = option_base + term[server]
            if cost != cost:  # NaN: argmin returns the first one
                pick, found = server, True
                break
            if not found or cost < best:
                pick, best, found = server, cost, True
        if found:
            load[pick] += s_v
            joined = load[pick] + s_v
            term[pick] = e_v * joined / cpu[pick]
            room[pick] = sat[pick] or joined <= limit[pick]
        picks.append(pick)
    load_bits[:] = load
    return np.array(picks, dtype=np.int64)


class LeastLoadedPolicy:
    """Load balancing: each twin goes where its expected latency after it joins is lowest, staying unless moving pays.

    For vehicle v and a feasible server m (Eq. 23) the expected latency is the access latency at the current
    distance (Eq. 6-7), the compute latency on m once v's data has joined it (Eq. 9:
    ``e_v (S'_m + S_v) / C_m``, the satellite with its own CPU) and, when m is not v's current host, the
    migration latency (Eq. 11-12) over an upper bound of the host-to-m distance (``D_vh + D_vm``): the penalty
    for moving. Staying on the current host costs its compute latency with the load it has now.

    Vehicles whose current host is still best stay (their load is committed first); the others (new twins,
    twins whose host became infeasible, and those a move would serve better) are assigned one at a time, those
    that must move first, then by decreasing gain, each to the server with the lowest expected latency given
    the twins already placed, whose load is updated as it goes. A ground or air server takes a twin only
    while its load stays within L_max; the satellite takes everyone. Deterministic; probabilities are one-hot.
    """

    version = HEURISTIC_VERSION

    def __init__(
        self,
        task: TaskParams | None = None,
        channel: ChannelParams | None = None,
        satellite: SatelliteParams | None = None,
        name: str = "least-loaded",
    ) -> None:
        self.name = name
        self.task = task or TaskParams()
        self.channel = channel or ChannelParams()
        self.satellite = satellite or SatelliteParams()
        self.latency = LatencyModel(self.task, self.channel, self.satellite)
        compiled.warm_up()  # its placement loop compiled now (once a process), not in the first decision

    def _pair_cost_s(
        self,
        dist: NDArray[np.floating],
        host: NDArray[np.int64],
        rows: NDArray[np.intp],
        cols: NDArray[np.intp],
        sat: NDArray[np.bool_],
    ) -> NDArray[np.float64]:
        """Access latency (Eq. 6-7) plus the migration penalty (Eq. 11-12) of vehicle ``rows`` on server ``cols``.

        Computed for the feasible pairs only (a few per vehicle), not for every vehicle and server.
        """
        access, migration = pair_latency_s(dist, host, rows, cols, sat, self.latency)
        return access + migration

    def decide(
        self,
        observation: MigrationObservation,
        servers: ServerTable,
        host: NDArray[np.int64] | None = None,
    ) -> MigrationDecision:
        mask = observation.mask
        n, m = mask.shape
        s_v = self.task.data_size_mb * BITS_PER_MB
        e_v = self.task.cycles_per_bit
        sat = servers.is_satellite
        cpu = np.asarray(servers.cpu_hz, dtype=np.float64)
        limit = servers.load_max_bits  # inf for the satellite
        current = np.full(n, -1, dtype=np.int64) if host is None else np.asarray(host, dtype=np.int64)
        valid = (current >= 0) & (current < m)
        current = np.where(valid, current, -1)
        rows = np.arange(n)
        load = np.asarray(observation.predicted_load_bits, dtype=np.float64).copy()  # S'_m: hosted twins included
        if n == 0:
            return MigrationDecision(np.zeros(0, dtype=np.int64), np.zeros((0, m), dtype=np.float32))

        current_cols = np.maximum(current, 0)
        can_stay = valid & mask[rows, current_cols]
        c = self.channel
        d_host = np.asarray(observation.distances_m[rows, current_cols], dtype=np.float64)
        stay = np.where(can_stay, self._pair_cost_s(observation.distances_m, current, rows, current_cols, sat), np.inf)
        stay += e_v * load[current_cols] / cpu[current_cols]
        # Only a vehicle whose host is slower than the fastest server by more than the cheapest migration it could
        # make can gain by moving: price the other servers for those vehicles only (few, most ticks).
        fits = sat | (load + s_v <= limit)
        fastest = float(np.min(np.where(fits & ~sat, e_v * (load + s_v) / cpu, np.inf)))
        cheapest_move = (
            self.task.migration_size_mb
            * BITS_PER_MB
            / migration_rate_bps(
                d_host,
                c.bandwidth_mig_hz,
                c.server_tx_power_w,
                c.noise_w,
                c.carrier_hz,
                sat[current_cols],
                False,
                c.satellite_rate_bps,
                c.gain_coefficient,
            )
        )
        sat_col = np.full(n, servers.satellite_index)
        on_sat = self._pair_cost_s(observation.distances_m, current, rows, sat_col, sat)
        on_sat += e_v * (load[sat_col] + np.where(current == sat_col, 0.0, s_v)) / cpu[sat_col]
        # Staying costs access(h) + compute(h); a ground or air move at least the cheapest migration + fastest.
        with np.errstate(invalid="ignore"):  # inf - inf where a vehicle cannot stay and nothing fits: not a candidate
            gains = stay - fastest > cheapest_move
        candidates = np.flatnonzero(~can_stay | (on_sat < stay) | gains)
        pr, pc, starts = candidate_pairs(mask, candidates)
        base = self._pair_cost_s(observation.distances_m, current, pr, pc, sat)
        # A move adds v's data to the new server (it already counts on its host).
        best_move = best_moves(pr, pc, base, current, fits, load, cpu, e_v, s_v, n)
        movers = np.flatnonzero(~can_stay | (best_move < stay))
        target = np.where(can_stay, current, -1)
        if movers.size:
            # Movers leave their hosts; then they are placed one at a time.
            leaving = current[movers]
            np.subtract.at(load, leaving[leaving >= 0], s_v)
            must = ~can_stay[movers]
            gain = np.where(must, np.inf, stay[movers] - best_move[movers])
            order = movers[np.lexsort((movers, -gain))]
            target[order] = place_one_at_a_time(
                order, starts, pc, base, load, limit, sat, cpu, s_v, e_v, servers.satellite_index
            )
        return MigrationDecision(target.astype(np.int64), one_hot(target, m))
