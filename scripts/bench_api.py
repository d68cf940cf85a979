#!/usr/bin/env python
"""Decision API throughput and batch latency, against a bare FastAPI endpoint on the same stack, in one run.

Everything runs for real: an embedded Redis filled through ``TwinStore`` with a city-sized layout (81 RSUs,
10 UAVs, the satellite) and 1,000 vehicles carrying the bridge's columns; the API in its own ``uvicorn``
process (one worker, as ``twin-service api`` runs it); an ``httpx`` client over TCP with keep-alive.

* baseline: requests/s of a bare FastAPI ``POST`` endpoint returning a constant (same uvicorn, same client);
* single:   requests/s of ``POST /v1/decisions/migration`` for one vehicle of the latest tick (the tick's
            decisions are computed on the first request and cached), and of a stateless single-vehicle
            migration request (3 servers in the body, no Redis);
* batch:    p50 / p99 latency of ``POST /v1/decisions/batch`` for a fresh 1,000-vehicle tick: before every
            timed request the bench writes a new tick (untimed), as the bridge does, so every batch reads
            Redis and decides from scratch.

* floor:    the same batch with the cheapest policies (``sticky-nearest`` and ``local-only``), on fresh ticks
            interleaved with the timed ones: what the stack itself costs (HTTP, the Redis read, the observation,
            JSON) under the same machine load, so a slow run of a noisy machine shows as a slow floor too
            (``--no-floor`` leaves it out; not measured with ``--recording``, whose replay applies each decision).

The last line is ``batch1000_p99_ms=<x>`` (targets, issue 20: <= 5 ms with the default heuristics, <= 10 ms with
the served models and the predictor). ``--offload-policy NAME`` and ``--migration-policy NAME`` time the batch with
those policies, e.g. the trained ``af-marl-city`` and ``dm-mappo-city``; ``--predictor NAME`` has the API forecast
every server's load with that workload predictor (``city-predictor``), as ``./scripts/demo`` serves it (the run is
then labelled with the city's scenario parameters, which a stored model or predictor must match).

``--recording data/recordings/city-s8.npz --at 1100`` batches on the ticks of a recorded city day instead (the
engine replays it and writes each tick to Redis as the bridge does, and applies the API's decisions): twins that
mostly stay where they are, as in a run, where a synthetic tick moves every vehicle anywhere at random.

    .venv/bin/python scripts/bench_api.py [--vehicles 1000] [--batches 300] [--seconds 3] [--offload-policy NAME]
        [--migration-policy NAME] [--predictor NAME] [--recording FILE [--at S]] [--no-floor]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from twin_service.api.worker import FACTORY, PREDICTOR_VAR
from twin_service.config import BITS_PER_MB
from twin_service.twins import TickFrame, TwinStore, open_redis

ROOT = Path(__file__).resolve().parent.parent
LON0, LAT0 = 9.99, 53.55
M_PER_DEG_LAT = 111_195.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
AREA_M = 5000.0
PREFIX = "bench"
FLOOR_POLICIES = ("sticky-nearest", "local-only")
"""The cheapest migration and offloading policies: a batch with them costs what the stack itself costs."""


def bare_app():  # noqa: ANN201 - uvicorn factory for the baseline
    """The baseline: the same framework and server with nothing behind the endpoint."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/bare")
    def bare(body: dict) -> dict:
        return {"target_index": 3, "rho": 0.0}

    return app


# --------------------------------------------------------------------------------------------
# A city-sized run in Redis
# --------------------------------------------------------------------------------------------


def _lonlat(x, y):  # noqa: ANN001, ANN202
    return LON0 + np.asarray(x) / M_PER_DEG_LON, LAT0 + np.asarray(y) / M_PER_DEG_LAT


def city_layout() -> list[dict]:
    """81 RSUs on a 600 m grid (1,200 m range), 10 UAVs (1,500 m), the satellite: ``layout_records()`` shape."""
    servers = []
    for i, x in enumerate(np.linspace(100, AREA_M - 100, 9)):
        for j, y in enumerate(np.linspace(100, AREA_M - 100, 9)):
            servers.append(("rsu", f"rsu_{i}{j}", x, y, 0.0, 1200.0, 300.0, 32e9))
    rng = np.random.default_rng(2)
    for k in range(10):
        x, y = rng.uniform(0, AREA_M, 2)
        servers.append(("uav", f"uav_{k}", x, y, 50.0, 1500.0, 300.0, 32e9))
    servers.append(("satellite", "sat", AREA_M / 2, AREA_M / 2, 550e3, 1e12, 1e9, 80e9))
    records = []
    for tier, sid, x, y, alt, rng_m, cache, cpu in servers:
        lon, lat = _lonlat(x, y)
        records.append(
            {"id": sid, "tier": tier, "x_m": float(x), "y_m": float(y), "lon": float(lon), "lat": float(lat),
             "altitude_m": alt, "range_m": rng_m, "cache_mb": cache, "cpu_hz": cpu, "patrol_xy": []}
        )  # fmt: skip
    return records


