"""Paper B's sliding-window mean (Eq. 37), aligned by id: pure numpy, shared by the store and the engine.

The twin store averages each twin's columns over the ticks of its window that hold the twin; the engine
(:class:`twin_service.observe.OffloadWindow`) keeps the same blocks in memory and calls the same function,
so a learned policy sees the same context in training, in the bridge and behind the API.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def window_mean_aligned(
    current_ids: np.ndarray, blocks: Sequence[tuple[np.ndarray, np.ndarray, Sequence[str]]]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Mean of each column over the blocks, per current id (paper B Eq. 37), vectorised.

    ``blocks`` are ``(ids as a numpy bytes array, (rows x columns) float table, column names)``
    for each tick of the window; ids absent from ``current_ids`` are ignored. Returns column ->
    mean aligned with ``current_ids`` (NaN where an id never held the column) and, per id, the
    number of blocks it appears in.
    """
    n = len(current_ids)
    names = list(dict.fromkeys(col for _, _, cols in blocks for col in cols))
    position = {col: j for j, col in enumerate(names)}
    # The usual case: every tick has the same columns, so a twin has seen each column as often as it has seen
    # a tick, and its count divides every column (the same divisor, so the same means to the bit).
    uniform = all(list(cols) == names for _, _, cols in blocks)
    sums = np.zeros((n, len(names)))
    seen = None if uniform else np.zeros((n, len(names)), dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    order = np.argsort(current_ids, kind="stable")
    sorted_ids = current_ids[order]
    for ids, table, cols in blocks:
        if not n or not len(ids):
            continue
        rows: slice | np.ndarray
        if len(ids) == n and np.array_equal(ids, current_ids):  # the same twins in the same rows
            rows, values = slice(None), table
        else:
            pos = np.minimum(np.searchsorted(sorted_ids, ids), n - 1)
            hit = sorted_ids[pos] == ids
            rows = order[pos[hit]]  # ids are unique per tick, so fancy-index += is exact
            values = table if hit.all() else table[hit]
        counts[rows] += 1
        if seen is None:
            sums[rows] += values
        else:
            at = np.ix_(np.arange(n)[rows], [position[col] for col in cols])
            sums[at] += values
            seen[at] += 1
    divisor = counts[:, None] if seen is None else seen
    means = np.divide(sums, divisor, out=np.full(sums.shape, np.nan), where=divisor > 0).T.copy()
    return {col: means[j] for j, col in enumerate(names)}, counts
