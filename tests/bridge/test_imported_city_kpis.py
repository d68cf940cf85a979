"""An imported real city, provisioned for its traffic, serves its twins as well as the built city at its peak.

Both run live through the bridge with sticky-nearest hosting (``HOSTING``), from their begin to 5 minutes past their
demand peak; the KPIs are taken over ``peak +- 5 min`` (the city's designed peak at 1800 s; Hamburg's
measured by the import, ``[demand] peak_time_s``). The numbers go to ``kpis.csv`` in the test's tmp
folder and to stdout (``pytest -s`` or ``-rP`` shows them).

The factors allowed come from the spread the city's own calibration rule allows it. The rule asks for
10-30 % of the RSUs overloaded at the peak; the city is calibrated to 20 %. Re-placed with 64 and 96 RSUs
(30.6 % and 11.2 % overloaded) and run the same way, the city gave 1.86 s and 0.80 s mean latency, 3.95 %
and 0.51 % packet loss, against 1.24 s and 1.21 % at 76 RSUs: a factor 1.5 in latency and 3.3 in packet
loss either way of the calibrated point. One seed's run also differs from another's: over seeds 1-3 the
city's packet loss spans 1.12-1.48 % (about 1.2 times from one seed to another), so a single-seed
comparison allows 3.3 x 1.2 = 4 in packet loss. Measured (seeds 1-3, each city imported and run with that
seed): Hamburg 1.26-1.43 s and 3.1-4.4 %, the city 1.24-1.43 s and 1.12-1.48 %. Latency matches; packet
loss is 2.5-3.9 times the city's, because Hamburg's trips are short (190 s against the city's 455 s), so
twice as many new twins arrive per running vehicle, and the default policy fills a server's cache with new
twins and moves them only once it overflows.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from twin_service.bridge.runner import RunOptions, open_bridge, run_loop
from twin_service.config import SCENARIOS_DIR, load_params
from twin_service.twins.server import RedisHandle

HOSTING = "sticky-nearest"
"""The hosting the provisioning rule is calibrated for (nearest server with room); the factors below were
measured with it. (least-loaded, the service's default since, serves both cities better: results/paper_a.)"""
LATENCY_FACTOR = 1.5
LOSS_FACTOR = 4.0
HALF_WINDOW_S = 300.0


def _peak_kpis(folder: Path, name: str, redis: RedisHandle, key_prefix: str, tmp_path: Path) -> dict[str, float]:
    """Run from the scenario's begin to 5 minutes past its peak; KPIs over peak +- 5 minutes."""
    params = load_params(folder)
    meta, peak = params.scenario, params.demand.peak_time_s
    begin, end = max(meta.begin_s, peak - HALF_WINDOW_S), min(meta.end_s, peak + HALF_WINDOW_S)
    ticks = round((end - meta.begin_s) / params.simulation.tick_s)
    kpi_csv = tmp_path / f"{name}-ticks.csv"
    options = RunOptions(
        scenario=folder,
        key_prefix=f"{key_prefix}-{name}",
        ticks=ticks,
        kpi_csv=kpi_csv,
        parallel=True,
        migration_policy=HOSTING,
    )
    with open_bridge(options, redis=redis) as (engine, store, handle):
        summary = run_loop(engine, store, options, url=handle.url)
        servers = len(engine.server_ids)
    assert summary["ticks"] == ticks
    with kpi_csv.open() as fh:
        rows = [r for r in csv.DictReader(fh) if begin < float(r["sim_time_s"]) <= end]
    vehicles = np.array([float(r["vehicles"]) for r in rows])
    latency_total = np.array([float(r["latency_total_s"]) for r in rows])
    failed = np.array([float(r["packet_loss"]) for r in rows]) * vehicles
    return {
        "scenario": name,
        "window_begin_s": begin,
        "window_end_s": end,
        "servers": servers,
        "vehicles_mean": float(vehicles.mean()),
        "latency_mean_s": float(latency_total.sum() / vehicles.sum()),
        "packet_loss": float(failed.sum() / vehicles.sum()),
        "worst_tick_latency_mean_s": float((latency_total / np.maximum(vehicles, 1)).max()),
        "trips_per_vehicle_tick": summary["trips_completed"] / summary["vehicle_ticks"],
    }


@pytest.mark.timeout(600)
def test_imported_hamburg_serves_like_the_city_at_its_peak(hamburg_import, redis_server, key_prefix, tmp_path):
    city = _peak_kpis(SCENARIOS_DIR / "city", "city", redis_server, key_prefix, tmp_path)
    hamburg = _peak_kpis(hamburg_import.out, "hamburg", redis_server, key_prefix, tmp_path)
    table = tmp_path / "kpis.csv"
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(city))
        writer.writeheader()
        writer.writerows([city, hamburg])
    print(f"\n{table} (Hamburg import took {hamburg_import.import_s:.1f} s):\n{table.read_text()}")

    assert city["vehicles_mean"] > 1300 and hamburg["vehicles_mean"] > 1000  # both at their peak
    latency_ratio = hamburg["latency_mean_s"] / city["latency_mean_s"]
    loss_ratio = hamburg["packet_loss"] / city["packet_loss"]
    assert 1 / LATENCY_FACTOR <= latency_ratio <= LATENCY_FACTOR, (city, hamburg)
    assert 1 / LOSS_FACTOR <= loss_ratio <= LOSS_FACTOR, (city, hamburg)
    for kpis in (city, hamburg):  # no tick's mean latency anywhere near the 5.4 s a full queue takes
        assert kpis["worst_tick_latency_mean_s"] < 3.0, kpis
