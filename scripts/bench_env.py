#!/usr/bin/env python
"""Live bridge tick vs replay tick vs batched environment step, in one run, at about 1,000 vehicles.

Training replays recorded mobility through the engine instead of running SUMO. This measures, over the same
simulated seconds of the committed city at its peak:

* live:    the tick ``twin-service run`` runs: libsumo in a worker process steps and reads every vehicle
           while this process computes geo, UAVs, both papers' physics, the default policies' decisions and
           the twin write to a real (embedded) Redis (``bridge/worker.py``, ``bridge/pipeline.py``);
* replay:  the tick ``twin-service run --replay`` runs: the same, with the vehicles read from a recording;
* env:     one step of the batched migration environment (``envs.MigrationCore.step``): the engine without
           what only serving needs (lon/lat, the twin frame, paper B), the observations and masks of every
           agent and the Eq. 22 rewards (the actions, drawn among each agent's feasible servers, are made
           before the clock starts);
* and, for reference, one step of the batched offloading environment (``envs.OffloadCore.step``).

The recording is made first (SUMO from ``--begin`` with the city's demand scaled to about ``--count``
running vehicles, as ``scripts/bench_bridge.py`` does). The four then run in turn, a block of ``--block``
ticks each, so that a slow spell of this shared machine falls on all of them alike; each figure is the
median over blocks. Agent-steps per second are printed before the last line, ``replay_speedup=<live tick /
env step>`` (target: at least 4).

    .venv/bin/python scripts/bench_env.py [--count 1000] [--ticks 300] [--block 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from twin_service.bridge.pipeline import PipelinedTicks
from twin_service.bridge.worker import ProcessBackend
from twin_service.bridge.writer import write_with_retry
from twin_service.engine import Engine, PolicyDecisions
from twin_service.engine.recording import Recording, RecordingMeta, RecordingWriter
from twin_service.engine.replay import ReplayBackend
from twin_service.envs import EnvOptions, MigrationCore, OffloadCore
from twin_service.scenario.folder import Scenario
from twin_service.twins import TwinStore, open_redis

BEGIN_S = 1200.0
WARM_TICKS = 10
"""Ticks every copy runs before timing (twins admitted, caches warm); the environments' warm-up."""


def sumo_args(count: int) -> list[str]:
    scale = max(count / 1400.0 * 1.5, 0.2)
    return ["--scale", f"{scale:.3f}", "--max-num-vehicles", str(count), "--max-depart-delay", "60"]


def record(scenario: Scenario, count: int, ticks: int, out: Path) -> tuple[int, dict]:
    """Fast-forward SUMO until about ``count`` vehicles run, then record ``ticks`` ticks; returns the skip."""
    options = {"seed": 1, "begin_s": BEGIN_S, "extra_args": sumo_args(count)}
    backend = ProcessBackend(scenario.sumocfg, **options)
    meta = RecordingMeta(
        scenario=scenario.params.scenario.name,
        scenario_dir=str(scenario.folder),
        param_hash=scenario.params.param_hash,
        seed=1,
        scale=1.0,
        begin_s=backend.time_s,
        end_s=backend.time_s,
        tick_s=scenario.params.simulation.tick_s,
        sumo_version="bench",
    )
    writer = RecordingWriter(out, meta)
    skip = 0
    try:
        while skip < 2400 and not (backend.vehicle_count() >= 0.97 * count and backend.time_s >= BEGIN_S + 120):
            backend.step()  # read too: a recording holds every tick from the run's start
            writer.add(backend.observe_tick())
            skip += 1
        for _ in range(ticks):
            backend.step()
            writer.add(backend.observe_tick())
        writer.close()
    finally:
        backend.close()
    return skip, options


class Ticks:
    """Blocks of bridge ticks as ``run_loop`` does them: tick, twin write, decisions."""

    def __init__(self, scenario: Scenario, backend, store: TwinStore) -> None:  # noqa: ANN001
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
        pipelined = isinstance(backend, ProcessBackend)
        self.ticker = PipelinedTicks(self.engine, may_step=lambda ahead: ahead <= self._left) if pipelined else None

    def run(self, ticks: int, timed: bool = True) -> float:
        """Wall seconds of ``ticks`` ticks; one more runs untimed first (a worker's pipeline fills meanwhile)."""
        t0 = time.perf_counter()
        for i in range(ticks + 1):
            self._left = ticks - i
            frame, ctx = self.ticker.tick() if self.ticker is not None else self.engine.tick()
            write_with_retry(self.store, frame, 30.0)
            self.engine.apply(self.engine.decisions.decide(ctx))
            if i == 0:
                t0 = time.perf_counter()
        return time.perf_counter() - t0

    def close(self) -> None:
        if self.ticker is not None:
            self.ticker.close()
        self.engine.backend.close()


