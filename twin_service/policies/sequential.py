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
from twin_service.policies.masking import MASKED_LOGIT, masked_probabilities

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


# --------------------------------------------------------------------------------------------
# The same decisions, fast: for actors that score (vehicle, server) pairs (the per-server actor)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairScores:
    """Logits of (vehicle, server) pairs: ``rows`` ascending, each row's ``cols`` ascending; other pairs masked."""

    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    scores: NDArray[np.float32]


PairScore = Callable[[MigrationObservation, NDArray[np.int64], NDArray[np.intp]], PairScores]
"""``(observation, host of its rows, which of the tick's vehicles its rows are)`` -> the scored pairs of every row
of the observation. The first call of a tick is given the tick's whole observation (``rows`` = every vehicle, in
order); later ones a subset of its vehicles under the loads of a later turn, so a scorer may keep what does not
depend on the loads from the first call."""


def _row_starts(rows: NDArray[np.intp], n: int) -> NDArray[np.intp]:
    return np.searchsorted(rows, np.arange(n + 1))


def first_choices(
    pairs: PairScores, n: int, uniforms: NDArray[np.float64] | None
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Each row's choice from its pairs, as :meth:`ExecutionSampler.choose` makes it from the dense ``(n, M)``
    logits: the first highest logit (``uniforms`` None), or the first server whose cumulative probability reaches
    ``uniform * total`` (never beyond the last server with a probability above 0). Also returns each pair's
    probability (the softmax over its row's pairs: the masked servers' are exactly 0 in the dense softmax)."""
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    starts = _row_starts(pairs.rows, n)
    width = int(np.diff(starts).max())
    # Each pair's place in a (n, width) table of its row's pairs, flattened (rows hold their pairs in order).
    flat = np.arange(len(pairs.rows)) + (pairs.rows * width - starts[pairs.rows])
    cols = np.zeros(n * width, dtype=np.int64)
    cols[flat] = pairs.cols
    cols = cols.reshape(n, width)
    dense = np.full(n * width, -np.inf, dtype=np.float32)
    dense[flat] = pairs.scores
    dense = dense.reshape(n, width)
    top = dense.max(axis=1, keepdims=True)
    e = np.exp(dense - top)
    p = e / e.sum(axis=1, keepdims=True)
    pair_p = p.reshape(-1)[flat]
    if uniforms is None:
        return cols[np.arange(n), np.argmax(dense, axis=1)], pair_p
    cum = np.cumsum(p.astype(np.float64), axis=1)
    u = uniforms * cum[:, -1]
    reached = cum >= u[:, None]
    found = reached.any(axis=1)
    chosen = cols[np.arange(n), np.argmax(reached, axis=1)]
    last = cols[np.arange(n), width - 1 - np.argmax(p[:, ::-1] > 0, axis=1)]
    # The dense rule counts the servers whose cumulative probability is below u: none when u is 0.
    chosen = np.where(u <= 0.0, 0, np.where(found, chosen, last))
    return np.minimum(chosen, last).astype(np.int64), pair_p


def decide_in_turns_pairs(
    observation: MigrationObservation,
    host: NDArray[np.int64] | None,
    score: PairScore,
    order: NDArray[np.intp],
    chunk: int,
    uniforms: NDArray[np.float64] | None,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """:func:`decide_in_turns` for a pair-scoring actor, with the same decisions at a fraction of the cost.

    ``uniforms`` are the draws the sampler would make turn after turn, in ``order`` (None: argmax). Returns
    ``(target, probabilities)`` as :class:`TurnsResult` has them.

    What makes it fast, without changing what any vehicle sees:

    * A vehicle's first-pass choice is computed once, for everyone at once. Until some vehicle moves, the loads
      stay as they are, so every turn up to the first one with a mover is decided from what is already known.
    * A vehicle that is stale at its turn (a server it scored, or its host, changed load earlier) is re-scored
      with the loads of its turn, as in :func:`decide_in_turns`. The stale vehicles up to the next move all see
      the same loads, so they are re-scored together, several turns in one call.
    * A re-scored vehicle's logits depend only on the loads of the servers its tick's mask allows and of its
      host; they are kept until one of those changes.
    """
    n, m = observation.mask.shape
    host_arr = np.full(n, -1, dtype=np.int64) if host is None else np.asarray(host, dtype=np.int64)
    if n == 0:
        return host_arr.copy(), np.zeros((0, m), dtype=np.float32)
    u_row = None
    if uniforms is not None:
        u_row = np.empty(n, dtype=np.float64)
        u_row[order] = uniforms
    first = score(observation, host_arr, np.arange(n))
    first_choice, first_p = first_choices(first, n, u_row)

    n_turns = max(int(np.ceil(n / max(chunk, 1))), 1)
    turn_end = np.cumsum([len(part) for part in np.array_split(order, n_turns)])  # position after each turn
    turn_of = np.searchsorted(turn_end, np.arange(n), side="right")  # turn of each position in ``order``
    mask0 = np.asarray(observation.mask, dtype=bool)
    valid_host = (host_arr >= 0) & (host_arr < m)
    safe_host = np.where(valid_host, host_arr, 0)
    loads = np.array(observation.predicted_load_bits, dtype=np.float64)
    incoming = np.broadcast_to(np.asarray(observation.incoming_bits, dtype=np.float64), (n,))

    stale = np.zeros(n, dtype=bool)
    """At its turn: a server of the vehicle's first-pass pairs, or its host, changed load in an earlier turn."""
    fresh = np.zeros(n, dtype=bool)
    """The vehicle's re-scored logits are those of the current loads."""
    rescored_choice = np.full(n, -1, dtype=np.int64)
    rescored_in = np.full(n, -1, dtype=np.int64)
    rescores: list[tuple[NDArray[np.intp], PairScores, NDArray[np.float32]]] = []
    target = host_arr.copy()
    window = max(n_turns // 8, 1)
    p = 0
    while p < n:
        rest = order[p:]
        known = ~stale[rest] | fresh[rest]
        choice = np.where(stale[rest], rescored_choice[rest], first_choice[rest])
        movers = np.flatnonzero(known & (choice != host_arr[rest]))
        end = n if not movers.size else int(turn_end[turn_of[p + movers[0]]])
        unknown = np.flatnonzero(~known[: end - p])
        if unknown.size:
            # Everyone stale up to the next move sees the current loads: they are re-scored together, over a
            # window of turns that widens while no move comes and narrows when one does (a crowded tick, with
            # movers in every turn, re-scores turn by turn; a quiet one in a few calls).
            last_turn = min(int(turn_of[p + unknown[0]]) + window, n_turns) - 1
            again = rest[unknown[p + unknown < turn_end[last_turn]]]
            sub = observation.subset(again, loads, host_arr[again])
            sub = replace(sub, mask=sub.mask & mask0[again])
            pairs = score(sub, host_arr[again], again)
            choice_again, p_again = first_choices(pairs, len(again), None if u_row is None else u_row[again])
            rescored_choice[again] = choice_again
            rescored_in[again] = len(rescores)
            rescores.append((again, pairs, p_again))
            fresh[again] = True
            window = max(window // 2, 1) if (choice_again != host_arr[again]).any() else min(2 * window, n_turns)
            continue
        target[rest[: end - p]] = choice[: end - p]
        if not movers.size:
            break
        # Apply the moves of that turn, as decide_in_turns does, and mark what they changed.
        turn = order[(int(turn_end[turn_of[end - 1] - 1]) if turn_of[end - 1] else 0) : end]
        chosen = target[turn]
        moved = chosen != host_arr[turn]
        movers_rows = turn[moved]
        np.add.at(loads, chosen[moved], incoming[movers_rows])
        src = host_arr[movers_rows]
        ok = src >= 0
        np.subtract.at(loads, src[ok], incoming[movers_rows][ok])
        now_changed = np.zeros(m, dtype=bool)
        now_changed[chosen[moved]] = True
        now_changed[src[ok]] = True
        stale[first.rows[now_changed[first.cols]]] = True
        stale |= valid_host & now_changed[safe_host]
        fresh &= ~(mask0[:, now_changed].any(axis=1) | (valid_host & now_changed[safe_host]))
        p = end

    # Each vehicle's policy is the softmax over the pairs of the pass it decided from (first_choices made it);
    # every other server's probability is 0, as masked_probabilities gives it over the dense logits.
    probabilities = np.zeros((n, m), dtype=np.float32)
    use_first = rescored_in < 0
    keep = use_first[first.rows]
    probabilities[first.rows[keep], first.cols[keep]] = first_p[keep]
    for k, (rows, pairs, pair_p) in enumerate(rescores):
        final = rescored_in[rows[pairs.rows]] == k
        probabilities[rows[pairs.rows[final]], pairs.cols[final]] = pair_p[final]
    return target, probabilities
