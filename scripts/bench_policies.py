#!/usr/bin/env python
"""The bridge unpaced at the city's peak: deciding with the trained models against the default heuristics, one run.

Copies of the committed city are warmed up to the same state at its peak (SUMO is deterministic for a seed, and
decisions never change the traffic), each driven by the full bridge tick as ``twin-service run --speed max`` does
it (libsumo in a worker process, geo, UAVs, physics, the twin write to a real embedded Redis, then the tick's
decisions in-process):

* ``heuristics``: the defaults (``least-loaded``, ``nearest-least-loaded``, persistence of the loads);
* ``models``: the trained models (``dm-mappo-city``, ``af-marl-city``: the heaviest offloading model, the
  ``city-predictor`` forecast), by the fast paths (``policies.sequential.decide_in_turns_pairs``, ONNX Runtime);
* with ``--reference``, ``models (reference path)``: the same models deciding the plain way (``decide_reference``
  over the torch modules), what the service did before issue 20.

The copies run the same ticks in turn, a block of ``--block`` ticks each, so that a slow spell of the shared machine
falls on all of them alike; each block gives one ratio of ticks/s against the heuristics' over the same simulated
seconds, and the figure is the median over blocks. The last line is ``models_vs_heuristics=<x>`` (target >= 0.8).

    .venv/bin/python scripts/bench_policies.py [--ticks 300] [--block 15] [--begin 900] [--warmup 600] [--reference]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from twin_service.bridge.pipeline import PipelinedTicks
from twin_service.bridge.worker import ProcessBackend
from twin_service.bridge.writer import write_with_retry
from twin_service.engine import Engine, PolicyDecisions
from twin_service.policies import MigrationDecision
from twin_service.predict.registry import load_forecaster
from twin_service.scenario.folder import Scenario
from twin_service.twins import TwinStore, open_redis

MODELS = ("dm-mappo-city", "af-marl-city", "city-predictor")


class ReferenceMigration:
    """A per-server model deciding by its reference path (the plain turns over the torch module)."""

    needs_window_mean = False

    def __init__(self, policy) -> None:  # noqa: ANN001
        self.policy, self.name, self.version = policy, policy.name, policy.version

    def decide(self, observation, servers, host=None) -> MigrationDecision:  # noqa: ANN001
        return self.policy.decide_reference(observation, servers, host)


class Bridge:
    """One copy of the bridge: a SUMO worker, the engine with its decisions, the twin store (as ``run_loop``)."""

    def __init__(self, label: str, scenario: Scenario, backend: ProcessBackend, store: TwinStore, kind: str) -> None:
        params = scenario.params
        forecaster = None
        if kind == "heuristics":
            decisions = PolicyDecisions(params, len(scenario.layout), seed=1)
        else:
            forecaster = load_forecaster(MODELS[2], params, None)
            decisions = PolicyDecisions(params, len(scenario.layout), MODELS[0], MODELS[1], seed=1, models_dir="models")
            if kind == "reference":
                decisions.migration = ReferenceMigration(decisions.migration)
                decisions.offload.runtime = None  # the torch module
        self.label = label
        self.engine = Engine(
            params, scenario.layout, scenario.projection, backend, decisions, seed=1, forecaster=forecaster
        )
        self.store = store
        self._left = 0
        self.ticker = PipelinedTicks(self.engine, may_step=lambda ahead: ahead <= self._left)
        self.decide_s: list[float] = []

    def block(self, ticks: int) -> float:
        """Wall seconds for ``ticks`` ticks in steady state (one more tick runs first and fills the pipeline)."""
        engine = self.engine
        t0 = 0.0
        for i in range(ticks + 1):
            self._left = ticks - i
            frame, ctx = self.ticker.tick()
            write_with_retry(self.store, frame, 30.0)
            d0 = time.perf_counter()
            engine.apply(engine.decisions.decide(ctx))
            if i:
                self.decide_s.append(time.perf_counter() - d0)
            if i == 0:
                t0 = time.perf_counter()
        return time.perf_counter() - t0

    def close(self) -> None:
        self.ticker.close()
        self.engine.backend.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=300, help="Timed ticks per copy.")
    ap.add_argument("--block", type=int, default=15, help="Ticks per block (each block gives one ratio).")
    ap.add_argument("--begin", type=float, default=900.0, help="Sim time SUMO starts at (its --begin).")
    ap.add_argument(
        "--warmup", type=int, default=600, help="Ticks every copy runs before timing (the city fills up: the peak)."
    )
    ap.add_argument("--reference", action="store_true", help="Also time the models by their reference path.")
    args = ap.parse_args()
    scenario = Scenario.load("city")
    kinds = ["heuristics", "models"] + (["reference"] if args.reference else [])
    labels = {"heuristics": "heuristics", "models": "models", "reference": "models (reference path)"}
    window = scenario.params.simulation.history_window
    with open_redis(None) as redis:
        bridges = []
        try:
            for kind in kinds:
                backend = ProcessBackend(scenario.sumocfg, seed=1, begin_s=args.begin)
                store = TwinStore(redis.client, f"bench-{kind}", window=window)
                store.clear()
                bridges.append(Bridge(labels[kind], scenario, backend, store, kind))
            for bridge in bridges:  # the same warm-up for each: twins, backlogs and windows of a running city
                bridge.block(args.warmup)
            times: dict[str, list[float]] = {b.label: [] for b in bridges}
            for _ in range(max(args.ticks // args.block, 1)):
                for bridge in bridges:
                    times[bridge.label].append(bridge.block(args.block))
            vehicles = len(bridges[0].engine.vehicles.i["host"])
            running = bridges[0].engine.backend.vehicle_count()
            sim_t = bridges[0].engine.last_sim_time_s
            decide_ms = {b.label: 1e3 * statistics.median(b.decide_s[-args.ticks :]) for b in bridges}
        finally:
            for bridge in bridges:
                bridge.close()
                bridge.store.clear()
    base = times["heuristics"]
    print(
        f"city from {args.begin:g} s, warm-up {args.warmup} ticks, then {len(base)} blocks of {args.block} ticks each"
    )
    print(f"running vehicles at the end: {running} (t={sim_t:.0f} s); table slots {vehicles}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ratios = {}
    for label, blocks in times.items():
        tps = args.block / statistics.median(blocks)
        ratios[label] = [b / t for b, t in zip(base, blocks, strict=True)]
        r = ratios[label]
        print(
            f"  {label:24s} {tps:7.1f} ticks/s  decisions {decide_ms[label]:6.2f} ms/tick (median)  "
            f"vs heuristics {statistics.median(r):.3f} (blocks {min(r):.2f}-{max(r):.2f})"
        )
    if "models (reference path)" in ratios:
        speedup = [a / b for a, b in zip(times["models (reference path)"], times["models"], strict=True)]
        print(f"models: fast path over reference path, ticks/s: {statistics.median(speedup):.2f}x")
    print(f"models_vs_heuristics={statistics.median(ratios['models']):.3f}")


if __name__ == "__main__":
    main()
