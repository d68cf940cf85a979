#!/usr/bin/env python
"""One tick's decisions, repeated, on a recorded city tick: what the flame graphs of ``results/perf/`` profile.

Replays a recorded day through the engine (with the ``city-predictor`` forecast) from ``--at`` minus 30 s, deciding
with the given policies, then decides again ``--repeat`` times on the last tick and prints the mean CPU time of the
migration and the offloading decision. Run it under a profiler:

    py-spy record -r 200 -o results/perf/FILE.svg -- .venv/bin/python scripts/profile_decide.py \\
        dm-mappo-city af-marl-city --repeat 30
"""

from __future__ import annotations

import argparse
import time

from twin_service.engine import Engine, PolicyDecisions
from twin_service.engine.recording import Recording
from twin_service.engine.replay import ReplayBackend
from twin_service.policies import OffloadInputs
from twin_service.policies.decide import decide_migration, decide_offload
from twin_service.predict.registry import load_forecaster
from twin_service.scenario.folder import Scenario


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("migration_policy")
    ap.add_argument("offload_policy")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--recording", default="data/recordings/city-s1.npz")
    ap.add_argument("--at", type=float, default=1700.0, help="Sim time of the tick decided on.")
    args = ap.parse_args()
    scenario = Scenario.load("city")
    rec = Recording(args.recording)
    backend = ReplayBackend(rec, begin_s=args.at - 30, end_s=args.at + 40, roads=False)
    forecaster = load_forecaster("city-predictor", scenario.params, None)
    decisions = PolicyDecisions(
        scenario.params, len(scenario.layout), args.migration_policy, args.offload_policy, seed=1, models_dir="models"
    )
    engine = Engine(
        scenario.params, scenario.layout, scenario.projection, backend, decisions, seed=int(rec.meta.seed),
        forecaster=forecaster,
    )  # fmt: skip
    for _ in range(31):
        _, ctx = engine.tick()
        engine.apply(decisions.decide(ctx))
    m, o = decisions.migration, decisions.offload
    inputs = OffloadInputs(ctx.offload_now, ctx.offload_window_mean(), ctx.host)
    c0 = time.process_time()
    for _ in range(args.repeat):
        decide_migration(m, ctx.observation, ctx.servers, ctx.host)
    c1 = time.process_time()
    for _ in range(args.repeat):
        decide_offload(o, inputs)
    c2 = time.process_time()
    print(f"{len(ctx.host)} vehicles at {ctx.sim_time_s:g} s of {rec.path.name}")
    print(f"migration ({m.name}): {1e3 * (c1 - c0) / args.repeat:.2f} ms CPU per decision")
    print(f"offloading ({o.name}): {1e3 * (c2 - c1) / args.repeat:.2f} ms CPU per decision")


if __name__ == "__main__":
    main()
