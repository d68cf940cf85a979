"""UAV patrol kinematics, pinned to hand-computed positions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_service.scenario.edge_servers import read_edge_servers
from twin_service.scenario.uav import patrol_table, patrol_table_from_layout, uav_positions


def _at(table, t):
    xy, heading = uav_positions(table, t)
    return xy, heading


def test_pingpong_on_a_segment():
    table = patrol_table([[(0, 0), (100, 0)]], speed_mps=10.0)
    expected = {0: (0, 90), 5: (50, 90), 10: (100, 90), 15: (50, 270), 20: (0, 270), 25: (50, 90)}
    for t, (x, heading) in expected.items():
        xy, h = _at(table, t)
        np.testing.assert_allclose(xy[0], (x, 0), atol=1e-9)
        if t not in (10, 20):  # at a turning point either heading is fine
            assert h[0] == pytest.approx(heading)


def test_pingpong_on_an_l_shape():
    table = patrol_table([[(0, 0), (0, 30), (40, 30)]], speed_mps=1.0)
    xy, h = _at(table, 10)
    np.testing.assert_allclose(xy[0], (0, 10))
    assert h[0] == pytest.approx(0.0)  # north
    xy, h = _at(table, 50)
    np.testing.assert_allclose(xy[0], (20, 30))
    assert h[0] == pytest.approx(90.0)  # east
    xy, h = _at(table, 70 + 50)  # 70 m out, then 50 m back: 20 m before the corner, heading south
    np.testing.assert_allclose(xy[0], (0, 20))
    assert h[0] == pytest.approx(180.0)


def test_loop_closes_back_to_the_start():
    table = patrol_table([[(0, 0), (10, 0), (10, 10), (0, 10)]], speed_mps=1.0, loop=True)
    assert table.length_m[0] == pytest.approx(40.0)
    xy, h = _at(table, 35)
    np.testing.assert_allclose(xy[0], (0, 5))
    assert h[0] == pytest.approx(180.0)
    xy, _ = _at(table, 40)
    np.testing.assert_allclose(xy[0], (0, 0), atol=1e-12)


def test_hover_and_mixed_vertex_counts_vectorised():
    table = patrol_table([[(5, 5)], [(0, 0), (0, 10), (0, 10), (10, 10)]], speed_mps=[3.0, 2.0])
    times = np.array([0.0, 2.5, 7.0, 12.0])
    xy, h = uav_positions(table, times)
    assert xy.shape == (4, 2, 2) and h.shape == (4, 2)
    np.testing.assert_allclose(xy[:, 0], [(5, 5)] * 4)
    np.testing.assert_array_equal(h[:, 0], 0.0)
    np.testing.assert_allclose(xy[:, 1], [(0, 0), (0, 5), (4, 10), (6, 10)])  # 24 m: back 4 m from the end
    for k, t in enumerate(times):
        one_xy, one_h = uav_positions(table, t)
        np.testing.assert_allclose(one_xy, xy[k])
        np.testing.assert_allclose(one_h, h[k])


def test_committed_uavs_start_at_their_poi(city_dir):
    layout = read_edge_servers(city_dir / "edge_servers.add.xml")
    xy, _ = uav_positions(patrol_table_from_layout(layout), 0.0)
    np.testing.assert_allclose(xy, layout.xy_m[layout.uav_indices])


def _distance_to_polyline(p, pts):
    best = np.inf
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        ab = b - a
        denom = ab @ ab
        u = 0.0 if denom == 0 else np.clip((p - a) @ ab / denom, 0, 1)
        best = min(best, np.linalg.norm(a + u * ab - p))
    return best


polylines = st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=2, max_size=6).map(
    lambda pts: np.array(pts, dtype=float)
)


@settings(max_examples=60, deadline=None)
@given(pts=polylines, speed=st.floats(0.5, 30.0), t=st.floats(0.0, 1e4), dt=st.floats(0.01, 10.0), loop=st.booleans())
def test_uav_stays_on_its_patrol_and_never_speeds(pts, speed, t, dt, loop):
    table = patrol_table([pts], speed_mps=speed, loop=loop)
    closed = np.vstack([pts, pts[:1]]) if loop else pts
    xy0, _ = uav_positions(table, t)
    xy1, _ = uav_positions(table, t + dt)
    assert _distance_to_polyline(xy0[0], closed) < 1e-6 * (1 + np.abs(pts).max())
    assert np.linalg.norm(xy1[0] - xy0[0]) <= speed * dt * (1 + 1e-9) + 1e-6
    if table.length_m[0] > 0:
        period = (1 if loop else 2) * table.length_m[0] / speed
        xy2, _ = uav_positions(table, t + period)
        np.testing.assert_allclose(xy2, xy0, atol=1e-6 * (1 + np.abs(pts).max()))
