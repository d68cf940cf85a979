"""least-loaded's loops compiled with numba: the same IEEE operations in the same order as the Python and numpy code
they stand for (kept beside them as the reference they are tested against), so the same decisions to the bit, without
the interpreter's cost per step or numpy's temporaries.

* the placement of the movers, one at a time (each choice depends on the ones before it);
* the candidates' feasible pairs (``np.nonzero`` of the mask's candidate rows, and where each vehicle's start);
* each vehicle's best move over its pairs (``np.minimum.at`` of the priced moves).

The pairs' latencies are priced by :mod:`twin_service.physics.compiled`. Compiled on first use and cached on disk
beside this module (``cache=True``: a later process loads the machine code in about a tenth of a second instead of
compiling it again). Where numba cannot be imported, or compiling fails, or ``TWIN_NO_JIT`` is set, the ``*_compiled``
functions return None and the callers keep their Python and numpy code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from twin_service.physics import compiled as physics_compiled

log = logging.getLogger(__name__)

_FAILED: set[str] = set()
"""Kernels that failed at their first call in this process (they stay on the Python loop)."""

DISABLE_VAR = physics_compiled.DISABLE_VAR
"""Set (to anything but empty or 0) to keep the Python loops: to compare, or where numba misbehaves."""


def _placement_kernel(
    order: NDArray[np.int64],
    starts: NDArray[np.int64],
    options: NDArray[np.int64],
    base: NDArray[np.float64],
    load: NDArray[np.float64],
    limit: NDArray[np.float64],
    sat: NDArray[np.bool_],
    cpu: NDArray[np.float64],
    s_v: float,
    e_v: float,
    satellite_index: int,
) -> NDArray[np.int64]:  # pragma: no cover - runs compiled (its Python twin is migration.place_one_at_a_time)
    m = load.shape[0]
    term = np.empty(m, dtype=np.float64)
    room = np.empty(m, dtype=np.bool_)
    for j in range(m):
        joined = load[j] + s_v
        term[j] = e_v * joined / cpu[j]
        room[j] = sat[j] or joined <= limit[j]
    picks = np.empty(order.shape[0], dtype=np.int64)
    for k in range(order.shape[0]):
        v = order[k]
        pick = satellite_index
        best = 0.0
        found = False
        for i in range(starts[v], starts[v + 1]):
            server = options[i]
            if not room[server]:
                continue
            cost = base[i] + term[server]
            if cost != cost:  # NaN: argmin returns the first one
                pick = server
                found = True
                break
            if not found or cost < best:
                pick = server
                best = cost
                found = True
        if found:
            load[pick] += s_v
            joined = load[pick] + s_v
            term[pick] = e_v * joined / cpu[pick]
            room[pick] = sat[pick] or joined <= limit[pick]
        picks[k] = pick
    return picks


@cache
def _compiled_placement() -> Callable[..., NDArray[np.int64]] | None:
    # error_model "python", as the kernel was first compiled: it divides by the servers' CPU only.
    kernels = physics_compiled.njit_or_none("least-loaded's placement", _placement_kernel, error_model="python")
    return None if kernels is None else kernels[0]


def place_one_at_a_time_compiled(
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
) -> NDArray[np.int64] | None:
    """:func:`twin_service.policies.migration.place_one_at_a_time` compiled; None where it cannot run compiled.

    ``load_bits`` is updated in place (it must be a writable float64 array)."""
    kernel = None if "placement" in _FAILED else _compiled_placement()
    if kernel is None:
        return None
    try:
        return kernel(
            np.ascontiguousarray(order, dtype=np.int64),
            np.ascontiguousarray(starts, dtype=np.int64),
            np.ascontiguousarray(options, dtype=np.int64),
            np.ascontiguousarray(base_cost_s, dtype=np.float64),
            load_bits,
            np.ascontiguousarray(limit_bits, dtype=np.float64),
            np.ascontiguousarray(is_satellite, dtype=np.bool_),
            np.ascontiguousarray(cpu_hz, dtype=np.float64),
            float(incoming_bits),
            float(cycles_per_bit),
            int(satellite_index),
        )
    except Exception as exc:  # noqa: BLE001 - a compile error surfaces at the first call: keep the Python loop
        log.warning("numba could not run least-loaded's placement (%s): using the Python loop", exc)
        _FAILED.add("placement")
        return None


def _candidate_pairs_kernel(
    mask: NDArray[np.bool_], candidates: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - runs compiled
    # The feasible (vehicle, server) pairs of the candidate vehicles (ascending), row-major as np.nonzero gives
    # them, and where each vehicle's pairs start (every vehicle, those without pairs included).
    n, m = mask.shape
    total = 0
    for k in range(candidates.shape[0]):
        row = candidates[k]
        for j in range(m):
            if mask[row, j]:
                total += 1
    rows = np.empty(total, dtype=np.int64)
    cols = np.empty(total, dtype=np.int64)
    starts = np.empty(n + 1, dtype=np.int64)
    i = 0
    v = 0
    for k in range(candidates.shape[0]):
        row = candidates[k]
        while v <= row:
            starts[v] = i
            v += 1
        for j in range(m):
            if mask[row, j]:
                rows[i] = row
                cols[i] = j
                i += 1
    while v <= n:
        starts[v] = i
        v += 1
    return rows, cols, starts


def _best_move_kernel(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    base: NDArray[np.float64],
    current: NDArray[np.int64],
    fits: NDArray[np.bool_],
    load: NDArray[np.float64],
    cpu: NDArray[np.float64],
    e_v: float,
    s_v: float,
    n: int,
) -> NDArray[np.float64]:  # pragma: no cover - runs compiled
    # Each vehicle's lowest latency after a move, over its pairs: inf on its host or where v's data does not fit,
    # else base + e_v (S'_m + S_v) / C_m; np.minimum's NaN propagation kept.
    best = np.full(n, np.inf)
    for i in range(rows.shape[0]):
        r = rows[i]
        c = cols[i]
        move = np.inf if current[r] == c or not fits[c] else base[i] + e_v * (load[c] + s_v) / cpu[c]
        b = best[r]
        if b == b and (move != move or move < b):
            best[r] = move
    return best


@cache
def _compiled_candidate_kernels() -> tuple[Callable[..., Any], ...] | None:
    return physics_compiled.njit_or_none("least-loaded's candidate pairs", _candidate_pairs_kernel, _best_move_kernel)


def candidate_pairs_compiled(
    mask: NDArray[np.bool_], candidates: NDArray[np.intp]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
    """The feasible pairs ``(rows, cols)`` of the ``candidates`` (ascending vehicle indices) in ``mask``, row-major
    as ``np.nonzero(mask[candidates])`` gives them, and ``starts`` (``V + 1``): vehicle v's pairs are
    ``starts[v]:starts[v + 1]``. None where it cannot run compiled."""
    kernels = None if "candidates" in _FAILED else _compiled_candidate_kernels()
    if kernels is None:
        return None
    mask_ = np.ascontiguousarray(mask, dtype=np.bool_)
    cand = np.ascontiguousarray(candidates, dtype=np.int64)
    if mask_.ndim != 2 or cand.ndim != 1:
        return None
    if cand.size and (cand[0] < 0 or cand[-1] >= mask_.shape[0] or np.any(cand[1:] <= cand[:-1])):
        return None  # not strictly ascending or out of range: numpy's indexing handles (or refuses) it
    try:
        return kernels[0](mask_, cand)
    except Exception as exc:  # noqa: BLE001 - a compile error surfaces at the first call: keep numpy
        log.warning("numba could not run least-loaded's candidate pairs (%s): using numpy", exc)
        _FAILED.add("candidates")
        return None


def best_moves_compiled(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    base_cost_s: NDArray[np.float64],
    current: NDArray[np.int64],
    fits: NDArray[np.bool_],
    load_bits: NDArray[np.float64],
    cpu_hz: NDArray[np.float64],
    cycles_per_bit: float,
    incoming_bits: float,
    n: int,
) -> NDArray[np.float64] | None:
    """Each of ``n`` vehicles' lowest latency after a move over its pairs (inf where it has none): the pairs'
    ``base_cost_s + e_v (S'_m + S_v) / C_m``, inf on the vehicle's ``current`` host or where ``fits`` is False, the
    minimum as ``np.minimum.at`` takes it (NaN wins). None where it cannot run compiled. Indices must be in range
    (the caller's own pairs)."""
    kernels = None if "candidates" in _FAILED else _compiled_candidate_kernels()
    if kernels is None:
        return None
    try:
        return kernels[1](
            np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(cols, dtype=np.int64),
            np.ascontiguousarray(base_cost_s, dtype=np.float64), np.ascontiguousarray(current, dtype=np.int64),
            np.ascontiguousarray(fits, dtype=np.bool_), np.ascontiguousarray(load_bits, dtype=np.float64),
            np.ascontiguousarray(cpu_hz, dtype=np.float64), float(cycles_per_bit), float(incoming_bits), int(n),
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a compile error surfaces at the first call: keep numpy
        log.warning("numba could not run least-loaded's best moves (%s): using numpy", exc)
        _FAILED.add("candidates")
        return None


@cache
def warm_up() -> bool:
    """Compile (or load from the disk cache) every kernel now, at start-up, rather than in the first decision
    (about a second the first time in a process: numba's import and the cache's load). True where they run
    compiled."""
    one = np.zeros(1, dtype=np.intp)
    placed = place_one_at_a_time_compiled(
        one, np.array([0, 1]), one, np.zeros(1), np.zeros(1), np.ones(1), np.ones(1, dtype=bool), np.ones(1),
        0.0, 0.0, 0,
    )  # fmt: skip
    pairs = candidate_pairs_compiled(np.ones((1, 1), dtype=bool), np.zeros(1, dtype=np.intp))
    moves = best_moves_compiled(
        np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1), np.full(1, -1, dtype=np.int64),
        np.ones(1, dtype=bool), np.zeros(1), np.ones(1), 1.0, 1.0, 1,
    )  # fmt: skip
    priced = physics_compiled.warm_up()  # the pair pricing the policies' observations use
    return priced and all(k is not None for k in (placed, pairs, moves))
