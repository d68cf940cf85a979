"""Provisioning never runs out of places: roadside sites, several RSU units per site, and what the import shows.

The dense city (tests/dense_city.py: 25 junctions, over a thousand vehicles at once) is what the rule before
site growth refused; it must now import with no options.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.dense_city import JUNCTIONS, build_dense_city
from twin_service.cli import app
from twin_service.config import RsuParams, SatelliteParams, ScenarioError, UavParams, load_params
from twin_service.scenario.calibrate import CITY_DROPPED_SHARE, PositionTrace, dropped_share_at_peak, nearest_hosting
from twin_service.scenario.edge_servers import EdgeLayout, EdgeServer, read_edge_servers
from twin_service.scenario.importer import IMPORT_RULE
from twin_service.scenario.layout import (
    SiteGrowth,
    _coverage_sites,
    _stack_units,
    place_on_sites,
    read_sites,
)
from twin_service.scenario.report import provisioning_report


def _sites(layout: EdgeLayout) -> dict[tuple[float, float], int]:
    """RSU units per site (a site is where units share coordinates)."""
    sites: dict[tuple[float, float], int] = {}
    for s in layout.rsus:
        sites[(s.x_m, s.y_m)] = sites.get((s.x_m, s.y_m), 0) + 1
    return sites


def test_units_go_where_the_demand_per_unit_is_highest_by_hand():
    """D'Hondt: demands 10, 5, 1 and 4 more units. Quotients 10 -> site 0 (now 5); 5 and 5 tie -> the earlier
    site 0 (now 3.33); 5 -> site 1 (now 2.5); 3.33 -> site 0. Units 4, 2, 1."""
    np.testing.assert_array_equal(_stack_units(np.array([10.0, 5.0, 1.0]), 4), [4, 2, 1])
    np.testing.assert_array_equal(_stack_units(np.array([3.0, 3.0]), 0), [1, 1])


def test_roadside_sites_cover_every_road_point_and_only_uncovered_ones():
    """A 6 km road sampled every 50 m, a site at its start: the rest is covered busiest-first, each new site out of
    range of every earlier one."""
    x = np.arange(25.0, 6000.0, 50.0)
    points = np.column_stack([x, np.zeros_like(x)])
    score = np.where(x > 3000, 2.0, 1.0)  # the far half is busier: it is covered first
    chosen = _coverage_sites(np.array([[0.0, 0.0]]), points, score, 1200.0, len(points), seed=1)
    sites = np.concatenate([[0.0], x[chosen]])
    assert x[chosen[0]] > 3000
    gaps = np.abs(x[:, None] - sites[None]).min(axis=1)
    assert gaps.max() <= 1200.0
    d = np.abs(sites[:, None] - sites[None])
    np.fill_diagonal(d, np.inf)
    assert d.min() > 1200.0
    assert _coverage_sites(np.array([[0.0, 0.0]]), points, score, 1200.0, 1, seed=1) == chosen[:1]


def test_a_site_of_several_units_shares_its_vehicles_evenly():
    """Nearest-server hosting sends a site's vehicles to its units in turn (3, 2, 2 of 7), as one server of three
    times the capacity would take them; the lone RSU keeps its own."""

    def rsu(i: int, x: float) -> EdgeServer:
        return EdgeServer(f"rsu_{i}", "rsu", x, 0.0, 10.0, 53.5, 0.0, 500.0, 300.0, 32e9)

    sat = EdgeServer("sat_0", "satellite", 0.0, 0.0, 10.0, 53.5, 550e3, float("inf"), 1e9, 80e9)
    layout = EdgeLayout((rsu(0, 0.0), rsu(1, 0.0), rsu(2, 0.0), rsu(3, 2000.0), sat))
    xs = np.array([10.0, 20.0, 2010.0, 30.0, 40.0, 50.0, 60.0, 70.0, 9000.0])
    trace = PositionTrace(0.0, np.array([1.0]), (xs,), (np.zeros_like(xs),))
    (hosts,) = nearest_hosting(trace, layout).hosts
    np.testing.assert_array_equal(hosts, [0, 1, 3, 2, 0, 1, 2, 0, 4])
    np.testing.assert_array_equal(np.bincount(hosts, minlength=5), [3, 2, 2, 1, 1])


@pytest.fixture(scope="module")
def dense_sites(dense_import):
    params = load_params(dense_import.out)
    return read_sites(params.scenario.net_file, params.scenario.route_files, seed=1, end_s=params.scenario.end_s)


def test_any_count_is_placed_past_the_junctions(dense_sites):
    """Without growth the rule refuses more RSUs than junctions; with it, sites then units: every count fits."""
    rsu, uav, sat = RsuParams(), UavParams(), SatelliteParams()
    assert dense_sites.busy_junctions == JUNCTIONS
    counts = dataclasses.replace(IMPORT_RULE, rsu_count=3 * JUNCTIONS + 2, uav_count=2)
    with pytest.raises(ScenarioError, match=f"only {JUNCTIONS} junctions carry traffic"):
        place_on_sites(dense_sites, counts, rsu, uav, sat)
    layout, found = place_on_sites(dense_sites, counts, rsu, uav, sat, growth=SiteGrowth())
    units = _sites(layout)
    assert len(layout.rsus) == 3 * JUNCTIONS + 2 == found["rsus_placed"]
    assert len(units) == JUNCTIONS == found["rsu_sites"] == found["rsu_junction_sites"]  # all in range: no road site
    assert found["rsu_road_sites"] == 0 and sorted(units.values())[-1] == found["rsu_units_max_per_site"] >= 4
    assert [s.id for s in layout.rsus] == [f"rsu_{k:02d}" for k in range(len(layout.rsus))]
    # Stacking follows the demand: the site given as busiest gets the most units.
    busiest = np.zeros(JUNCTIONS)
    busiest[7] = 100.0
    layout, _ = place_on_sites(
        dense_sites, counts, rsu, uav, sat, growth=SiteGrowth(), site_demand=lambda xy: busiest[: len(xy)] + 1.0
    )
    most = max(_sites(layout).values())
    assert most >= 3 * JUNCTIONS + 2 - JUNCTIONS - 1  # all but one of the extra units at the busiest site


def test_roads_out_of_range_get_roadside_sites(dense_sites):
    """With a short RSU range the junctions leave road uncovered: roadside sites come before extra units."""
    short = RsuParams(range_m=60.0)
    counts = dataclasses.replace(IMPORT_RULE, rsu_count=200, uav_count=2)
    layout, found = place_on_sites(dense_sites, counts, short, UavParams(), SatelliteParams(), growth=SiteGrowth())
    assert found["rsu_road_sites"] > 0 and found["rsu_sites"] == JUNCTIONS + found["rsu_road_sites"]
    points, _, _ = dense_sites.road_points(SiteGrowth().road_step_m, IMPORT_RULE)
    xy = np.array(list(_sites(layout)))
    nearest = np.hypot(*(points[:, None] - xy[None]).T).min(axis=0)
    assert nearest.max() <= 60.0  # every road point within a site's range
    assert len(layout.rsus) == 200


def test_dense_city_imports_with_no_options(dense_import):
    """More RSUs than junctions, as units stacked where the demand is, within the city's dropped share."""
    out, demand = dense_import.out, dense_import.demand
    params = load_params(out)
    cal = params.calibration
    layout = read_edge_servers(out / params.scenario.edge_servers_file)
    units = _sites(layout)
    assert len(layout.rsus) == cal["rsus"] > JUNCTIONS  # the rule before growth could not place this many
    assert len(units) == cal["rsu_sites"] <= JUNCTIONS and max(units.values()) == cal["rsu_units_max_per_site"] > 1
    assert cal["vehicles_at_peak"] > 500 and cal["target_met"]
    assert cal["dropped_data_share_at_peak"] <= cal["target_dropped_share"] == CITY_DROPPED_SHARE
    tried = dict(item.split(": ") for item in cal["counts_tried"].split(", "))
    assert float(tried[str(cal["rsus"] - 1)]) > CITY_DROPPED_SHARE  # one fewer would not do
    hosting = nearest_hosting(demand.positions, layout)
    share = dropped_share_at_peak(hosting, layout, 2.0, params.task.cycles_per_bit, demand.peak_time_s, 1.0, 750.0)
    assert share == pytest.approx(cal["dropped_data_share_at_peak"], abs=1e-4)
    for key in ("site_spacing_min_m", "road_step_m", "rsu_sites", "rsu_units_stacked"):
        assert key in params.layout


