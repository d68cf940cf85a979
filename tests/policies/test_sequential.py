"""Deciding in turns: later vehicles see the loads earlier moves left, so a crowd does not herd."""

from __future__ import annotations

import numpy as np
import torch

from twin_service.config import BITS_PER_MB
from twin_service.observe import ServerTable, migration_observation
from twin_service.policies.masking import MASKED_LOGIT
from twin_service.policies.sequential import decide_in_turns

S_V = 2 * BITS_PER_MB


def _servers() -> ServerTable:
    return ServerTable(
        ids=("crowded", "a", "b", "c", "sat"),
        tiers=("rsu", "rsu", "rsu", "rsu", "satellite"),
        range_m=np.array([1200.0] * 4 + [np.inf]),
        load_max_bits=np.array([300.0 * BITS_PER_MB] * 4 + [np.inf]),
        cpu_hz=np.array([32e9] * 4 + [80e9]),
        altitude_m=np.array([0.0] * 4 + [550e3]),
    )


def _least_load_score(obs, host, rows):
    """A policy that wants the server with the lowest predicted load (counting its own data where it is)."""
    load = np.asarray(obs.predicted_load_bits)[None, :] + np.where(
        np.arange(obs.mask.shape[1])[None, :] == host[:, None], 0.0, S_V
    )
    logits = torch.from_numpy(-load / S_V)
    return logits.masked_fill(~torch.from_numpy(obs.mask), MASKED_LOGIT)


def _argmax(logits, probs, rows):
    return logits.argmax(dim=-1).numpy()


def test_a_crowd_spreads_when_it_decides_in_turns_and_herds_when_it_decides_at_once():
    n = 12
    servers = _servers()
    dist = np.tile(np.array([[200.0, 300.0, 300.0, 300.0, 550e3]]), (n, 1))
    loads = np.array([n * S_V, 4 * S_V, 4 * S_V, 4 * S_V, 50 * S_V])  # everyone on "crowded"
    host = np.zeros(n, dtype=np.int64)
    obs = migration_observation(dist, loads, S_V, servers, host)
    order = np.arange(n)
    together = decide_in_turns(obs, host, _least_load_score, _argmax, order, chunk=n)
    assert (together.target == together.target[0]).all() and together.target[0] != 0  # all to one server
    turns = decide_in_turns(obs, host, _least_load_score, _argmax, order, chunk=1)
    counts = np.bincount(turns.target, minlength=5)
    # Moving one twin at a time evens the loads out: 12 + 12 twins' data over four servers, 6 each.
    assert counts[0] == 6 and list(counts[1:4]) == [2, 2, 2] and counts[4] == 0
    assert len(turns.passes) > 1 and turns.scored_in.max() >= 1
    # Each vehicle's probabilities are those it decided with: the last movers saw evened loads.
    np.testing.assert_allclose(turns.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(turns.probabilities[0], turns.probabilities[-1])


def test_with_nothing_moving_one_pass_decides_for_everyone():
    servers = _servers()
    dist = np.tile(np.array([[200.0, 300.0, 300.0, 300.0, 550e3]]), (5, 1))
    loads = np.array([5 * S_V, 9 * S_V, 9 * S_V, 9 * S_V, 50 * S_V])
    host = np.zeros(5, dtype=np.int64)
    obs = migration_observation(dist, loads, S_V, servers, host)
    turns = decide_in_turns(obs, host, _least_load_score, _argmax, np.arange(5), chunk=1)
    assert (turns.target == 0).all() and len(turns.passes) == 1
