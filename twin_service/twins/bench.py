"""Micro-benchmark of the twin store: ``python -m twin_service.twins.bench [--vehicles N] [--url URL]``.

Times, on an embedded server over its unix socket unless ``--url`` is given: writing one tick
(vehicles x columns, plus 90 servers by default), the packing of the vehicle block alone (the
Python-side baseline, no I/O), and the main reads. Prints median and 95th percentile per operation in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from twin_service.twins.codec import encode_block
from twin_service.twins.frames import TickFrame
from twin_service.twins.server import open_redis
from twin_service.twins.store import TwinStore


def synthetic_tick(tick: int, n_vehicles: int, n_columns: int, n_servers: int = 90) -> TickFrame:
    rng = np.random.default_rng(tick)
    ids = [f"veh{i}" for i in range(n_vehicles)]
    sids = [f"rsu_{i}" for i in range(n_servers)]
    return TickFrame(
        tick=tick,
        sim_time_s=float(tick),
        vehicle_ids=ids,
        vehicle_columns={f"col{j}": rng.normal(size=n_vehicles) for j in range(n_columns)},
        vehicle_text={
            "road_id": [f"edge{i % 400}_0" for i in range(n_vehicles)],
            "host_id": [f"rsu_{i % 90}" for i in range(n_vehicles)],
        },
        server_ids=sids,
        server_columns={c: rng.uniform(size=n_servers) for c in ("x", "y", "load_bits", "backlog_bits", "hosted")},
        server_text={"tier": ["rsu"] * n_servers},
        kpis={"mean_latency_s": 0.1, "overloaded_share": 0.2},
    )


def _time_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def run(
    n_vehicles: int = 1000, n_columns: int = 25, repeats: int = 300, url: str | None = None, n_servers: int = 90
) -> dict:
    """Measure; return operation -> (median ms, p95 ms)."""
    frames = [synthetic_tick(t, n_vehicles, n_columns, n_servers) for t in range(8)]
    results: dict[str, tuple[float, float]] = {}
    with open_redis(url) as handle:
        store = TwinStore(handle.client, f"bench-{time.time_ns()}", window=10)
        try:
            tick = iter(range(10**9))

            def write() -> None:
                frame = frames[next(tick) % len(frames)]
                frame.tick = next(tick)
                store.write_tick(frame)

            for _ in range(20):
                write()
            results["encode vehicles (no I/O)"] = _time_ms(
                lambda: encode_block(frames[0].vehicle_ids, frames[0].vehicle_columns, frames[0].vehicle_text),
                repeats,
            )
            results["write_tick"] = _time_ms(write, repeats)
            vid = frames[0].vehicle_ids[n_vehicles // 2]
            results["vehicle (with history)"] = _time_ms(lambda: store.vehicle(vid), repeats)
            results["vehicles_frame"] = _time_ms(store.vehicles_frame, repeats)
            results["vehicles_window_mean"] = _time_ms(store.vehicles_window_mean, max(repeats // 5, 10))
            results["latest_tick"] = _time_ms(store.latest_tick, repeats)
        finally:
            store.clear()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--columns", type=int, default=25)
    parser.add_argument("--servers", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--url", default=None, help="Redis URL; default: embedded server on a unix socket")
    args = parser.parse_args()
    results = run(args.vehicles, args.columns, args.repeats, args.url, args.servers)
    print(f"{args.vehicles} vehicles x {args.columns} columns, {args.servers} servers, window 10")
    for name, (median, p95) in results.items():
        print(f"  {name:<24} median {median:7.3f} ms   p95 {p95:7.3f} ms")


if __name__ == "__main__":
    main()
