"""The bridge asks the decision service each tick, applies what it says, and falls back when it is down."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np

from twin_service.api import create_app
from twin_service.api.serve import ApiThread
from twin_service.bridge.decisions import HttpDecisions, PolicyDecisions
from twin_service.bridge.runner import RunOptions, open_bridge, run_loop
from twin_service.config import Settings
from twin_service.policies import DEFAULT_MIGRATION_POLICY
from twin_service.twins.server import RedisHandle


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recording:
    """Wraps a decision source and keeps what it saw and said."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.reads_twins = getattr(inner, "reads_twins", False)
        self.seen: list = []

    def decide(self, ctx):
        decisions = self.inner.decide(ctx)
        self.seen.append((ctx, decisions))
        return decisions


def test_decisions_come_from_the_service_and_respect_the_mask_then_fall_back(
    small_scenario: Path, redis_server: RedisHandle, key_prefix: str
):
    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix, ticks=40)
    with open_bridge(options, redis=redis_server) as (engine, store, handle):
        settings = Settings(redis_url=handle.url, key_prefix=key_prefix)
        api = ApiThread(create_app(settings, scenario_params=engine.params), "127.0.0.1", _free_port()).start()
        local = engine.decisions
        assert isinstance(local, PolicyDecisions)
        recorder = Recording(HttpDecisions(api.url, local, retry_after_s=60.0))
        engine.decisions = recorder
        try:
            run_loop(engine, store, options, url=handle.url)
        finally:
            api.stop()
        served = recorder.seen
        assert len(served) == 40
        for ctx, decisions in served:
            assert decisions.source.startswith(f"api:{DEFAULT_MIGRATION_POLICY}@")
            assert not decisions.fallback
            rows = np.arange(len(ctx.vehicle_ids))
            assert ctx.observation.mask[rows, decisions.target].all(), "a decision named an infeasible server"
            # The service decides exactly as the same policies would in-process.
            expected = local.decide(ctx)
            np.testing.assert_array_equal(decisions.target, expected.target)
            np.testing.assert_allclose(decisions.rho, expected.rho)
        # Decisions take effect: the next tick's hosts are the targets decided after this one.
        ctx_a, dec_a = served[-2]
        ctx_b, _ = served[-1]
        target_of = dict(zip(ctx_a.vehicle_ids, dec_a.target.tolist(), strict=True))
        for vid, host in zip(ctx_b.vehicle_ids, ctx_b.host.tolist(), strict=True):
            if vid in target_of:
                assert host == target_of[vid]
        assert store.kpis()["fallback"] == 0.0

        # The service is gone: the bridge keeps going on its local policies and marks those ticks.
        options_more = RunOptions(scenario=small_scenario, key_prefix=key_prefix, ticks=50)
        summary = run_loop(engine, store, options_more, url=handle.url)
    after = recorder.seen[40:]
    assert len(after) == 10 and all(d.fallback and d.source.startswith("fallback:") for _, d in after)
    assert recorder.inner.last_error and "failed" in recorder.inner.last_error
    assert summary["fallback_ticks"] >= 9  # every tick governed by a fallback decision
    assert store.kpis()["fallback"] == 1.0
