#!/usr/bin/env python
"""Capacity of the twin store on a Redis Cluster: what one bridge, one node and one API worker carry.

For each vehicle count (the city at its peak, demand scaled as in ``bench_bridge.py``), two copies of the
scenario are warmed up to the same state and run the full bridge tick as ``twin-service run`` does it (libsumo
in a worker process, physics, default decisions, the twin write): one writing a real local Redis Cluster (3
masters with a replica each, ``twins/local_cluster.py``), one writing a single embedded Redis (the baseline). They
run the same ticks in turn, in blocks, so that the machine's slow spells fall on both alike. Measured:

* **bridge tick** (ms) on the cluster and on one Redis, median over blocks, and their ratio (what the cluster
  costs the bridge); the vehicles one bridge carries in real time (a tick within 1 s) follow from a straight
  line through the counts measured (``vehicles_per_bridge_realtime``, default decisions) and, with the trained
  models' batch decision added to each tick, from the measured points (``..._with_models``);
* **Redis operations per tick** on the master holding the run (``INFO commandstats``: every command, MULTI and
  EXEC included), and per second at the measured pace and in real time (one tick a second); the master's CPU
  per tick (``used_cpu_user + used_cpu_sys``, its replication to the replica included) and bytes in per tick;
* **memory per thousand twins**: ``MEMORY USAGE`` of every key of the run (the window of ticks the store
  keeps, the tick log, the run's records) on its master, per 1,000 vehicles of the latest tick;
* **decisions per API worker**: ``POST /v1/decisions/batch`` for the latest tick, read from the cluster, with the
  policies the compose stack serves (median of ``--decisions`` calls, in-process: a worker's compute time).

Results go to ``results/cluster/bench.json`` and ``bench.png``; the last lines are the figures
(``vehicles_per_bridge_realtime=``, ``ops_per_tick_1000=``, ``kb_per_1000_twins=`` ...).

    flock /tmp/twin-bench.lock .venv/bin/python scripts/bench_cluster.py [--counts 1000,5000] [--ticks 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bridge import ADMIT_TICKS, PEAK_BEGIN_S, BridgeTicks, sumo_args  # noqa: E402

from twin_service.api import create_app  # noqa: E402
from twin_service.bridge.runner import Scenario  # noqa: E402
from twin_service.bridge.worker import ProcessBackend  # noqa: E402
from twin_service.config import Settings  # noqa: E402
from twin_service.twins import TwinKeys, TwinStore, connect, open_redis  # noqa: E402
from twin_service.twins.local_cluster import local_cluster  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "bench-city"
REAL_TIME_MS = 1000.0
NOT_THE_RUNS = {"cmdstat_info", "cmdstat_config", "cmdstat_memory", "cmdstat_scan", "cmdstat_cluster"}
"""Commands this benchmark (or the client learning the cluster's shape) sends: not the run's."""


def warm_up(cfg: Path, count: int) -> tuple[ProcessBackend, ProcessBackend]:
    """Two copies of the scenario at the same step, about ``count`` vehicles running."""
    options = {"seed": 1, "begin_s": PEAK_BEGIN_S, "extra_args": sumo_args(count)}
    first = ProcessBackend(cfg, **options)
    steps = 0
    with tqdm(total=count, desc=f"warm-up to ~{count} vehicles", leave=False) as bar:
        while steps < 2400:
            first.advance()
            steps += 1
            seen = min(first.vehicle_count(), count)
            if seen > bar.n:
                bar.update(seen - bar.n)
            if first.vehicle_count() >= 0.97 * count and first.time_s >= PEAK_BEGIN_S + 120:
                break
    second = ProcessBackend(cfg, **options)
    for _ in range(steps):
        second.advance()
    return first, second


def server_stats(client) -> dict[str, float]:  # noqa: ANN001 - a plain redis.Redis of one node
    """The run's commands so far, the server's CPU seconds and bytes in."""
    stats = client.info("commandstats")
    cpu = client.info("cpu")
    net = client.info("stats")
    return {
        "commands": sum(v["calls"] for k, v in stats.items() if k not in NOT_THE_RUNS),
        "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "bytes_in": float(net["total_net_input_bytes"]),
    }


def run_memory_bytes(client, prefix: str) -> int:  # noqa: ANN001
    """``MEMORY USAGE`` (every element counted) of every key of the run, on the node that holds them."""
    keys = list(client.scan_iter(match=TwinKeys(prefix).pattern(), count=1000))
    return sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)


def measure(scenario: Scenario, cluster, single_client, count: int, ticks: int, block: int, args) -> dict:  # noqa: ANN001
    window = scenario.params.simulation.history_window
    cluster_store = TwinStore(connect(cluster.url, cluster=True), PREFIX, window=window)
    single_store = TwinStore(single_client, PREFIX, window=window)
    cluster_store.clear()
    single_store.clear()
    first, second = warm_up(scenario.sumocfg, count)
    on_cluster = BridgeTicks(scenario, first, cluster_store, pipelined=True)
    on_single = BridgeTicks(scenario, second, single_store, pipelined=True)
    layout = on_cluster.engine.layout_records()
    params = scenario.params
    for store in (cluster_store, single_store):
        store.begin_run(params.scenario.name, params.param_hash, layout)
    master = cluster.master_of(cluster_store.keys.run)
    try:
        on_cluster.block(ADMIT_TICKS)
        on_single.block(ADMIT_TICKS)
        with master.client() as node:
            before = server_stats(node)
        single_before = server_stats(single_client)
        cluster_s: list[float] = []
        single_s: list[float] = []
        written = 0
        for _ in tqdm(range(max(ticks // block, 1)), desc=f"~{count} vehicles: blocks", leave=False):
            cluster_s.append(on_cluster.block(block))
            single_s.append(on_single.block(block))
            written += block + 1  # a block writes one untimed tick first
        with master.client() as node:
            after = server_stats(node)
            memory = run_memory_bytes(node, PREFIX)
        single_after = server_stats(single_client)
        latest = cluster_store.latest_tick()
    finally:
        on_cluster.close()
        on_single.close()
    decide_ms, decided_by = time_decisions(cluster, latest.tick, window, args)
    per_tick = lambda blocks: 1e3 * statistics.median(blocks) / block  # noqa: E731
    ratios = [c / s for c, s in zip(cluster_s, single_s, strict=True)]
    cluster_ms = per_tick(cluster_s)
    ops = (after["commands"] - before["commands"]) / written
    result = {
        "vehicles": latest.n_vehicles,
        "cluster_tick_ms": cluster_ms,
        "single_tick_ms": per_tick(single_s),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "blocks": len(ratios),
        "ops_per_tick": ops,
        "ops_per_tick_single": (single_after["commands"] - single_before["commands"]) / written,
        "ops_per_s_measured": ops * 1e3 / cluster_ms,
        "redis_cpu_ms_per_tick": 1e3 * (after["cpu_s"] - before["cpu_s"]) / written,
        "bytes_in_per_tick": (after["bytes_in"] - before["bytes_in"]) / written,
        "run_memory_bytes": memory,
        "window_ticks": window,
        "kb_per_1000_twins": memory / 1024 / (latest.n_vehicles / 1000),
        "decide_batch_ms": decide_ms,
        "decided_by": decided_by,
    }
    cluster_store.clear()
    single_store.clear()
    return result


def time_decisions(cluster, latest: int, window: int, args) -> tuple[float, str]:  # noqa: ANN001
    """Median ms of ``POST /v1/decisions/batch`` on the cluster, in-process (a worker's compute time), and what
    decided (the response's ``source``).

    The service computes a tick's decisions once and keeps them, so each call asks for another tick of the window
    (oldest first; the first call, which also warms the models, is not timed).
    """
    if args.decisions <= 0:
        return float("nan"), ""
    settings = Settings(redis_url=cluster.url, redis_cluster=True, key_prefix=PREFIX, models_dir=ROOT / "models")
    app = create_app(
        settings,
        migration_policy=args.migration_policy,
        offload_policy=args.offload_policy,
        predictor=args.predictor,
    )
    ticks = list(range(latest - min(args.decisions, window - 1), latest + 1))
    times = []
    source = ""
    with TestClient(app) as client:
        for i, tick in enumerate(ticks):
            started = time.perf_counter()
            response = client.post("/v1/decisions/batch", json={"tick": tick})
            took = time.perf_counter() - started
            if response.status_code != 200:
                raise SystemExit(f"decisions failed: {response.status_code} {response.text[:300]}")
            if i:
                times.append(1e3 * took)
            source = response.json()["source"]
    return statistics.median(times), source


def crossing(xs: list[float], ys: list[float], level: float) -> float:
    """Where the piecewise-linear curve through (xs, ys) reaches ``level``; past the last point, its last segment
    goes on (NaN with fewer than two points)."""
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if y0 <= level <= y1 and y1 > y0:
            return x0 + (level - y0) * (x1 - x0) / (y1 - y0)
    if len(xs) < 2 or ys[-1] <= ys[-2]:
        return float("nan")
    return xs[-1] + (level - ys[-1]) * (xs[-1] - xs[-2]) / (ys[-1] - ys[-2])


def plot(results: dict[int, dict], fit: tuple[float, float], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    vehicles = [r["vehicles"] for r in results.values()]
    ax.plot(vehicles, [r["cluster_tick_ms"] for r in results.values()], "o-", label="bridge tick, Redis Cluster")
    ax.plot(vehicles, [r["single_tick_ms"] for r in results.values()], "s--", label="bridge tick, one Redis")
    if all(np.isfinite(r["decide_batch_ms"]) for r in results.values()):
        total = [r["cluster_tick_ms"] + r["decide_batch_ms"] for r in results.values()]
        ax.plot(vehicles, total, "^-", label="tick + batch decision (trained models)")
        ax.axhline(REAL_TIME_MS, color="red", lw=0.8, label="real time (1 tick/s)")
    xs = np.linspace(0, max(vehicles) * 1.2, 50)
    ax.plot(xs, fit[0] + fit[1] * xs, ":", color="grey", label=f"fit: {fit[0]:.1f} ms + {fit[1] * 1e3:.1f} µs/vehicle")
    ax.set_xlabel("running vehicles")
    ax.set_ylabel("ms per tick (median)")
    ax.set_title("One bridge on a 3+3 Redis Cluster (2 vCPUs)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,5000", help="running-vehicle targets")
    parser.add_argument("--ticks", type=int, default=60, help="timed ticks per copy and vehicle count")
    parser.add_argument("--block", type=int, default=10, help="ticks per block (each block gives one ratio)")
    parser.add_argument("--scenario", default="city", help="scenario to measure on")
    parser.add_argument(
        "--decisions", type=int, default=8, help="timed batch decisions per count, one per tick of the window (0: none)"
    )
    parser.add_argument("--migration-policy", default="dm-mappo-city", help="as the compose stack serves it")
    parser.add_argument(
        "--offload-policy", default="af-marl-city", help="the offloading model timed (the heaviest trained one)"
    )
    parser.add_argument("--predictor", default="city-predictor", help="as the compose stack serves it")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "cluster", help="folder for json and png")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    scenario = Scenario.load(args.scenario)
    results: dict[int, dict] = {}
    with local_cluster(masters=3, replicas=1, node_timeout_ms=5000) as cluster, open_redis(None) as single:
        for count in counts:
            r = measure(scenario, cluster, single.client, count, args.ticks, args.block, args)
            results[count] = r
            print(
                f"~{count:>5} ({r['vehicles']} running): tick {r['cluster_tick_ms']:.2f} ms on the cluster, "
                f"{r['single_tick_ms']:.2f} ms on one Redis (ratio {r['ratio']:.2f}, blocks {r['ratio_min']:.2f}-"
                f"{r['ratio_max']:.2f}); {r['ops_per_tick']:.1f} Redis commands/tick (one Redis: "
                f"{r['ops_per_tick_single']:.1f}), master CPU {r['redis_cpu_ms_per_tick']:.2f} ms/tick, "
                f"{r['bytes_in_per_tick'] / 1024:.0f} KiB in/tick; run's keys {r['run_memory_bytes'] / 2**20:.2f} MiB "
                f"({r['kb_per_1000_twins']:.0f} KiB per 1,000 twins, window {r['window_ticks']}); "
                f"batch decision {r['decide_batch_ms']:.1f} ms ({r['decided_by']})",
                flush=True,
            )
    vehicles = np.array([r["vehicles"] for r in results.values()], dtype=float)
    tick_ms = np.array([r["cluster_tick_ms"] for r in results.values()])
    slope, intercept = np.polyfit(vehicles, tick_ms, 1) if len(vehicles) > 1 else (tick_ms[0] / vehicles[0], 0.0)
    realtime = (REAL_TIME_MS - intercept) / slope
    decide = np.array([r["decide_batch_ms"] for r in results.values()])
    d_slope, d_intercept = np.polyfit(vehicles, decide, 1) if len(vehicles) > 1 else (decide[0] / vehicles[0], 0.0)
    with_models = [r["cluster_tick_ms"] + r["decide_batch_ms"] for r in results.values()]
    realtime_models = crossing(list(vehicles), with_models, REAL_TIME_MS)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "command": " ".join(sys.argv),
        "counts": {str(k): v for k, v in results.items()},
        "tick_ms_fit": {"intercept_ms": intercept, "ms_per_vehicle": slope},
        "decide_ms_fit": {"intercept_ms": d_intercept, "ms_per_vehicle": d_slope},
        "vehicles_per_bridge_realtime": realtime,
        "vehicles_per_bridge_realtime_with_models": realtime_models,
        "policies": [args.migration_policy, args.offload_policy, args.predictor],
    }
    (args.out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(results, (intercept, slope), args.out / "bench.png")
    print(f"wrote {args.out / 'bench.json'} and bench.png")
    for count, r in results.items():
        print(f"tick_ms_{count}={r['cluster_tick_ms']:.2f} ratio_{count}={r['ratio']:.3f}")
        print(f"ops_per_tick_{count}={r['ops_per_tick']:.1f}")
        print(f"redis_cpu_ms_per_tick_{count}={r['redis_cpu_ms_per_tick']:.2f}")
        print(f"decide_batch_ms_{count}={r['decide_batch_ms']:.1f}")
    kb = statistics.mean(r["kb_per_1000_twins"] for r in results.values())
    print(f"kb_per_1000_twins={kb:.0f}")
    print(f"vehicles_per_bridge_realtime_with_models={realtime_models:.0f}")
    print(f"vehicles_per_bridge_realtime={realtime:.0f}")


if __name__ == "__main__":
    main()