class EnvSteps:
    """Blocks of batched environment steps; the actions of a step are drawn before its clock starts."""

    def __init__(self, core: MigrationCore | OffloadCore, seed: int = 0) -> None:
        self.core = core
        self.rng = np.random.default_rng(seed)
        self.batch = core.reset(seed)
        self.agents: list[int] = []

    def _actions(self) -> np.ndarray:
        b = self.batch
        if isinstance(self.core, MigrationCore):
            noise = self.rng.random(b.mask.shape)
            noise[~b.mask] = -1.0
            return noise.argmax(axis=1)
        return self.rng.random(len(b))

    def run(self, ticks: int) -> float:
        total = 0.0
        for _ in range(ticks):
            actions = self._actions()
            t0 = time.perf_counter()
            out = self.core.step(actions)
            total += time.perf_counter() - t0
            self.agents.append(len(self.batch))
            self.batch = out.next
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="running vehicles to aim for")
    parser.add_argument("--ticks", type=int, default=300, help="timed ticks per copy")
    parser.add_argument("--block", type=int, default=15, help="ticks per block (each block gives one figure)")
    parser.add_argument("--scenario", default="city")
    args = parser.parse_args()
    scenario = Scenario.load(args.scenario)
    blocks = max(args.ticks // args.block, 1)
    need = WARM_TICKS + blocks * (args.block + 1) + 2

    with tempfile.TemporaryDirectory(prefix="bench-env-") as tmp, open_redis(None) as redis:
        path = Path(tmp) / "bench.npz"
        print(f"recording the {args.scenario} from {BEGIN_S:g} s at about {args.count} vehicles ...", flush=True)
        skip, options = record(scenario, args.count, need, path)
        window = scenario.params.simulation.history_window
        live_store = TwinStore(redis.client, "bench-live", window=window)
        replay_store = TwinStore(redis.client, "bench-replay", window=window)
        live_backend = ProcessBackend(scenario.sumocfg, **options)
        for _ in range(skip):
            live_backend.advance()
        with Recording(path) as rec:
            start_s = float(rec.time_s[skip - 1]) if skip else rec.begin_s
        live = Ticks(scenario, live_backend, live_store)
        replay = Ticks(scenario, ReplayBackend(path, begin_s=start_s), replay_store)
        env_options = EnvOptions(
            episode_s=need - WARM_TICKS, warmup_s=float(WARM_TICKS), starts_s=(start_s + WARM_TICKS,)
        )
        migration = EnvSteps(MigrationCore(scenario, [path], env_options))
        offload = EnvSteps(OffloadCore(scenario, [path], env_options))
        times: dict[str, list[float]] = {"live": [], "replay": [], "env": [], "offload_env": []}
        try:
            live.run(WARM_TICKS - 1)
            replay.run(WARM_TICKS - 1)
            for _ in range(blocks):
                times["live"].append(live.run(args.block))
                times["replay"].append(replay.run(args.block))
                times["env"].append(migration.run(args.block + 1) * args.block / (args.block + 1))
                times["offload_env"].append(offload.run(args.block + 1) * args.block / (args.block + 1))
        finally:
            live.close()
            replay.close()
            migration.core.close()
            offload.core.close()
            live_store.clear()
            replay_store.clear()
    ms = {k: 1e3 * statistics.median(v) / args.block for k, v in times.items()}
    ratios = [a / b for a, b in zip(times["live"], times["env"], strict=True)]
    agents = statistics.mean(migration.agents)
    print(
        f"running vehicles {agents:.0f} (blocks: {blocks} x {args.block} ticks, medians per tick)\n"
        f"live bridge tick      {ms['live']:7.2f} ms\n"
        f"replay tick           {ms['replay']:7.2f} ms   ({ms['live'] / ms['replay']:.2f}x faster than live)\n"
        f"migration env step    {ms['env']:7.2f} ms   (speedup per block {min(ratios):.2f}-{max(ratios):.2f})\n"
        f"offloading env step   {ms['offload_env']:7.2f} ms   ({ms['live'] / ms['offload_env']:.2f}x faster than live)"
    )
    print(f"agent_steps_per_s={agents / (ms['env'] / 1e3):.0f}")
    print(f"offload_agent_steps_per_s={statistics.mean(offload.agents) / (ms['offload_env'] / 1e3):.0f}")
    print(f"replay_speedup={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