def city_tick(tick: int, n: int, layout: list[dict], rng: np.random.Generator) -> TickFrame:
    """A tick with the bridge's columns: vehicles on their nearest server, 10-30 % of RSUs near overload."""
    m = len(layout)
    x, y = rng.uniform(0, AREA_M, n), rng.uniform(0, AREA_M, n)
    lon, lat = _lonlat(x, y)
    sx = np.array([s["x_m"] for s in layout])
    sy = np.array([s["y_m"] for s in layout])
    alt = np.array([s["altitude_m"] for s in layout])
    dist = np.hypot(np.hypot(x[:, None] - sx, y[:, None] - sy), alt)
    ground = np.where(dist <= np.array([s["range_m"] for s in layout]), dist, np.inf)
    ground[:, -1] = np.inf
    host = np.where(np.isfinite(ground).any(axis=1), np.argmin(ground, axis=1), m - 1)
    backlog = np.where(rng.random(m) < 0.2, rng.uniform(250, 300, m), rng.uniform(0, 100, m)) * BITS_PER_MB
    backlog[-1] = 0.0
    load = backlog + np.bincount(host, minlength=m) * 2 * BITS_PER_MB
    ones = np.ones(n)
    return TickFrame(
        tick=tick,
        sim_time_s=float(tick),
        vehicle_ids=[f"veh{k}" for k in range(n)],
        vehicle_columns={
            "x_m": x,
            "y_m": y,
            "lon": lon,
            "lat": lat,
            "speed_mps": rng.uniform(0, 14, n),
            "heading_deg": rng.uniform(0, 360, n),
            "host_index": host.astype(np.float64),
            "host_distance_m": dist[np.arange(n), host],
            "uplink_s": 0.004 * ones,
            "downlink_s": 0.004 * ones,
            "compute_s": 0.3 * ones,
            "migration_s": 0 * ones,
            "latency_s": 0.31 * ones,
            "failed": 0 * ones,
            "migrated": 0 * ones,
            "f_hz": rng.uniform(1.5e9, 2.5e9, n),
            "r_bps": rng.uniform(20e6, 50e6, n),
            "energy_j": rng.uniform(7e5, 1e6, n),
            "data_bits": rng.uniform(4e6, 16e6, n),
            "cycles": rng.uniform(0.5e9, 1.5e9, n),
            "deadline_s": rng.uniform(0.1, 1.0, n),
            "rho": 0 * ones,
            "offload_delay_s": 0.5 * ones,
            "offload_energy_j": 1e3 * ones,
            "offload_cost": 1.5 * ones,
            "task_success": ones,
        },
        vehicle_text={"road_id": [f"E{k % 500}" for k in range(n)]},
        server_ids=[s["id"] for s in layout],
        server_columns={
            "x_m": sx,
            "y_m": sy,
            "lon": np.array([s["lon"] for s in layout]),
            "lat": np.array([s["lat"] for s in layout]),
            "altitude_m": alt,
            "heading_deg": np.zeros(m),
            "load_bits": load,
            "backlog_bits": backlog,
            "hosted": np.bincount(host, minlength=m) * 1.0,
            "overloaded": (load > 300 * BITS_PER_MB) * 1.0,
            "f_hz": rng.uniform(2.5e9, 3.5e9, m),
            "r_bps": rng.uniform(100e6, 150e6, m),
            "energy_j": rng.uniform(3.6e6, 5.4e6, m),
            "offloaders": np.zeros(m),
        },  # fmt: skip
        server_text={"tier": [s["tier"] for s in layout]},
        kpis={"vehicles": float(n)},
    )


# --------------------------------------------------------------------------------------------
# Servers and measurements
# --------------------------------------------------------------------------------------------


