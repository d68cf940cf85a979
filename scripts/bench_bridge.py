#!/usr/bin/env python
"""Bridge tick vs bare SUMO step, in one run, at about 200, 1,000 and 5,000 running vehicles.

For each vehicle count the benchmark warms the committed city scenario up to that count, then times the
same ticks twice, alternating (SUMO is deterministic, so both start from the same state):

* baseline: bare ``simulationStep`` (libsumo, in this process);
* bridge:   the full bridge tick as ``twin-service run`` does it: libsumo in a worker process steps and reads
            every vehicle, while this process computes geo, UAVs, physics, decisions and the twin write to a
            real (embedded) Redis for the previous tick (see ``bridge/worker.py``);
* and, for reference, the same bridge tick in one process (``--no-parallel``).

Vehicle counts come from the city's own demand scaled with SUMO's ``--scale`` and capped with
``--max-num-vehicles`` (``--max-depart-delay 60`` bounds the insertion queue the cap builds up, which would
otherwise slow the baseline). It prints per-tick medians and their ratio; the last line is ``ratio_1000=<x>``
(target <= 1.5).

    .venv/bin/python scripts/bench_bridge.py [--ticks 60] [--counts 200,1000,5000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from twin_service.bridge.backends import open_backend
from twin_service.bridge.engine import Engine
from twin_service.bridge.pipeline import PipelinedTicks
from twin_service.bridge.runner import Scenario
from twin_service.bridge.worker import ProcessBackend
from twin_service.bridge.writer import write_with_retry
from twin_service.twins import TwinStore, open_redis

PEAK_BEGIN_S = 1200.0
"""Start of the city's busiest half hour; the warm-up runs from here."""


def sumo_args(count: int) -> list[str]:
    scale = max(count / 1400.0 * 1.5, 0.2)
    return ["--scale", f"{scale:.3f}", "--max-num-vehicles", str(count), "--max-depart-delay", "60"]


def _warm(backend, count: int):
    for _ in range(2400):
        backend.step()
        if backend.vehicle_count() >= 0.97 * count and backend.time_s >= PEAK_BEGIN_S + 120:
            break
    return backend


def warm_up(cfg: Path, count: int, worker: bool = False):
    """Run from the ramp toward the peak until about ``count`` vehicles are running.

    SUMO is deterministic for a seed and the bridge never changes the traffic, so every measurement that
    warms up this way starts from the same state, in this process or in a worker.
    """
    options = {"seed": 1, "begin_s": PEAK_BEGIN_S, "extra_args": sumo_args(count)}
    if worker:
        return _warm(ProcessBackend(cfg, **options), count)
    return _warm(open_backend("libsumo", cfg, **options), count)


def time_ticks(cfg: Path, count: int, ticks: int, run_tick, worker: bool = False) -> tuple[list[float], float, int]:
    backend = warm_up(cfg, count, worker)
    tick = run_tick(backend)
    try:
        t_start, running = backend.time_s, backend.vehicle_count()
        for _ in range(5):  # admit the running vehicles into the bridge, warm caches
            tick()
        times = []
        for _ in range(ticks):
            t0 = time.perf_counter()
            tick()
            times.append(time.perf_counter() - t0)
        return times, t_start, running
    finally:
        getattr(tick, "close", lambda: None)()  # stop the bridge's pipeline before SUMO goes
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=60, help="timed ticks per measurement")
    parser.add_argument("--counts", default="200,1000,5000", help="running-vehicle targets")
    parser.add_argument("--rounds", type=int, default=2, help="alternate baseline/bridge this many times")
    parser.add_argument("--scenario", default="city", help="scenario to measure on")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    scenario = Scenario.load(args.scenario)
    cfg = scenario.sumocfg

    with open_redis(None) as redis:
        params = scenario.params
        store = TwinStore(redis.client, "bench", window=params.simulation.history_window)
        results = {}
        for count in counts:

            def bare(backend):
                return backend.step

            def bridge(backend, pipelined: bool):
                store.clear()  # each measurement is a new run from tick 1
                engine = Engine(params, scenario.layout, scenario.projection, backend, seed=1)
                ticker = PipelinedTicks(engine) if pipelined else engine

                def tick():  # as run_loop does
                    frame, ctx = ticker.tick()
                    write_with_retry(store, frame, 30.0)
                    engine.apply(engine.decisions.decide(ctx))

                if pipelined:
                    tick.close = ticker.close  # type: ignore[attr-defined]
                return tick

            base_ms, bridge_ms, inline_ms = [], [], []
            for _ in range(args.rounds):
                base, t_state, running = time_ticks(cfg, count, args.ticks, bare)
                timed, _, _ = time_ticks(cfg, count, args.ticks, lambda b: bridge(b, True), worker=True)
                inline, _, _ = time_ticks(cfg, count, args.ticks, lambda b: bridge(b, False))
                base_ms += [1e3 * t for t in base]
                bridge_ms += [1e3 * t for t in timed]
                inline_ms += [1e3 * t for t in inline]
                store.clear()
            one = statistics.median(inline_ms)
            b, g = statistics.median(base_ms), statistics.median(bridge_ms)
            results[count] = (running, b, g, g / b)
            print(
                f"vehicles~{count:>5} (running {running:>5} at t={t_state:.0f}s): bare step {b:7.2f} ms  "
                f"bridge tick {g:7.2f} ms  ratio {g / b:5.2f}   (in one process: {one:7.2f} ms, ratio {one / b:5.2f})",
                flush=True,
            )
    for count, (_, _, _, ratio) in results.items():
        print(f"ratio_{count}={ratio:.3f}")
    if 1000 in results and counts[-1] != 1000:
        print(f"ratio_1000={results[1000][3]:.3f}")


if __name__ == "__main__":
    main()
