"""The bridge's plane distances agree with paper A's haversine (Eq. 1-2) at city scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.shared_data import HAMBURG_DIR
from twin_service.physics import distance_matrix_m, projected_distance_matrix_m
from twin_service.scenario.geo import read_projection

ROOT = Path(__file__).resolve().parents[2]
HAMBURG_NET = HAMBURG_DIR / "network.net.xml.gz"


@pytest.mark.parametrize(
    "net",
    [
        ROOT / "sumo_scenarios" / "city" / "net.net.xml.gz",
        ROOT / "sumo_scenarios" / "rural" / "net.net.xml.gz",
        HAMBURG_NET,
    ],
    ids=["city-tmerc", "rural-tmerc", "hamburg-utm"],
)
def test_projected_distances_match_haversine(net: Path):
    projection = read_projection(net)
    xmin, ymin, xmax, ymax = projection.conv_boundary
    rng = np.random.default_rng(5)
    vx, vy = rng.uniform(xmin, xmax, 400), rng.uniform(ymin, ymax, 400)
    sx, sy = rng.uniform(xmin, xmax, 30), rng.uniform(ymin, ymax, 30)
    alt = np.r_[np.zeros(25), np.full(4, 50.0), [550e3]]
    vlon, vlat = projection.to_lonlat(vx, vy)
    slon, slat = projection.to_lonlat(sx, sy)
    exact = distance_matrix_m(vlat, vlon, slat, slon, alt)
    plane = projected_distance_matrix_m(vx, vy, sx, sy, alt)
    assert plane.dtype == np.float32
    far = exact > 50.0
    rel = np.abs(plane[far] - exact[far]) / exact[far]
    print(f"max relative difference {rel.max():.2e}")
    # Eq. 1's sphere (R = 6371.393 km) differs from the WGS84 ellipsoid of the projection by up to ~0.5 %.
    assert rel.max() < 5e-3
    # The 1,200 m RSU range decision flips for no pair more than a few metres from the boundary.
    assert np.all(((plane <= 1200.0) == (exact <= 1200.0)) | (np.abs(exact - 1200.0) < 6.0))