class RecordedTicks:
    """Ticks of a recorded day, replayed through the engine as ``twin-service run --replay --decisions URL`` does:
    each frame is written to the store, and the decisions the API returns are what the next tick applies."""

    WARMUP_S = 60.0

    def __init__(self, recording: str, at_s: float, store: TwinStore) -> None:
        from twin_service.engine import Decisions, Engine, PolicyDecisions
        from twin_service.engine.recording import Recording
        from twin_service.engine.replay import ReplayBackend
        from twin_service.scenario.folder import Scenario

        self._decisions = Decisions
        rec = Recording(recording)
        scenario = Scenario.load(rec.meta.scenario)
        params = scenario.params
        backend = ReplayBackend(rec, begin_s=at_s - self.WARMUP_S, roads=True)
        self.engine = Engine(
            params,
            scenario.layout,
            scenario.projection,
            backend,
            PolicyDecisions(params, len(scenario.layout), seed=int(rec.meta.seed)),
            seed=int(rec.meta.seed),
        )
        self.store = store
        store.write_run_meta(
            params.scenario.name, params.param_hash, tick_s=params.simulation.tick_s, seed=rec.meta.seed
        )
        self.layout = self.engine.layout_records()
        self.last_ids: list[str] = []
        for _ in range(int(self.WARMUP_S)):  # twins, backlogs and windows of a running city, default policies
            self.next_tick()
            self.engine.apply(self.engine.decisions.decide(self._ctx))

    def next_tick(self) -> int:
        frame, self._ctx = self.engine.tick()
        self.store.write_tick(frame)
        self.last_ids = list(frame.vehicle_ids)
        return frame.tick

    def apply(self, target: list[int], rho: list[float]) -> None:
        self.engine.apply(self._decisions(np.asarray(target, dtype=np.int64), np.asarray(rho, dtype=np.float64)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn_process(target: str, env: dict[str, str]) -> Iterator[str]:
    """``uvicorn --factory target`` in its own process; yields its base URL once it answers."""
    port = _free_port()
    cmd = [sys.executable, "-m", "uvicorn", target, "--factory", "--port", str(port), "--log-level", "warning",
           "--no-access-log", "--app-dir", str(ROOT / "scripts")]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/openapi.json", timeout=1.0)
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{target} exited with {proc.returncode}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def requests_per_s(client: httpx.Client, path: str, body: dict, seconds: float) -> float:
    for _ in range(50):  # warm-up
        client.post(path, json=body).raise_for_status()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        client.post(path, json=body).raise_for_status()
        n += 1
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=3.0, help="Duration of each requests/s measurement.")
    ap.add_argument("--offload-policy", default=None, help="Offloading policy of the batch (default: the API's).")
    ap.add_argument("--migration-policy", default=None, help="Migration policy of the batch (default: the API's).")
    ap.add_argument("--predictor", default="persistence", help="The API's workload predictor (e.g. city-predictor).")
    ap.add_argument(
        "--recording",
        help="Batch on the ticks of a recorded city day (replayed through the engine, the API's decisions applied "
        "as the bridge applies them) instead of synthetic ticks; --vehicles is then what the day has at --at.",
    )
    ap.add_argument("--at", type=float, default=1100.0, help="With --recording: sim time of the first timed tick.")
    ap.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also time the batch with sticky-nearest and local-only on interleaved fresh ticks (the stack's floor "
        "in the same run; synthetic ticks only).",
    )
    args = ap.parse_args()
    floor = args.floor and args.recording is None and (args.migration_policy, args.offload_policy) != FLOOR_POLICIES

    rng = np.random.default_rng(1)
    with open_redis(None) as redis_handle:
        store = TwinStore(redis_handle.client, PREFIX, window=10)
        replay = RecordedTicks(args.recording, args.at, store) if args.recording else None
        layout = replay.layout if replay is not None else city_layout()
        # A stored model or predictor only serves the scenario it was trained on.
        if replay is None and (args.offload_policy or args.migration_policy or args.predictor != "persistence"):
            from twin_service.scenario.folder import Scenario

            store.write_run_meta("city", Scenario.load("city").params.param_hash)
        elif replay is None:
            store.write_run_meta("bench-city", "0" * 16)
        store.write_layout(layout)
        if replay is None:
            for frame in [city_tick(t, args.vehicles, layout, rng) for t in range(1, 11)]:
                store.write_tick(frame)
        env = {"TWIN_REDIS_URL": redis_handle.url, "TWIN_KEY_PREFIX": PREFIX, "TWIN_API_KEY": ""}
        env[PREDICTOR_VAR] = args.predictor
        with (
            uvicorn_process("bench_api:bare_app", {}) as bare_url,
            uvicorn_process(FACTORY, env) as api_url,
            httpx.Client(base_url=bare_url, timeout=10) as bare,
            httpx.Client(base_url=api_url, timeout=10) as api,
        ):
            one = {"vehicle_ids": [replay.last_ids[0] if replay is not None else "veh17"]}
            fields = ("id", "tier", "lon", "lat", "altitude_m", "range_m", "cache_mb")
            servers = [{k: s[k] for k in fields} for s in (layout[0], layout[1], layout[-1])]
            vehicle = {"id": "v", "lon": layout[0]["lon"], "lat": layout[0]["lat"], "host_index": 0}
            stateless = {"observation": {"servers": servers, "vehicles": [vehicle]}}
            rps_bare = requests_per_s(bare, "/bare", one, args.seconds)
            rps_single = requests_per_s(api, "/v1/decisions/migration", one, args.seconds)
            rps_stateless = requests_per_s(api, "/v1/decisions/migration", stateless, args.seconds)

            latencies_ms, server_ms, sizes, counts, floor_ms = [], [], [], [], []
            chosen = {"offload_policy": args.offload_policy, "migration_policy": args.migration_policy}
            tick = 10
            for k in range(args.batches + 20):
                if floor:  # a fresh tick with the cheapest policies first, then one with the timed ones
                    tick += 1
                    store.write_tick(city_tick(tick, args.vehicles, layout, rng))
                    t0 = time.perf_counter()
                    r = api.post("/v1/decisions/batch", json={"tick": tick, "migration_policy": FLOOR_POLICIES[0],
                                                              "offload_policy": FLOOR_POLICIES[1]})  # fmt: skip
                    elapsed = (time.perf_counter() - t0) * 1e3
                    r.raise_for_status()
                    assert r.json()["tick"] == tick
                    if k >= 20:
                        floor_ms.append(elapsed)
                if replay is not None:
                    tick = replay.next_tick()
                else:
                    tick += 1
                    store.write_tick(city_tick(tick, args.vehicles, layout, rng))
                t0 = time.perf_counter()
                request = {"tick": tick} | {k: v for k, v in chosen.items() if v}
                r = api.post("/v1/decisions/batch", json=request)
                elapsed = (time.perf_counter() - t0) * 1e3
                r.raise_for_status()
                body = r.json()
                n = len(replay.last_ids) if replay is not None else args.vehicles
                assert body["tick"] == tick and len(body["target_index"]) == n
                if replay is not None:
                    replay.apply(body["target_index"], body["rho"])
                if k >= 20:  # the first requests warm the server up (imports, caches)
                    counts.append(n)
                    latencies_ms.append(elapsed)
                    server_ms.append(float(r.headers["server-timing"].split("dur=")[1]))
                    sizes.append(len(r.content))

    q = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    p50, p99 = statistics.median(latencies_ms), q[98]
    source = f"recorded ticks of {Path(args.recording).name}" if args.recording else "synthetic ticks"
    print(
        f"layout: {len(layout)} servers; {source}, {min(counts)}-{max(counts)} vehicles per tick; uvicorn, 1 worker, "
        f"{'httptools' if importlib.util.find_spec('httptools') else 'h11'}; httpx keep-alive"
    )
    print(f"offloading policy of the batch: {args.offload_policy or 'the API default'}")
    print(f"migration policy of the batch: {args.migration_policy or 'the API default'}")
    print(f"workload predictor: {args.predictor}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"single-vehicle requests/s: bare endpoint {rps_bare:8.0f}")
    print(f"                           migration     {rps_single:8.0f}  ({rps_single / rps_bare:.2f} x bare)")
    print(f"                           stateless     {rps_stateless:8.0f}  ({rps_stateless / rps_bare:.2f} x bare)")
    print(
        f"batch of {statistics.mean(counts):.0f} (fresh tick each, {len(latencies_ms)} requests, "
        f"{statistics.mean(sizes) / 1e3:.0f} kB): p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies_ms):.2f} ms"
    )
    sq = statistics.quantiles(server_ms, n=100, method="inclusive")
    print(f"  of which in the app (Server-Timing): p50 {statistics.median(server_ms):.2f} ms, p99 {sq[98]:.2f} ms")
    if floor_ms:
        fq = statistics.quantiles(floor_ms, n=100, method="inclusive")
        f50, f99 = statistics.median(floor_ms), fq[98]
        print(
            f"floor ({' and '.join(FLOOR_POLICIES)}, interleaved fresh ticks): p50 {f50:.2f} ms, p99 {f99:.2f} ms; "
            f"the batch above it: p50 +{p50 - f50:.2f} ms, p99 +{p99 - f99:.2f} ms"
        )
    print(f"batch1000_p99_ms={p99:.2f}")


if __name__ == "__main__":
    main()
