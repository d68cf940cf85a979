"""Generalised advantage estimation for agents that come and go (paper A, Alg. 2 l. 20-21).

Transitions are stored flat, tick after tick. ``next_index[i]`` is the index of the same agent's transition at
the next tick, or -1 when there is none: either the vehicle left the city (``terminated[i]``: its future is
worth 0) or the rollout was cut (its future is ``bootstrap[i]``, the critic's value of its last observation).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def ragged_gae(
    rewards: NDArray[np.floating],
    values: NDArray[np.floating],
    next_index: NDArray[np.integer],
    terminated: NDArray[np.bool_],
    bootstrap: NDArray[np.floating],
    tick: NDArray[np.integer],
    gamma: float,
    lam: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Advantages and returns (``advantage + value``) of every transition.

    ``delta_i = r_i + gamma V(next) - V_i`` with V(next) the value of the agent's next transition, its
    bootstrap value when cut, or 0 when terminated; ``A_i = delta_i + gamma lam A_next`` (A_next = 0 when
    cut or terminated). ``tick`` orders the transitions in time (next transitions are at later ticks).
    """
    r = np.asarray(rewards, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    nxt = np.asarray(next_index, dtype=np.int64)
    term = np.asarray(terminated, dtype=bool)
    has_next = nxt >= 0
    next_value = np.where(has_next, v[np.where(has_next, nxt, 0)], np.asarray(bootstrap, dtype=np.float64))
    next_value = np.where(term, 0.0, next_value)
    delta = r + gamma * next_value - v
    adv = np.zeros_like(delta)
    ticks = np.asarray(tick)
    order = np.argsort(ticks, kind="stable")
    bounds = np.flatnonzero(np.diff(ticks[order])) + 1
    for block in reversed(np.split(order, bounds)):
        carried = np.where(has_next[block] & ~term[block], adv[np.where(has_next[block], nxt[block], 0)], 0.0)
        adv[block] = delta[block] + gamma * lam * carried
    return adv, adv + v
