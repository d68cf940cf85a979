"""Loops whose every step depends on the one before, compiled with numba: the same IEEE operations in the same order as
the Python loops they stand for (kept beside them as the reference they are tested against), so the same decisions
to the bit, without the interpreter's cost per step.

Compiled on first use and cached on disk beside this module (``cache=True``: a later process loads the machine code
in about a tenth of a second instead of compiling it again). Where numba cannot be imported, or compiling fails,
``place_one_at_a_time_compiled`` is None and the callers keep their Python loops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cache

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

_FAILED: set[str] = set()
"""Kernels that failed at their first call in this process (they stay on the Python loop)."""

DISABLE_VAR = "TWIN_NO_JIT"
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
    if os.environ.get(DISABLE_VAR, "") not in ("", "0"):
        return None
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; a broken install keeps the Python loop
        log.warning("numba is not importable: least-loaded places its movers with the Python loop")
        return None
    try:
        # fastmath off (the default): IEEE operations as written, so the placements equal the Python loop's.
        return numba.njit(cache=True, nogil=True)(_placement_kernel)
    except Exception as exc:  # noqa: BLE001 - any failure to compile keeps the Python loop, said once
        log.warning("numba could not compile least-loaded's placement (%s): using the Python loop", exc)
        return None


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
    return placed is not None
