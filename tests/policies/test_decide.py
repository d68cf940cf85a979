"""decide_all: both decisions for a tick from a TickContext-like object, as the bridge calls it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from twin_service.config import BITS_PER_MB
from twin_service.engine import TickContext
from twin_service.observe import OFFLOAD_FEATURES, MigrationObservation, ServerTable, migration_observation
from twin_service.policies import PolicyError, decide_all, migration_policy, offload_policy
from twin_service.policies.base import MigrationDecision
from twin_service.policies.decide import DecisionInputs

SERVERS = ServerTable(
    ids=("rsu_0", "rsu_1", "sat"),
    tiers=("rsu", "rsu", "satellite"),
    range_m=np.array([600.0, 600.0, 1e12]),
    load_max_bits=np.array([300 * BITS_PER_MB, 300 * BITS_PER_MB, np.inf]),
    cpu_hz=np.full(3, 32e9),
    altitude_m=np.array([0.0, 0.0, 550e3]),
)


@dataclass
class Ctx:
    observation: MigrationObservation
    servers: ServerTable
    host: np.ndarray
    offload_now: dict[str, np.ndarray]


def context(n: int = 4) -> Ctx:
    rng = np.random.default_rng(1)
    dist = np.column_stack([rng.uniform(0, 900, n), rng.uniform(0, 900, n), np.full(n, 550e3)])
    host = np.array([0, 1, 2, -1][:n] + [0] * max(n - 4, 0))
    obs = migration_observation(dist, np.array([10e6, 20e6, 0.0]), 16e6, SERVERS, host)
    now = {k: np.ones(n) for k in OFFLOAD_FEATURES}
    now.update(f_hz=np.full(n, 2e9), r_bps=np.full(n, 4e7), data_bits=np.full(n, 8e6), cycles=np.full(n, 1e9),
               deadline_s=np.full(n, 0.5), host_cpu_hz=np.full(n, 3e9))  # fmt: skip
    return Ctx(obs, SERVERS, host, now)


def test_the_bridge_tick_context_offers_what_decide_all_reads():
    names = {f.name for f in dataclasses.fields(TickContext)}
    wanted = {n for n in dir(DecisionInputs) if not n.startswith("_")}
    assert wanted == {"observation", "servers", "host", "offload_now"}
    assert wanted <= names


def test_decide_all_returns_aligned_feasible_decisions():
    ctx = context()
    batch = decide_all(ctx, migration_policy("sticky-nearest"), offload_policy("local-only"))
    assert batch.target.shape == (4,) and batch.rho.shape == (4,)
    assert ctx.observation.mask[np.arange(4), batch.target].all()
    assert batch.rho.tolist() == [0.0] * 4
    assert batch.source == "sticky-nearest@1+local-only@1"
    assert batch.offload.delay_s == pytest.approx([0.5] * 4)  # 1 Gcycle on 2 GHz, locally


def test_a_policy_returning_a_masked_server_is_caught():
    class Broken:
        name, version = "broken", "0"

        def decide(self, observation, servers, host=None):
            n = observation.mask.shape[0]
            return MigrationDecision(np.full(n, -1), np.zeros(observation.mask.shape))

    with pytest.raises(PolicyError, match="infeasible"):
        decide_all(context(), Broken(), offload_policy("local-only"))
