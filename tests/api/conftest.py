"""A small realistic run in a real Redis: three RSUs, a UAV and the satellite near Hamburg, and vehicles
with the columns the bridge writes (``twin_service.engine.core``), written through ``TwinStore``.

The app under test reads that Redis through its default store factory (``Settings.redis_url``), exactly
as the service does beside a running bridge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from twin_service.api import create_app
from twin_service.config import BITS_PER_MB, Settings
from twin_service.twins import RedisHandle, TickFrame, TwinStore

LON0, LAT0 = 9.99, 53.55
M_PER_DEG_LAT = 111_195.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
DATA_BITS = 2.0 * BITS_PER_MB  # S_v of the default TaskParams
CACHE_MB = 300.0


def lonlat(x_m: float | np.ndarray, y_m: float | np.ndarray) -> tuple:
    return LON0 + np.asarray(x_m) / M_PER_DEG_LON, LAT0 + np.asarray(y_m) / M_PER_DEG_LAT


def _server(sid: str, tier: str, x: float, y: float, alt: float, range_m: float, cache_mb: float, cpu: float):
    lon, lat = lonlat(x, y)
    return {
        "id": sid,
        "tier": tier,
        "x_m": x,
        "y_m": y,
        "lon": float(lon),
        "lat": float(lat),
        "altitude_m": alt,
        "range_m": range_m,
        "cache_mb": cache_mb,
        "cpu_hz": cpu,
        "patrol_xy": [[x, y], [x + 400.0, y]] if tier == "uav" else [],
    }


LAYOUT = [
    _server("rsu_0", "rsu", 0.0, 0.0, 0.0, 600.0, CACHE_MB, 32e9),
    _server("rsu_1", "rsu", 1000.0, 0.0, 0.0, 600.0, CACHE_MB, 32e9),
    _server("rsu_2", "rsu", 0.0, 1000.0, 0.0, 600.0, CACHE_MB, 32e9),
    _server("uav_0", "uav", 500.0, 500.0, 50.0, 700.0, CACHE_MB, 32e9),
    _server("sat", "satellite", 500.0, 500.0, 550e3, 1e12, 1e9, 80e9),
]
SERVER_IDS = [s["id"] for s in LAYOUT]
SAT = 4


def fleet_frame(
    tick: int,
    n_vehicles: int,
    rng: np.random.Generator,
    backlog_mb: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0),
    vehicle_ids: list[str] | None = None,
) -> TickFrame:
    """A tick as the bridge would write it: vehicles in a 1.6 km square hosted on their nearest server."""
    ids = vehicle_ids or [f"veh{k}" for k in range(n_vehicles)]
    n = len(ids)
    x = rng.uniform(-300, 1300, n)
    y = rng.uniform(-300, 1300, n)
    lon, lat = lonlat(x, y)
    sx = np.array([s["x_m"] for s in LAYOUT])
    sy = np.array([s["y_m"] for s in LAYOUT])
    alt = np.array([s["altitude_m"] for s in LAYOUT])
    rng_m = np.array([s["range_m"] for s in LAYOUT])
    dist = np.hypot(np.hypot(x[:, None] - sx, y[:, None] - sy), alt)
    ground = np.where(dist <= rng_m, dist, np.inf)
    ground[:, SAT] = np.inf
    host = np.where(np.isfinite(ground).any(axis=1), np.argmin(ground, axis=1), SAT)
    backlog = np.array(backlog_mb) * BITS_PER_MB
    load = backlog + np.bincount(host, minlength=len(LAYOUT)) * DATA_BITS
    f_m = np.array([3.0e9, 2.8e9, 3.2e9, 2.6e9, 3.4e9])
    rho = rng.choice([0.0, 1.0], n)
    offloaders = np.bincount(host, weights=rho, minlength=len(LAYOUT))
    return TickFrame(
        tick=tick,
        sim_time_s=float(tick),
        wall_time=1.7e9 + tick,
        vehicle_ids=ids,
        vehicle_columns={
            "x_m": x,
            "y_m": y,
            "lon": lon,
            "lat": lat,
            "speed_mps": rng.uniform(0, 14, n),
            "heading_deg": rng.uniform(0, 360, n),
            "host_index": host.astype(np.float64),
            "host_distance_m": dist[np.arange(n), host],
            "latency_s": rng.uniform(0.01, 0.6, n),
            "failed": np.zeros(n),
            "migrated": np.zeros(n),
            "f_hz": rng.uniform(1.5e9, 2.5e9, n),
            "r_bps": np.where(host == SAT, 150e6, rng.uniform(20e6, 50e6, n)),
            "energy_j": rng.uniform(200, 300, n) * 3600.0,
            "data_bits": rng.uniform(0.5, 2.0, n) * BITS_PER_MB,
            "cycles": rng.uniform(0.5e9, 1.5e9, n),
            "deadline_s": rng.uniform(0.1, 1.0, n),
            "rho": rho,
            "offload_cost": rng.uniform(1, 3, n),
            "task_success": rng.choice([0.0, 1.0], n),
        },
        vehicle_text={"road_id": [f"E{k % 17}" for k in range(n)]},
        server_ids=list(SERVER_IDS),
        server_columns={
            "x_m": sx,
            "y_m": sy,
            "lon": np.array([s["lon"] for s in LAYOUT]),
            "lat": np.array([s["lat"] for s in LAYOUT]),
            "altitude_m": alt,
            "load_bits": load,
            "backlog_bits": backlog,
            "hosted": np.bincount(host, minlength=len(LAYOUT)).astype(np.float64),
            "overloaded": (load > CACHE_MB * BITS_PER_MB).astype(np.float64),
            "f_hz": f_m,
            "offloaders": offloaders,
        },
        server_text={"tier": [s["tier"] for s in LAYOUT]},
        kpis={"vehicles": float(n), "latency_mean_s": 0.25 + tick / 100, "packet_loss": 0.0},
    )


@pytest.fixture
def layout() -> list[dict]:
    """The edge servers, as ``Engine.layout_records()`` gives them: rsu_0..2, uav_0, sat (index 4)."""
    return [dict(s) for s in LAYOUT]


@pytest.fixture
def make_fleet() -> Callable[..., TickFrame]:
    return fleet_frame


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> TwinStore:
    return TwinStore(redis_client, key_prefix, window=10)


@pytest.fixture
def filled(store: TwinStore) -> list[TickFrame]:
    """Twelve ticks of 40 vehicles (some leave, some arrive) written as a run; returns the frames."""
    rng = np.random.default_rng(5)
    store.write_run_meta("test-fleet", "0123456789abcdef")
    store.write_layout(LAYOUT)
    frames = []
    for tick in range(1, 13):
        ids = [f"veh{k}" for k in range(tick, tick + 40)]
        frame = fleet_frame(tick, 40, rng, vehicle_ids=ids)
        store.write_tick(frame)
        frames.append(frame)
    return frames


@pytest.fixture
def settings(redis_server: RedisHandle, key_prefix: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_server.url, key_prefix=key_prefix, models_dir=tmp_path / "models")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
