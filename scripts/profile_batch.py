#!/usr/bin/env python
"""The batch route in one process, on ``scripts/bench_api.py``'s ticks: what the API's flame graphs profile.

Fills an embedded Redis as ``bench_api.py`` does (its synthetic 1,000-vehicle ticks on a 92-server layout, or the
ticks of a recorded day), builds the app as a worker does and calls ``POST /v1/decisions/batch`` for a fresh tick
``--batches`` times through Starlette's in-process client, timing each phase of the route (the tick's read and
inputs, the migration decision, the offloading decision, the response's JSON) in CPU time. Run it under a
profiler to see the whole route:

    py-spy record -r 200 -o results/perf/FILE.svg -- .venv/bin/python scripts/profile_batch.py --batches 200
    .venv/bin/python scripts/profile_batch.py --migration-policy dm-mappo-city --offload-policy af-marl-city \\
        --predictor city-predictor
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_api  # noqa: E402 - the bench's layout and ticks

from twin_service.api.app import create_app  # noqa: E402
from twin_service.config import Settings  # noqa: E402
from twin_service.twins import TwinStore, open_redis  # noqa: E402


class PhaseTimer:
    """Wraps the route's steps (``api.service``) to sum the CPU time of each over the timed requests."""

    def __init__(self) -> None:
        self.cpu_s: dict[str, list[float]] = {}
        self.on = False

    def wrap(self, name: str, fn):  # noqa: ANN001, ANN201
        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            c0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.on:
                    self.cpu_s.setdefault(name, []).append(time.process_time() - c0)

        return timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--offload-policy", default=None)
    ap.add_argument("--migration-policy", default=None)
    ap.add_argument("--predictor", default="persistence")
    ap.add_argument("--recording", help="Batch on the ticks of a recorded day (as bench_api.py --recording).")
    ap.add_argument("--at", type=float, default=1100.0)
    args = ap.parse_args()
    from fastapi.testclient import TestClient

    rng = np.random.default_rng(1)
    timer = PhaseTimer()
    with open_redis(None) as redis_handle:
        store = TwinStore(redis_handle.client, bench_api.PREFIX, window=10)
        replay = bench_api.RecordedTicks(args.recording, args.at, store) if args.recording else None
        layout = replay.layout if replay is not None else bench_api.city_layout()
        if replay is None and (args.offload_policy or args.migration_policy or args.predictor != "persistence"):
            from twin_service.scenario.folder import Scenario

            store.write_run_meta("city", Scenario.load("city").params.param_hash)
        elif replay is None:
            store.write_run_meta("bench-city", "0" * 16)
        store.write_layout(layout)
        if replay is None:
            for frame in [bench_api.city_tick(t, args.vehicles, layout, rng) for t in range(1, 11)]:
                store.write_tick(frame)
        settings = Settings(redis_url=redis_handle.url, key_prefix=bench_api.PREFIX, api_key="")
        app = create_app(settings, predictor=args.predictor)
        from twin_service.api.routes import decisions as routes

        for name in ("snapshot_from_store", "migration_for", "offload_for", "batch_body"):
            setattr(routes, name, timer.wrap(name, getattr(routes, name)))
        request = {
            k: v for k, v in (("offload_policy", args.offload_policy), ("migration_policy", args.migration_policy)) if v
        }
        wall_ms, cpu_ms = [], []
        with TestClient(app) as client:
            for k in range(args.batches + 10):
                if replay is not None:
                    tick = replay.next_tick()
                else:
                    tick = 11 + k
                    store.write_tick(bench_api.city_tick(tick, args.vehicles, layout, rng))
                timer.on = k >= 10
                t0, c0 = time.perf_counter(), time.process_time()
                r = client.post("/v1/decisions/batch", json={"tick": tick} | request)
                r.raise_for_status()
                body = r.json()
                if k >= 10:
                    wall_ms.append(1e3 * (time.perf_counter() - t0))
                    cpu_ms.append(1e3 * (time.process_time() - c0))
                if replay is not None:
                    replay.apply(body["target_index"], body["rho"])
    print(
        f"{args.batches} batches of {len(body['vehicle_ids'])} vehicles; migration {body['migration_policy']['name']}, "
        f"offloading {body['offload_policy']['name']}, predictor {args.predictor}"
    )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, values in timer.cpu_s.items():
        print(f"  {name:22s} {1e3 * statistics.median(values):7.2f} ms CPU (median)")
    cpu, wall = statistics.median(cpu_ms), statistics.median(wall_ms)
    print(f"  whole request (in-process client) {cpu:7.2f} ms CPU, {wall:7.2f} ms wall (medians)")
    q = statistics.quantiles(wall_ms, n=100)
    print(f"  whole request wall: p90 {q[89]:.2f} ms, p99 {q[98]:.2f} ms, max {max(wall_ms):.2f} ms")


if __name__ == "__main__":
    main()
