"""``twin-service run --redis-cluster`` on a real local Redis Cluster (3 masters, 3 replicas).

* The KPIs of a run on the cluster are those of the same run on one Redis, exactly, tick by tick.
* The master holding the run's keys (the busiest: the run is the only writer) is killed mid-run, after its replica
  stopped receiving: the replica takes over, the bridge holds its tick until it has and goes on, the ticks the
  replica lacked are stored again, and the run completes its 200 ticks with exit 0; no tick is lost (the tick log
  holds every one, with the KPIs the run computed) and none torn (each tick of the window reads back whole).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from twin_service.twins import TwinStore, connect

PREFIX = "hamburg"
DETERMINISTIC_SUMMARY = {"wall_time_s", "ticks_per_s", "sumo_ms_per_tick", "redis_retries"}
"""Summary rows that measure the machine, not the run: left out of the comparison."""


def _run(scenario: Path, out: Path, ticks: int, *extra: str) -> subprocess.Popen[str]:
    out.mkdir(parents=True, exist_ok=True)
    args = ["run", "--scenario", str(scenario), "--ticks", str(ticks), "--key-prefix", PREFIX]
    args += ["--kpi-csv", str(out / "kpis.csv"), "--summary-csv", str(out / "summary.csv"), *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "twin_service.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out, err


def _summary(folder: Path) -> dict[str, str]:
    with (folder / "summary.csv").open() as fh:
        return {row["kpi"]: row["value"] for row in csv.DictReader(fh) if row["kpi"] not in DETERMINISTIC_SUMMARY}


def _kpi_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "kpis.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def single_node_200(small_scenario: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: 200 ticks of the small scenario on one (embedded) Redis."""
    out = tmp_path_factory.mktemp("single-200")
    _finish(_run(small_scenario, out, 200))
    return out


def test_a_run_on_the_cluster_gives_the_single_node_kpis_exactly(small_scenario, redis_cluster, tmp_path):
    single, on_cluster = tmp_path / "single", tmp_path / "cluster"
    reference = _run(small_scenario, single, 60)
    out, _ = _finish(_run(small_scenario, on_cluster, 60, "--redis-url", redis_cluster.url, "--redis-cluster"))
    _finish(reference)
    assert "(Redis Cluster, prefix 'hamburg')" in out
    assert (on_cluster / "kpis.csv").read_text() == (single / "kpis.csv").read_text()
    assert _summary(on_cluster) == _summary(single) and _summary(single)["ticks"] == "60"
    store = TwinStore(connect(redis_cluster.url, cluster=True), PREFIX)
    assert [s.tick for s in store.kpi_history()] == list(range(1, 61))


@pytest.mark.slow  # two 200-tick runs and a failover: about 15 s
@pytest.mark.timeout(300)
def test_killing_the_runs_master_mid_run_leaves_a_complete_run(
    small_scenario, redis_cluster, single_node_200, tmp_path
):
    client = connect(redis_cluster.url, cluster=True)
    store = TwinStore(client, PREFIX)
    master = redis_cluster.master_of(store.keys.run)
    replica = redis_cluster.replicas_of(master)[0]
    # The bridge is introduced to the cluster by the very node that will die: it must find the others itself.
    proc = _run(small_scenario, tmp_path, 200, "--redis-url", f"redis://{master.address}", "--redis-cluster")
    deadline = time.monotonic() + 60
    killed_after = None
    while killed_after is None:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not reach tick 60"
        try:
            latest = store.latest_tick()
        except Exception:  # noqa: BLE001 - not started yet
            latest = None
        if latest is not None and latest.tick >= 60:
            with replica.client() as r:  # the replica stops receiving, and cannot sync again
                r.config_set("masterauth", "not-the-password")
                r.client_kill_filter(_type="master")
            time.sleep(0.05)  # the master acknowledges a few more ticks that the replica never gets
            killed_after = store.latest_tick().tick
            redis_cluster.kill(master)
        else:
            time.sleep(0.002)
    out, err = _finish(proc)
    assert killed_after < 200, "the run ended before the master was killed"
    assert "holding tick" in err and "is back after" in err, err
    assert redis_cluster.master_of(store.keys.run).port == replica.port

    # The run is complete and its KPIs are those of the run on one Redis, tick by tick.
    rows = _kpi_rows(tmp_path)
    assert [int(r["tick"]) for r in rows] == list(range(1, 201))
    assert rows == _kpi_rows(single_node_200)
    summary = _summary(tmp_path)
    assert summary == _summary(single_node_200) and summary["ticks"] == "200"
    # No tick lost: the tick log (on the new master) holds every tick once, with the KPIs the run computed.
    history = store.kpi_history()
    assert [s.tick for s in history] == list(range(1, 201))
    for sample, row in zip(history, rows, strict=True):
        assert sample.kpis == {k: float(v) for k, v in row.items() if k not in ("tick", "sim_time_s")}
    # None torn: each tick of the window reads back whole (its meta, vehicles and servers agree).
    for t in range(191, 201):
        meta, vehicles, servers = store.tick_frames(t)
        assert meta.tick == t and len(vehicles.ids) == meta.n_vehicles == int(float(rows[t - 1]["vehicles"]))
        assert all(len(c) == meta.n_vehicles for c in vehicles.columns.values())
        assert len(servers.ids) == meta.n_servers
    with pytest.raises(redis.ConnectionError):
        master.client().ping()
    print(f"killed the master after tick {killed_after}; {err.strip()}")
