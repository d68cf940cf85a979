"""Paper A, Eq. 1-2: haversine ground distance and UAV / satellite slant distance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin_service.physics import (
    EARTH_RADIUS_M,
    distance_matrix_m,
    ground_distance_m,
    haversine_central_angle_rad,
    server_distance_matrix_m,
    slant_distance_m,
)

lat = st.floats(-89.0, 89.0)
lon = st.floats(-180.0, 180.0)


def test_radius_is_paper_a_value() -> None:
    assert EARTH_RADIUS_M == 6_371_393.0


@pytest.mark.parametrize(
    ("a", "b", "expected_m"),
    [
        # 1 degree of longitude on the equator: R pi / 180 = 6371393 * 0.0174533 = 111_201.79 m
        ((0.0, 0.0), (0.0, 1.0), 111_201.79),
        # 1 degree of latitude: same arc
        ((0.0, 0.0), (1.0, 0.0), 111_201.79),
        # quarter of the equator: R pi / 2 = 10_008_160.72 m
        ((0.0, 0.0), (0.0, 90.0), 10_008_160.72),
        # antipodes: R pi = 20_016_321.44 m (hav = 1, the clip keeps arcsin defined)
        ((0.0, 0.0), (0.0, 180.0), 20_016_321.44),
        # 1 degree east at 60 N: hav = cos^2(60) sin^2(0.5 deg) = 0.25 * 7.6152e-5 = 1.90381e-5,
        # eta = 2 asin(sqrt(hav)) = 8.72656e-3 rad, D = 55_600.36 m. The paper's printed hav
        # (sin^2(dlon) with no halves, lat/lon swapped) would give 222_403.6 m.
        ((60.0, 0.0), (60.0, 1.0), 55_600.36),
    ],
)
def test_ground_distance_known_points(a: tuple[float, float], b: tuple[float, float], expected_m: float) -> None:
    assert ground_distance_m(a[0], a[1], b[0], b[1]) == pytest.approx(expected_m, abs=0.01)


def test_central_angle_one_degree_is_pi_over_180() -> None:
    assert haversine_central_angle_rad(10.0, 20.0, 11.0, 20.0) == pytest.approx(np.pi / 180, rel=1e-12)


def test_slant_distance_uav() -> None:
    # UAV 50 m up at the RSU range edge: sqrt(1200^2 + 50^2) = sqrt(1_442_500) = 1201.041 m
    assert slant_distance_m(1200.0, 50.0) == pytest.approx(1201.041, abs=1e-3)


def test_distance_matrix_rsu_uav_satellite() -> None:
    # vehicles at (0, 0) and (0, 0.01); servers RSU at (0, 0), UAV 50 m over (0, 0.01),
    # satellite 550 km over (0, 0). 0.01 deg on the equator = 1112.018 m.
    d = distance_matrix_m([0.0, 0.0], [0.0, 0.01], [0.0, 0.0, 0.0], [0.0, 0.01, 0.0], [0.0, 50.0, 550e3])
    expected = [
        [0.0, 1113.141, 550_000.0],  # sqrt(1112.018^2 + 50^2)
        [1112.018, 50.0, 550_001.124],  # sqrt(550000^2 + 1112.018^2)
    ]
    assert d.shape == (2, 3)
    np.testing.assert_allclose(d, expected, atol=1e-3)


def test_distance_matrix_with_no_vehicles_is_empty() -> None:
    # a tick with no vehicles in the network still yields a well-formed (0, M) matrix
    assert distance_matrix_m([], [], [0.0, 1.0], [0.0, 1.0]).shape == (0, 2)


def test_server_distance_matrix_uses_altitude_difference() -> None:
    # Two UAVs at 50 m, 0.01 deg apart, and an RSU under the first: UAV-UAV is a ground distance,
    # RSU-UAV above it is 50 m.
    d = server_distance_matrix_m([0.0, 0.0, 0.0], [0.0, 0.01, 0.0], [50.0, 50.0, 0.0])
    assert d[0, 1] == pytest.approx(1112.018, abs=1e-3)
    assert d[0, 2] == pytest.approx(50.0)
    assert d[1, 2] == pytest.approx(1113.141, abs=1e-3)
    np.testing.assert_allclose(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)


@given(lat, lon, lat, lon)
def test_ground_distance_symmetric_nonnegative_bounded(a_lat: float, a_lon: float, b_lat: float, b_lon: float) -> None:
    ab = float(ground_distance_m(a_lat, a_lon, b_lat, b_lon))
    ba = float(ground_distance_m(b_lat, b_lon, a_lat, a_lon))
    assert 0.0 <= ab <= np.pi * EARTH_RADIUS_M + 1e-6
    assert ab == pytest.approx(ba, abs=1e-6)


@given(lat, lon, st.lists(st.tuples(lat, lon, st.floats(0.0, 600e3)), min_size=1, max_size=6))
def test_matrix_matches_pointwise_and_slant_exceeds_ground(
    v_lat: float, v_lon: float, servers: list[tuple[float, float, float]]
) -> None:
    s_lat, s_lon, s_alt = (np.array(c) for c in zip(*servers, strict=True))
    d = distance_matrix_m([v_lat], [v_lon], s_lat, s_lon, s_alt)[0]
    ground = ground_distance_m(v_lat, v_lon, s_lat, s_lon)
    np.testing.assert_allclose(d, np.hypot(ground, s_alt), rtol=1e-9, atol=1e-6)
    assert np.all(d >= ground - 1e-6)
    assert np.all(d >= s_alt - 1e-6)


@given(
    st.floats(-80.0, 80.0),
    st.floats(-179.0, 179.0),
    st.lists(st.tuples(st.floats(-0.02, 0.02), st.floats(-0.02, 0.02)), min_size=1, max_size=8),
)
def test_matrix_is_millimetre_exact_at_city_scale(lat0: float, lon0: float, offsets: list[tuple[float, float]]) -> None:
    # distance_matrix_m rearranges the haversine for speed; within a few km it must still agree
    # with the plain transcription to well under a millimetre.
    dlat, dlon = (np.array(c) for c in zip(*offsets, strict=True))
    vehicles_lat, vehicles_lon = lat0 + dlat, lon0 + dlon
    servers_lat, servers_lon = lat0 - dlat[::-1], lon0 + dlon[::-1]
    d = distance_matrix_m(vehicles_lat, vehicles_lon, servers_lat, servers_lon)
    ref = ground_distance_m(vehicles_lat[:, None], vehicles_lon[:, None], servers_lat, servers_lon)
    np.testing.assert_allclose(d, ref, rtol=0, atol=1e-4)
