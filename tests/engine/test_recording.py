"""Recordings: the file keeps every tick as the bridge read it, and a replay equals the live run."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SMALL_RECORDING_END_S
from twin_service.bridge.runner import RunOptions, open_bridge, run_loop
from twin_service.engine import SumoTick, VehicleBatch
from twin_service.engine.recording import Recording, RecordingError, RecordingMeta, RecordingWriter
from twin_service.engine.replay import ReplayBackend
from twin_service.engine.types import quantise
from twin_service.twins.server import RedisHandle


def _meta(**kw) -> RecordingMeta:
    base = dict(
        scenario="t", scenario_dir="/x", param_hash="h", seed=1, scale=1.0, begin_s=0.0, end_s=0.0, tick_s=1.0,
        sumo_version="test",
    )  # fmt: skip
    return RecordingMeta(**{**base, **kw})


def _tick(t: float, ids: list[str], arrived: tuple[str, ...] = (), rng=np.random.default_rng(0)) -> SumoTick:
    n = len(ids)
    batch = VehicleBatch(
        ids,
        quantise(rng.uniform(-500, 5000, n)),
        quantise(rng.uniform(0, 5000, n)),
        quantise(rng.uniform(0, 20, n)),
        quantise(rng.uniform(0, 360, n)),
        [f"e{k % 3}" for k in range(n)],
    )
    return SumoTick(t, 0.0, arrived, batch, expected_remaining=n + 5)


def test_writer_and_reader_round_trip_across_chunks(tmp_path: Path):
    ticks = [_tick(float(t), [f"v{k}" for k in range(t % 7, t % 7 + 5 + t % 3)], (f"v{t}",)) for t in range(1, 24)]
    ticks.append(_tick(24.0, []))  # a tick with no vehicle
    writer = RecordingWriter(tmp_path / "r.npz", _meta(), chunk_ticks=5)
    for tick in ticks:
        writer.add(tick)
    meta = writer.close()
    assert meta.ticks == 24 and meta.end_s == 24.0 and meta.rows == sum(len(t.vehicles) for t in ticks)
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]  # its temporary name is gone
    with Recording(tmp_path / "r.npz") as rec:
        assert rec.meta == meta
        for index in (23, 0, 7, 6, 11, 4, 5):  # out of order, across chunk boundaries
            got, want = rec.tick(index), ticks[index]
            assert got.time_s == want.time_s and got.arrived == want.arrived
            assert got.expected_remaining == want.expected_remaining
            assert got.vehicles.ids == want.vehicles.ids and got.vehicles.road_ids == want.vehicles.road_ids
            for name in ("x_m", "y_m", "speed_mps", "heading_deg"):
                np.testing.assert_array_equal(getattr(got.vehicles, name), getattr(want.vehicles, name))
        assert rec.index_of(12.0) == 11
        with pytest.raises(RecordingError, match="no tick at 30"):
            rec.index_of(30.0)


def test_replay_backend_starts_mid_recording_and_stops_at_its_end(tmp_path: Path):
    writer = RecordingWriter(tmp_path / "r.npz", _meta(begin_s=100.0), chunk_ticks=4)
    for t in range(101, 111):
        writer.add(_tick(float(t), ["a", "b"]))
    writer.close()
    replay = ReplayBackend(tmp_path / "r.npz", begin_s=104.0, end_s=107.0)
    assert replay.time_s == 104.0 and replay.epoch_s == 100.0 and replay.remaining_ticks() == 3
    seen = []
    for _ in range(3):
        replay.step()
        seen.append(replay.observe_tick().time_s)
    assert seen == [105.0, 106.0, 107.0]
    with pytest.raises(RecordingError, match="ended at 107"):
        replay.step()
    replay.close()


@pytest.mark.parametrize(
    "content, message",
    [(b"not a zip", "not a readable"), (None, "not a twin-service recording"), (b"", "not a readable")],
)
def test_a_bad_recording_file_gets_a_clear_error(tmp_path: Path, content: bytes | None, message: str):
    path = tmp_path / "bad.npz"
    if content is None:  # a valid npz of something else
        np.savez(path, meta=np.asarray('{"format": "other"}'))
    else:
        path.write_bytes(content)
    with pytest.raises(RecordingError, match=message):
        Recording(path)


def test_a_truncated_recording_is_refused(small_recording: Path, tmp_path: Path):
    cut = tmp_path / "cut.npz"
    cut.write_bytes(small_recording.read_bytes()[: small_recording.stat().st_size // 2])
    with pytest.raises(RecordingError):
        Recording(cut)
    with zipfile.ZipFile(small_recording) as zf:
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in zf.infolist())


def test_the_small_scenario_recording_is_compact_and_complete(small_recording: Path):
    with Recording(small_recording) as rec:
        meta = rec.meta
        assert meta.ticks == int(SMALL_RECORDING_END_S) and meta.seed == 3 and meta.scale == 1.0
        assert meta.sumo_version.startswith("1.28")
        assert rec.time_s[0] == 1.0 and rec.time_s[-1] == SMALL_RECORDING_END_S
        assert meta.rows > 10_000
        bytes_per_vehicle_tick = small_recording.stat().st_size / meta.rows
        assert bytes_per_vehicle_tick < 12, bytes_per_vehicle_tick  # float64 columns alone would take 32


def _frames(options: RunOptions, redis_server: RedisHandle) -> tuple[list, dict]:
    frames = []
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        real_write = store.write_tick

        def keep(frame):
            frames.append(frame)
            return real_write(frame)

        store.write_tick = keep  # type: ignore[method-assign]
        summary = run_loop(engine, store, options)
        twin_ids = store.vehicle_ids()
        window = store.vehicles_window_mean()
    return frames, {"summary": summary, "ids": twin_ids, "window": window}


def test_a_replay_gives_the_live_runs_twins_and_kpis_tick_by_tick(
    small_scenario: Path, small_recording: Path, redis_server: RedisHandle, key_prefix: str
):
    ticks = 150
    live_frames, live = _frames(
        RunOptions(scenario=small_scenario, seed=3, ticks=ticks, key_prefix=key_prefix + "-live"), redis_server
    )
    replay_frames, replay = _frames(
        RunOptions(
            scenario=small_scenario, seed=3, ticks=ticks, key_prefix=key_prefix + "-replay", replay=small_recording
        ),
        redis_server,
    )
    assert len(live_frames) == len(replay_frames) == ticks
    for a, b in zip(live_frames, replay_frames, strict=True):
        assert (a.tick, a.sim_time_s, a.vehicle_ids, a.server_ids) == (
            b.tick,
            b.sim_time_s,
            b.vehicle_ids,
            b.server_ids,
        )
        assert a.vehicle_columns.keys() == b.vehicle_columns.keys() and a.kpis == b.kpis
        for name in a.vehicle_columns:
            np.testing.assert_array_equal(a.vehicle_columns[name], b.vehicle_columns[name], err_msg=name)
        for name in a.server_columns:
            np.testing.assert_array_equal(a.server_columns[name], b.server_columns[name], err_msg=name)
        assert a.vehicle_text == b.vehicle_text
    assert live["ids"] == replay["ids"]
    for name, values in live["window"].columns.items():
        np.testing.assert_array_equal(values, replay["window"].columns[name], err_msg=name)
    drop = {"backend", "wall_time_s", "ticks_per_s", "sumo_ms_per_tick"}
    assert {k: v for k, v in live["summary"].items() if k not in drop} == {
        k: v for k, v in replay["summary"].items() if k not in drop
    }
    assert replay["summary"]["backend"] == "replay"


def test_a_recording_outlives_a_physics_change_but_not_another_demand(
    small_scenario: Path, small_recording: Path, tmp_path: Path
):
    """Recordings are of mobility: changing a server's physics keeps them, changing the routes does not."""
    import shutil

    from twin_service.config import ScenarioError
    from twin_service.scenario.folder import Scenario

    copy = tmp_path / "copy"
    shutil.copytree(small_scenario, copy)
    params = (copy / "params.toml").read_text()
    (copy / "params.toml").write_text(params.replace("cycles_per_bit = 40.0", "cycles_per_bit = 80.0"))
    physics = Scenario.load(copy)
    assert physics.params.param_hash != Scenario.load(small_scenario).params.param_hash
    with Recording(small_recording) as rec:
        m = rec.meta
        physics.check_recording(small_recording, m.mobility_hash, m.param_hash, m.scenario)
        routes = copy / "trips.trips.xml"
        routes.write_text(routes.read_text().replace('depart="0.50"', 'depart="2.50"', 1))
        other = Scenario.load(copy)
        with pytest.raises(ScenarioError, match="another city or demand"):
            other.check_recording(small_recording, m.mobility_hash, m.param_hash, m.scenario)
