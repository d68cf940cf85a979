"""Vehicles decide in turns, each turn seeing the loads the earlier moves left: no herding onto one server.

A shared policy applied to every vehicle at once sends all the vehicles of a crowded server to the same
lightly loaded one; next tick that one is crowded and they all move again (measured: two thirds of the
vehicles migrating every tick). Here the vehicles decide in turns of at most ``chunk`` vehicles, in an order
drawn each tick. After each turn the predicted loads (Eq. 19's S^pre, the input of the Eq. 23 mask) are
updated with the turn's moves: S_v leaves the old host and joins the new one. A later vehicle whose candidate
servers changed is scored again with those loads; the others keep their first score (nothing they see
changed), so a quiet tick costs one pass. The probability of each decision is that of the policy given what
the vehicle saw when it decided, which is what a trainer needs.

The least-loaded heuristic places its movers one by one for the same reason; a turn of ``chunk`` vehicles is
the learned policy's version of it (``chunk`` >= the number of vehicles is the plain simultaneous decision).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import NDArray

from twin_service.observe import MigrationObservation
from twin_service.policies.torch_policy import MASKED_LOGIT, masked_probabilities

Score = Callable[[MigrationObservation, NDArray[np.int64], NDArray[np.intp]], torch.Tensor]
"""``(observation, host of its rows, rows)`` -> ``(len(rows), M)`` logits, unscored servers at MASKED_LOGIT."""
Choose = Callable[[torch.Tensor, torch.Tensor, NDArray[np.intp]], NDArray[np.int64]]
"""``(logits, probabilities, rows)`` -> the chosen server of each row."""


@dataclass
class TurnsResult:
    target: NDArray[np.int64]
    probabilities: NDArray[np.float32]
    """``(V, M)`` each vehicle's policy when it decided."""
    logits: torch.Tensor
    """``(V, M)`` the logits it decided with."""
    scored_in: NDArray[np.int64]
    """``(V,)`` which scoring pass each vehicle's decision came from (0: the first, over everyone)."""
    passes: list[tuple[MigrationObservation, NDArray[np.intp]]]
    """Each pass's observation and the rows (into the full observation) it scored."""


def decide_in_turns(
    observation: MigrationObservation,
    host: NDArray[np.int64] | None,
    score: Score,
    choose: Choose,
    order: NDArray[np.intp],
    chunk: int,
) -> TurnsResult:
    """Decide for every vehicle of ``observation``, ``chunk`` vehicles at a time in ``order`` (module docstring)."""
    n, m = observation.mask.shape
    host_arr = np.full(n, -1, dtype=np.int64) if host is None else np.asarray(host, dtype=np.int64)
    everyone = np.arange(n)
    logits = score(observation, host_arr, everyone).clone() if n else torch.zeros((0, m))
    passes: list[tuple[MigrationObservation, NDArray[np.intp]]] = [(observation, everyone)]
    scored_in = np.zeros(n, dtype=np.int64)
    target = host_arr.copy()
    loads = np.array(observation.predicted_load_bits, dtype=np.float64)
    incoming = np.broadcast_to(np.asarray(observation.incoming_bits, dtype=np.float64), (n,))
    changed = np.zeros(m, dtype=bool)
    valid_host = (host_arr >= 0) & (host_arr < m)
    for rows in np.array_split(order, max(int(np.ceil(n / max(chunk, 1))), 1)) if n else []:
        if changed.any():
            seen = logits[rows] > MASKED_LOGIT / 2
            stale = (seen.numpy() & changed[None, :]).any(axis=1)
            stale |= valid_host[rows] & changed[np.where(valid_host[rows], host_arr[rows], 0)]
            again = rows[stale]
            if again.size:
                sub = observation.subset(again, loads, host_arr[again])
                # Still within the tick's own mask (Eq. 23): a server earlier moves made room on stays as the
                # mask had it, so every decision is feasible for the tick's observation.
                sub = replace(sub, mask=sub.mask & observation.mask[again])
                logits[again] = score(sub, host_arr[again], np.arange(again.size))
                scored_in[again] = len(passes)
                passes.append((sub, again))
        part = logits[rows]
        probs = masked_probabilities(part, part > MASKED_LOGIT / 2)
        chosen = choose(part, probs, rows)
        target[rows] = chosen
        moved = chosen != host_arr[rows]
        if moved.any():
            movers = rows[moved]
            np.add.at(loads, chosen[moved], incoming[movers])
            src = host_arr[movers]
            ok = src >= 0
            np.subtract.at(loads, src[ok], incoming[movers][ok])
            changed[chosen[moved]] = True
            changed[src[ok]] = True
    probabilities = masked_probabilities(logits, logits > MASKED_LOGIT / 2).numpy() if n else np.zeros((0, m))
    return TurnsResult(target, probabilities.astype(np.float32), logits, scored_in, passes)
