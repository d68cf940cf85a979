#!/usr/bin/env python
"""Bridge tick vs bare SUMO step, in one run, at about 200, 1,000 and 5,000 running vehicles.

For each vehicle count, three copies of the committed city scenario are warmed up to the same state (SUMO
is deterministic for a seed, and the bridge never changes the traffic):

* baseline: bare ``simulationStep`` (libsumo; timed inside its process, so no messaging is counted);
* bridge:   the full bridge tick as ``twin-service run`` does it: libsumo in a worker process steps and reads
            every vehicle, while this process computes geo, UAVs, physics, decisions and the twin write to a
            real (embedded) Redis (see ``bridge/worker.py`` and ``bridge/pipeline.py``);
* and, for reference, the same bridge tick in one process (``--no-parallel``).

The three then run the same ticks in turn, a block of ``--block`` ticks each, so that a slow spell of the
machine (shared cloud cores vary by tens of per cent over seconds) falls on all of them alike. Each block
gives one bridge/baseline ratio over the same simulated seconds; the figure reported is the median over
the blocks. Every block starts with one untimed tick (the bridge's pipeline fills meanwhile), so a block
times the bridge's steady state: as in a run, its SUMO worker steps ahead while a tick is processed.

Vehicle counts come from the city's own demand scaled with SUMO's ``--scale`` and capped with
``--max-num-vehicles`` (``--max-depart-delay 60`` bounds the insertion queue the cap builds up, which would
otherwise slow every copy alike). The last line is ``ratio_1000=<x>`` (target <= 1.5).

    .venv/bin/python scripts/bench_bridge.py [--ticks 300] [--block 15] [--counts 200,1000,5000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from twin_service.bridge.backends import open_backend
from twin_service.bridge.pipeline import PipelinedTicks
from twin_service.bridge.runner import Scenario
from twin_service.bridge.worker import ProcessBackend
from twin_service.bridge.writer import write_with_retry
from twin_service.engine import Engine, PolicyDecisions
from twin_service.twins import TwinStore, open_redis

PEAK_BEGIN_S = 1200.0
"""Start of the city's busiest half hour; the warm-up runs from here."""

ADMIT_TICKS = 5
"""Bridge ticks before timing: the running vehicles get their twins, caches warm up."""


def sumo_args(count: int) -> list[str]:
    scale = max(count / 1400.0 * 1.5, 0.2)
    return ["--scale", f"{scale:.3f}", "--max-num-vehicles", str(count), "--max-depart-delay", "60"]


def warm_up(cfg: Path, count: int) -> tuple[ProcessBackend, ProcessBackend, object, int]:
    """Three copies of the scenario at the same step, about ``count`` vehicles running.

    Returns the baseline's and the bridge's worker backends, an in-process libsumo backend and the step
    count (the baseline decides when the target is reached; the others then take the same steps).
    """
    options = {"seed": 1, "begin_s": PEAK_BEGIN_S, "extra_args": sumo_args(count)}
    base = ProcessBackend(cfg, **options)
    steps = 0
    while steps < 2400:
        base.advance()
        steps += 1
        if base.vehicle_count() >= 0.97 * count and base.time_s >= PEAK_BEGIN_S + 120:
            break
    worker = ProcessBackend(cfg, **options)
    inproc = open_backend("libsumo", cfg, **options)
    for _ in range(steps):
        worker.advance()
        inproc.step()
    return base, worker, inproc, steps


class BridgeTicks:
    """Times blocks of bridge ticks as ``run_loop`` does them: tick, twin write, decisions."""

    def __init__(self, scenario: Scenario, backend, store: TwinStore, pipelined: bool) -> None:
        self.engine = Engine(
            scenario.params,
            scenario.layout,
            scenario.projection,
            backend,
            PolicyDecisions(scenario.params, len(scenario.layout), seed=1),
            seed=1,
        )
        self.store = store
        self._left = 0
        self.sumo_s: list[tuple[float, float]] = []
        """Per tick: the worker's step and read seconds (what the bridge's SUMO side costs)."""
        within_block = lambda ahead: ahead <= self._left  # noqa: E731
        self.ticker = PipelinedTicks(self.engine, may_step=within_block) if pipelined else self.engine

    def block(self, ticks: int) -> float:
        """Wall seconds for ``ticks`` ticks in steady state.

        The block runs one tick more than it times: the clock starts when its first tick is done, by when the
        pipeline is full (the next steps are in flight). It stops when the last tick is done; no step beyond
        it is taken, so the pipeline is empty again for the other copies' blocks.
        """
        engine = self.engine
        t0 = 0.0
        for i in range(ticks + 1):
            self._left = ticks - i  # no step beyond the block's last tick
            frame, ctx = self.ticker.tick()
            backend = engine.backend
            self.sumo_s.append((backend.last_step_s, getattr(backend, "last_read_s", 0.0)))
            write_with_retry(self.store, frame, 30.0)
            engine.apply(engine.decisions.decide(ctx))
            if i == 0:
                t0 = time.perf_counter()
        return time.perf_counter() - t0

    def close(self) -> None:
        if isinstance(self.ticker, PipelinedTicks):
            self.ticker.close()
        self.engine.backend.close()


