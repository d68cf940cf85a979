"""Road polylines for the dashboard's map, read from real SUMO nets (the committed city, Hamburg)."""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.shared_data import HAMBURG_DIR
from twin_service.config import ScenarioError
from twin_service.scenario.netmap import read_road_map, simplify


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    denom = float(ab @ ab)
    t = np.zeros(len(points)) if denom == 0 else np.clip((points - a) @ ab / denom, 0, 1)
    return np.hypot(*(points - (a + t[:, None] * ab)).T)


def _polyline_distance(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    return np.min([_segment_distance(points, line[k], line[k + 1]) for k in range(len(line) - 1)], axis=0)


@settings(max_examples=200, deadline=None)
@given(
    points=arrays(np.float64, st.tuples(st.integers(2, 40), st.just(2)), elements=st.floats(-500, 500)),
    tolerance=st.floats(0.1, 20),
)
def test_simplify_keeps_the_ends_and_every_point_within_the_tolerance(points: np.ndarray, tolerance: float):
    kept = simplify(points, tolerance)
    assert (kept[0] == points[0]).all() and (kept[-1] == points[-1]).all()
    assert len(kept) <= len(points)
    assert (_polyline_distance(points, kept) <= tolerance + 1e-6).all()


def test_simplify_drops_the_points_of_a_straight_line():
    line = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [3.0, 10.0]])
    assert simplify(line, 0.01).tolist() == [[0.0, 0.0], [3.0, 3.0], [3.0, 10.0]]


def _normal_edges(net: Path) -> list[ET.Element]:
    with gzip.open(net) as fh:
        return [e for e in ET.parse(fh).getroot().iter("edge") if e.get("function", "normal") == "normal"]


def test_city_roads_are_its_two_way_streets_once_each(city_dir: Path):
    net = city_dir / "net.net.xml.gz"
    road_map = read_road_map(net)
    streets = {frozenset((e.get("from"), e.get("to"))) for e in _normal_edges(net)}
    assert len(road_map.roads) == len(streets) > 100
    assert road_map.boundary == (0.0, 0.0, 5000.0, 5000.0)
    xy = np.concatenate([np.reshape(r.xy, (-1, 2)) for r in road_map.roads])
    assert (xy >= -10).all() and (xy <= 5010).all()
    assert all(len(r.xy) >= 4 and len(r.xy) % 2 == 0 and r.lanes >= 1 for r in road_map.roads)


def test_hamburg_curves_stay_within_a_metre_of_their_lanes():
    net = HAMBURG_DIR / "network.net.xml.gz"
    road_map = read_road_map(net, tolerance_m=1.0)
    by_id = {e.get("id"): e for e in _normal_edges(net)}
    assert len(road_map.roads) > 100
    curved = 0
    for road in road_map.roads:
        edge = by_id[road.edge_id]
        lanes = edge.findall("lane")
        shape = edge.get("shape") or lanes[len(lanes) // 2].get("shape")
        original = np.array([[float(v) for v in p.split(",")[:2]] for p in shape.split()])
        drawn = np.reshape(road.xy, (-1, 2))
        assert (_polyline_distance(original, drawn) <= 1.0 + 0.1).all(), road.edge_id  # + rounding to 0.1 m
        curved += len(drawn) > 2
    assert curved > 10  # real streets bend: their shapes are kept, not reduced to end points


def test_a_file_that_is_not_a_net_is_a_scenario_error(tmp_path: Path):
    bad = tmp_path / "bad.net.xml"
    bad.write_text("<net><edge id='x'")
    with pytest.raises(ScenarioError, match="not a readable SUMO network"):
        read_road_map(bad)
    with pytest.raises(ScenarioError, match="no SUMO network"):
        read_road_map(tmp_path / "missing.net.xml")
