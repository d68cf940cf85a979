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
    sums = np.zeros((n, len(names)))
    seen = np.zeros((n, len(names)), dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    order = np.argsort(current_ids, kind="stable")
    sorted_ids = current_ids[order]
    for ids, table, cols in blocks:
        if not n or not len(ids):
            continue
        pos = np.minimum(np.searchsorted(sorted_ids, ids), n - 1)
        hit = sorted_ids[pos] == ids
        rows = order[pos[hit]]  # ids are unique per tick, so fancy-index += is exact
        counts[rows] += 1
        where = [position[col] for col in cols]
        if where == list(range(len(names))):  # the usual case: every tick has the same columns
            sums[rows] += table[hit]
            seen[rows] += 1
        else:
            sums[np.ix_(rows, where)] += table[hit]
            seen[np.ix_(rows, where)] += 1
    means = np.divide(sums, seen, out=np.full(sums.shape, np.nan), where=seen > 0).T.copy()
    return {col: means[j] for j, col in enumerate(names)}, counts