def measure(scenario: Scenario, store_w: TwinStore, store_i: TwinStore, count: int, ticks: int, block: int) -> dict:
    base, worker, inproc, _ = warm_up(scenario.sumocfg, count)
    store_w.clear()
    store_i.clear()
    bridge = BridgeTicks(scenario, worker, store_w, pipelined=True)
    single = BridgeTicks(scenario, inproc, store_i, pipelined=False)
    try:
        for _ in range(ADMIT_TICKS + 1):  # as many steps as a block of ADMIT_TICKS takes
            base.advance()
        bridge.block(ADMIT_TICKS)
        single.block(ADMIT_TICKS)
        running, t_state = base.vehicle_count(), base.time_s
        base_s: list[float] = []
        bridge_s: list[float] = []
        single_s: list[float] = []
        step: Callable[[], float] = base.advance
        for _ in range(max(ticks // block, 1)):
            step()  # each copy takes one untimed step per block (the bridge's fills its pipeline)
            base_s.append(sum(step() for _ in range(block)))
            bridge_s.append(bridge.block(block))
            single_s.append(single.block(block))
    finally:
        bridge.close()
        single.close()
        base.close()
    ratios = [g / b for g, b in zip(bridge_s, base_s, strict=True)]
    ratios_single = [g / b for g, b in zip(single_s, base_s, strict=True)]
    per_tick = lambda blocks: 1e3 * statistics.median(blocks) / block  # noqa: E731
    return {
        "running": running,
        "t": t_state,
        "bare_ms": per_tick(base_s),
        "bridge_ms": per_tick(bridge_s),
        "single_ms": per_tick(single_s),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratio_single": statistics.median(ratios_single),
        "blocks": len(ratios),
        "worker_step_ms": 1e3 * statistics.median(s for s, _ in bridge.sumo_s[ADMIT_TICKS + 1 :]),
        "worker_read_ms": 1e3 * statistics.median(r for _, r in bridge.sumo_s[ADMIT_TICKS + 1 :]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=300, help="timed ticks per copy and vehicle count")
    parser.add_argument("--block", type=int, default=15, help="ticks per block (each block gives one ratio)")
    parser.add_argument("--counts", default="200,1000,5000", help="running-vehicle targets")
    parser.add_argument("--scenario", default="city", help="scenario to measure on")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    scenario = Scenario.load(args.scenario)

    with open_redis(None) as redis:
        window = scenario.params.simulation.history_window
        store_w = TwinStore(redis.client, "bench-worker", window=window)
        store_i = TwinStore(redis.client, "bench-inline", window=window)
        results = {}
        for count in counts:
            r = measure(scenario, store_w, store_i, count, args.ticks, args.block)
            results[count] = r
            print(
                f"vehicles~{count:>5} (running {r['running']:>5} at t={r['t']:.0f}s): "
                f"bare step {r['bare_ms']:7.2f} ms  bridge tick {r['bridge_ms']:7.2f} ms  "
                f"ratio {r['ratio']:5.2f} (blocks {r['ratio_min']:.2f}-{r['ratio_max']:.2f}, n={r['blocks']})   "
                f"in one process: {r['single_ms']:7.2f} ms, ratio {r['ratio_single']:5.2f}   "
                f"(bridge's worker: step {r['worker_step_ms']:.2f} ms, read {r['worker_read_ms']:.2f} ms)",
                flush=True,
            )
        store_w.clear()
        store_i.clear()
    for count, r in results.items():
        print(f"ratio_{count}={r['ratio']:.3f}")
    if 1000 in results and counts[-1] != 1000:
        print(f"ratio_1000={results[1000]['ratio']:.3f}")


if __name__ == "__main__":
    main()
