"""The oracle upper bound of paper B's offloading (issue 13): each vehicle's best rho by search, the others fixed.

For every vehicle, every rho of a fine grid (plus the exact point where the offloaded and the local parts take
equally long, Eq. 14) is scored with the cost model of :func:`twin_service.policies.offload.expected_outcome`,
including the CPU share of C.6 given the other vehicles' fractions on the same host. The best rho meets the
deadline (C.1) whenever any rho can, and has the lowest cost (Eq. 22) among those that do. Vehicles update in
turn (Gauss-Seidel over each host's vehicles) for a few rounds: a best response to the others' choices.

Given the true state of a tick (the task, the rate and the host's CPU the task is processed with) this is the
physical limit of any offloading policy here; :mod:`twin_service.envs.evaluate` applies it that way.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from twin_service.config import OffloadParams
from twin_service.policies.offload import task_outcome

GRID = np.linspace(0.0, 1.0, 101)
TASK = ("data_bits", "cycles", "deadline_s", "f_hz", "r_bps")
"""What the cost model needs of each task (its twin's features)."""
INFEASIBLE = 1e6
"""Added to the cost of a rho that misses the deadline: feasibility first, then cost."""


def _scores(
    rho: NDArray[np.float64], others: NDArray[np.float64], cpu: NDArray[np.float64], now: dict, p: OffloadParams
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Cost and delay ``(V, G)`` of each candidate rho ``(V, G)`` with ``others`` (V,) on the host of CPU ``cpu``."""
    share = cpu[:, None] / np.maximum(others[:, None] + rho, 1.0)

    out = task_outcome(rho, {k: np.asarray(now[k], dtype=np.float64)[:, None] for k in TASK}, share, p)
    return out.cost, out.delay_s


def _candidates(now: dict, cpu: NDArray[np.float64], others: NDArray[np.float64], p: OffloadParams) -> NDArray:
    """The grid plus the balance point of Eq. 14 (offloaded path = local part) for the share alone on the host."""
    d = np.asarray(now["data_bits"], dtype=np.float64)
    c = np.asarray(now["cycles"], dtype=np.float64)
    f = np.asarray(now["f_hz"], dtype=np.float64)
    r = np.asarray(now["r_bps"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # rho (D (1 + delta) / r + C max(others, 1) / f_m) = (1 - rho) C / f, solved for rho: exact while the host's
        # summed rho stays under 1 (C.4), the grid covers the rest
        a = d * (1.0 + p.output_ratio) / r + c * np.maximum(others, 1.0) / cpu
        balance = (c / f) / (a + c / f)
    balance = np.where(np.isfinite(balance), np.clip(balance, 0.0, 1.0), 0.0)
    return np.concatenate([np.broadcast_to(GRID, (len(d), len(GRID))), balance[:, None]], axis=1)


def best_response(
    now: dict[str, NDArray[np.float64]],
    host: NDArray[np.intp],
    host_cpu_hz: NDArray[np.float64],
    params: OffloadParams,
    rho0: NDArray[np.float64] | None = None,
    rounds: int = 3,
) -> NDArray[np.float64]:
    """Each vehicle's best rho given the others' (module docstring), ``rounds`` Gauss-Seidel sweeps.

    ``host`` (V,) is each vehicle's host index (-1: none, then rho = 0); ``host_cpu_hz`` (V,) its host's f_m.
    """
    n = len(host)
    rho = np.zeros(n) if rho0 is None else np.asarray(rho0, dtype=np.float64).copy()
    if n == 0:
        return rho
    attached = host >= 0
    rho[~attached] = 0.0
    hidx = np.where(attached, host, 0)
    n_hosts = int(hidx.max()) + 1
    order = np.lexsort((np.arange(n), hidx))
    first = np.ones(n, dtype=bool)
    first[1:] = hidx[order][1:] != hidx[order][:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - start
    cpu = np.asarray(host_cpu_hz, dtype=np.float64)
    layers = [np.flatnonzero((rank == k) & attached) for k in range(int(rank.max()) + 1)]
    for _ in range(rounds):
        changed = False
        for idx in layers:
            if not len(idx):
                continue
            total = np.bincount(hidx[attached], weights=rho[attached], minlength=n_hosts)
            others = total[hidx[idx]] - rho[idx]
            sub = {k: np.asarray(v)[idx] for k, v in now.items()}
            cand = _candidates(sub, cpu[idx], others, params)
            cost, delay = _scores(cand, others, cpu[idx], sub, params)
            late = delay > np.asarray(sub["deadline_s"], dtype=np.float64)[:, None] + 1e-12
            score = np.where(late, cost + INFEASIBLE, cost)
            best = cand[np.arange(len(idx)), np.argmin(score, axis=1)]
            changed |= bool(np.any(np.abs(best - rho[idx]) > 1e-9))
            rho[idx] = best
        if not changed:
            break
    return rho
