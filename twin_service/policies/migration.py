"""Heuristic twin-migration policies (paper A): greedy, random and our default, sticky-nearest.

Every policy picks only among the servers its mask allows (Eq. 23), so none can return an infeasible
target; the satellite is never masked, so there is always one.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twin_service.config import BITS_PER_MB, TaskParams
from twin_service.observe import MigrationObservation, ServerTable
from twin_service.physics import nearest_feasible_server
from twin_service.policies.base import HEURISTIC_VERSION, MigrationDecision, one_hot


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
