"""Replay a recorded day under one migration policy and print the servers' loads every minute (issue 17's
diagnosis of DM-MAPPO on the dense Hamburg city).

    .venv/bin/python scripts/server_loads.py --policy dm-mappo-city --recording data/dense/hh15-s1.npz \\
        --scenario data/dense/hh15 --begin 840 --end 1200

Each line: running vehicles, the load variance over every server and without the satellite (MB²), the satellite's
and the UAVs' loads, the RSUs' mean and largest load (MB), and the tick's mean latency and packet loss.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from twin_service.config import BITS_PER_MB
from twin_service.engine import Engine, EngineOutputs, PolicyDecisions
from twin_service.engine.recording import Recording, RecordingError
from twin_service.engine.replay import ReplayBackend
from twin_service.envs.sim import scenario_of


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", required=True, help="migration policy (a heuristic or a model name)")
    ap.add_argument("--recording", required=True, type=Path, help="a recorded day (.npz)")
    ap.add_argument("--scenario", default=None, help="its scenario (default: the recording's)")
    ap.add_argument("--begin", type=float, default=None, help="start at this sim time, s")
    ap.add_argument("--end", type=float, default=None, help="stop at this sim time, s")
    ap.add_argument("--every", type=float, default=60.0, help="print every this many sim seconds")
    ap.add_argument("--models-dir", default="models")
    a = ap.parse_args(argv)
    try:
        rec = Recording(a.recording)
        sc = scenario_of([a.recording], a.scenario)
        decisions = PolicyDecisions(
            sc.params, len(sc.layout), a.policy, "nearest-least-loaded", seed=1, models_dir=a.models_dir,
            check_param_hash=False,
        )  # fmt: skip
    except (RecordingError, OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    backend = ReplayBackend(rec, begin_s=a.begin, roads=False)
    engine = Engine(
        sc.params,
        sc.layout,
        sc.projection,
        backend,
        decisions,
        seed=1,
        outputs=EngineOutputs(frame=False, offload=False),
    )
    tiers = np.array([str(t) for t in sc.layout.tiers])
    sat = int(sc.layout.satellite_index)
    end = rec.end_s if a.end is None else min(a.end, rec.end_s)
    next_print = backend.time_s + a.every
    while backend.time_s + sc.params.simulation.tick_s <= end + 1e-9:
        _, ctx = engine.tick()
        engine.apply(decisions.decide(ctx))
        if backend.time_s + 1e-9 >= next_print:
            next_print += a.every
            load = np.asarray(engine.load_bits) / BITS_PER_MB
            rsu = load[tiers == "rsu"]
            print(
                f"t={backend.time_s:.0f} s vehicles={len(ctx.vehicle_keys)} var={load.var():.1f} "
                f"var_without_satellite={np.delete(load, sat).var():.1f} satellite={load[sat]:.1f} "
                f"uavs={np.round(load[tiers == 'uav'], 1).tolist()} rsu_mean={rsu.mean():.1f} rsu_max={rsu.max():.1f} "
                f"latency={ctx.kpis['latency_mean_s']:.3f} s loss={ctx.kpis['packet_loss']:.4f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
