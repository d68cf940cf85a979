"""The bridge asks the decision service each tick, applies what it says, and falls back when it is down."""

from __future__ import annotations

import contextlib
import socket
import time
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


class _Service:
    """A real HTTP decision service in front of the API: it forwards to it, or waits ``delay_s`` first, or
    answers 503, as a test sets it."""

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading

        import httpx

        self.delay_s = 0.0
        self.down = False
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if service.down:
                    with contextlib.suppress(BrokenPipeError):
                        self.send_response(503)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        self.wfile.write(b'{"detail":"restarting"}')
                    return
                time.sleep(service.delay_s)
                r = httpx.post(upstream + self.path, content=body, headers={"Content-Type": "application/json"})
                try:
                    self.send_response(r.status_code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(r.content)))
                    self.end_headers()
                    self.wfile.write(r.content)
                except BrokenPipeError:
                    pass  # the bridge gave up on this answer (its deadline passed)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_a_slow_service_misses_the_deadline_and_an_erring_one_is_asked_again_next_tick(
    small_scenario: Path, redis_server: RedisHandle, key_prefix: str
):
    """The tick never waits longer than the deadline; a service that answers with an error is asked again on
    the very next tick; and the bridge says in one line when it goes back to the service."""
    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix, ticks=6)
    notices: list[str] = []
    with open_bridge(options, redis=redis_server) as (engine, store, handle):
        settings = Settings(redis_url=handle.url, key_prefix=key_prefix)
        api = ApiThread(create_app(settings, scenario_params=engine.params), "127.0.0.1", _free_port()).start()
        service = _Service(api.url)
        decisions = HttpDecisions(
            service.url, engine.decisions, deadline_s=10.0, retry_after_s=0.0, notify=notices.append
        )
        engine.decisions = recorder = Recording(decisions)
        try:
            run_loop(engine, store, options, url=handle.url)  # ticks 1-6: from the service (the first ones warm it)
            decisions.deadline_s, service.delay_s = 0.3, 3.0
            waited = []
            for ticks in (7, 8):
                started = time.monotonic()
                run_loop(engine, store, RunOptions(scenario=small_scenario, key_prefix=key_prefix, ticks=ticks))
                waited.append(time.monotonic() - started)
            # A generous deadline again, so that a loaded machine does not make the service look slow.
            decisions.deadline_s, service.delay_s, service.down = 10.0, 0.0, True
            time.sleep(3.2)  # the late answers come back meanwhile
            run_loop(engine, store, RunOptions(scenario=small_scenario, key_prefix=key_prefix, ticks=10))
            service.down = False
            run_loop(engine, store, RunOptions(scenario=small_scenario, key_prefix=key_prefix, ticks=12))
        finally:
            service.close()
            api.stop()
    fallback = [d.fallback for _, d in recorder.seen]
    assert fallback == [False] * 6 + [True] * 4 + [False] * 2
    assert max(waited) < 2.0, waited  # a tick waits the 0.3 s deadline, not the service's 3 s
    assert decisions.fallback_ticks == 4
    assert len(notices) == 3, notices
    assert notices[0].endswith("failed: no answer within the 0.3 s deadline; deciding locally (asking again next tick)")
    assert notices[1].endswith("failed: HTTP 503: restarting; deciding locally (asking again next tick)")
    assert notices[2].startswith(f"decision service at {service.url} answers again after 4 fallback ticks (")
    assert notices[2].endswith(" s): deciding from it")