def test_import_reports_what_it_provisioned(dense_import):
    """The terminal report: servers per tier, the peak, the dropped share against the city's; and the picture."""
    cal = load_params(dense_import.out).calibration
    lines = provisioning_report(cal)
    for line in lines:
        assert line in dense_import.output
    assert f"servers: {cal['rsus']} RSUs at {cal['rsu_sites']} sites" in lines[0]
    assert f"{cal['uavs']} UAVs, 1 LEO satellite" in lines[0]
    assert f"peak at {cal['peak_time_s']:g} s: {cal['vehicles_at_peak']:.0f} vehicles" in lines[1]
    assert f"{cal['dropped_data_share_at_peak']:.1%} of the twins' data dropped, within the city's" in lines[2]
    assert f"({CITY_DROPPED_SHARE:.1%})" in lines[2] and "Traceback" not in dense_import.output
    png = (dense_import.out / "layout.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 800 and height >= 600 and len(png) > 20_000


def test_an_import_without_traffic_fails_in_one_line(tmp_path):
    cfg = build_dense_city(tmp_path / "src", with_trips=False)
    result = CliRunner().invoke(app, ["scenario", "import", str(cfg), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert error == ["error: no vehicle drives in the scenario (1-420 s): no traffic to provision for"]
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_rsus_beyond_the_junctions_are_placed_not_refused(dense_import, tmp_path, monkeypatch):
    """--rsus still wins, even a count the junctions cannot take: sites, then units, measured and recorded."""
    import twin_service.bridge.calibrate

    monkeypatch.setattr(twin_service.bridge.calibrate, "record_demand", lambda *a, **k: dense_import.demand)
    wanted = 3 * JUNCTIONS
    args = ["scenario", "import", str(dense_import.source), "--out", str(tmp_path / "many"), "--rsus", str(wanted)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cal = load_params(tmp_path / "many").calibration
    assert (cal["rsus"], cal["rsu_sites"]) == (wanted, JUNCTIONS) and "--rsus" in cal["method"]
    assert f"servers: {wanted} RSUs at {JUNCTIONS} sites" in result.output
    assert cal["dropped_data_share_at_peak"] < load_params(dense_import.out).calibration["dropped_data_share_at_peak"]


def test_a_target_no_count_meets_still_gives_a_layout(dense_sites):
    """Traffic out of every site's reach (all of it on the satellite, whose queue overflows): no RSU count drops
    less, so the search ends at its bound, keeps the fewest RSUs that drop the least, and says the target is not
    met; it does not give up."""
    from twin_service.config import ScenarioMeta, ScenarioParams, TaskParams
    from twin_service.scenario.provision import DemandTrace, provision_for_demand

    times = np.arange(1.0, 201.0)
    far = tuple(np.full(500, 80_000.0) for _ in times)
    positions = PositionTrace(0.0, times, far, tuple(np.zeros(500) for _ in times))
    demand = DemandTrace(times, np.full(len(times), 500), 100.0, positions)
    params = ScenarioParams(scenario=ScenarioMeta(name="far"), task=TaskParams(cycles_per_bit=72.3))
    found = provision_for_demand(dense_sites, demand, IMPORT_RULE, params)
    cal = found.calibration(demand)
    assert not cal["target_met"] and cal["dropped_data_share_at_peak"] > 0.5
    assert cal["rsus"] == min(found.tried) and len(found.tried) > 2 and max(found.tried) > 3 * JUNCTIONS
    assert "ABOVE the city's calibration point" in provisioning_report(cal)[2]
