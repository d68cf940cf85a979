"""The one schedule of what-if events (engine/schedule.py): spans compose as the issue says (outages and recalls add
up, factors multiply), a launch ends a recall; and a live run recorded with an outage replays it at the same
ticks (run --record, then --replay)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from twin_service.bridge.runner import RunOptions, open_bridge, run_loop
from twin_service.engine.recording import Recording
from twin_service.engine.schedule import EventSchedule, scheduled_spans
from twin_service.events import ServerInfo, load_schedule, parse_event
from twin_service.twins import RedisHandle

SERVERS = ServerInfo(("rsu_0", "rsu_1", "uav_0", "uav_1", "sat"), ("rsu", "rsu", "uav", "uav", "satellite"))


def _schedule(*events: dict) -> EventSchedule:
    schedule = EventSchedule(len(SERVERS.ids))
    for span in scheduled_spans([parse_event(e) for e in events]):
        schedule.add_span(span, SERVERS)
    return schedule


def test_spans_compose_outages_add_up_and_factors_multiply() -> None:
    s = _schedule(
        {"kind": "server_outage", "server": "rsu_1", "at_s": 10, "duration_s": 5},
        {"kind": "uav_recall", "at_s": 12},  # every UAV, until launched
        {"kind": "uav_launch", "at_s": 20},  # ends the recall of every UAV
        {"kind": "channel", "factor": 0.5, "at_s": 11, "duration_s": 10},
        {"kind": "channel", "factor": 0.5, "server": "rsu_0", "at_s": 11, "duration_s": 2},
        {"kind": "demand_scale", "factor": 2.0, "at_s": 0, "duration_s": 100},
        {"kind": "demand_scale", "factor": 1.5, "at_s": 50},
    )
    assert s.at(9.0).active is None or s.at(9.0).active.all()
    assert s.at(10.0).active.tolist() == [True, False, True, True, True]
    assert s.at(14.0).active.tolist() == [True, False, False, False, True]
    assert s.at(15.0).active.tolist() == [True, True, False, False, True]  # the outage's 5 s are over
    assert s.at(20.0).active is None or s.at(20.0).active.all()  # launched
    at12 = s.at(12.0)
    assert at12.link_factor.tolist() == [0.25, 0.5, 0.5, 0.5, 0.5] and at12.events_active == 5
    assert s.at(21.0).link_factor is None or np.all(s.at(21.0).link_factor == 1.0)
    assert s.at(60.0).demand_scale == pytest.approx(3.0) and s.at(200.0).demand_scale == pytest.approx(1.5)


def test_a_launch_ends_the_recall_of_its_uav() -> None:
    s = _schedule(
        {"kind": "uav_recall", "server": "uav_0", "at_s": 5},
        {"kind": "uav_recall", "server": "uav_1", "at_s": 5},
        {"kind": "uav_launch", "server": "uav_0", "at_s": 8},
    )
    assert s.at(6.0).active.tolist() == [True, True, False, False, True]
    assert s.at(8.0).active.tolist() == [True, True, True, False, True]


def test_schedule_files_toml_and_json_are_the_same_events(tmp_path: Path) -> None:
    toml = tmp_path / "w.toml"
    toml.write_text('[[event]]\nkind = "channel"\nfactor = 0.5\nat_s = 9\n\n[[event]]\nkind = "uav_recall"\nat_s = 3\n')
    json_file = tmp_path / "w.json"
    json_file.write_text('[{"kind": "channel", "factor": 0.5, "at_s": 9}, {"kind": "uav_recall", "at_s": 3}]')
    assert load_schedule(toml, SERVERS) == load_schedule(json_file, SERVERS)
    assert [e.kind for e in load_schedule(toml)] == ["uav_recall", "channel"]  # in order of at_s


def test_a_recorded_outage_replays_at_the_same_ticks(
    redis_server: RedisHandle, key_prefix: str, tmp_path: Path
) -> None:
    recording = tmp_path / "day.npz"
    outage = parse_event({"kind": "server_outage", "server": "rsu_03", "at_s": 1504, "duration_s": 3})
    kpis = []
    for k, extra in enumerate(({"events": (outage,), "record": recording}, {"replay": recording})):
        kpi_csv = tmp_path / f"kpis{k}.csv"
        options = RunOptions(scenario="city", key_prefix=f"{key_prefix}{k}", begin_s=1500.0, ticks=10,
                             kpi_csv=kpi_csv, **extra)  # fmt: skip
        with open_bridge(options, redis=redis_server) as (engine, store, _):
            run_loop(engine, store, options)
            store.clear()
        kpis.append([(r["servers_out"], r["packet_loss"], r["vehicles"]) for r in csv.DictReader(kpi_csv.open())])
    with Recording(recording) as rec:
        assert [(s.spec.kind, s.start_s, s.end_s) for s in rec.events] == [("server_outage", 1504.0, 1507.0)]
    assert [row[0] for row in kpis[0]] == ["0.0"] * 3 + ["1.0"] * 3 + ["0.0"] * 4  # tick k at 1500 + k s
    assert kpis[1] == kpis[0]
