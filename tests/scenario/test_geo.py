"""Net x/y -> lon/lat, checked against sumolib (which is what SUMO itself computes)."""

from __future__ import annotations

import numpy as np
import pytest
import sumolib

from twin_service.config import ScenarioError
from twin_service.scenario.geo import read_projection, xy_to_lonlat_converter


def _check_against_sumolib(net_file):
    projection = read_projection(net_file)
    net = sumolib.net.readNet(str(net_file))
    xmin, ymin, xmax, ymax = projection.conv_boundary
    rng = np.random.default_rng(0)
    x = rng.uniform(xmin, xmax, 5)
    y = rng.uniform(ymin, ymax, 5)
    lon, lat = projection.to_lonlat(x, y)
    for k in range(5):
        ref_lon, ref_lat = net.convertXY2LonLat(x[k], y[k])
        assert lon[k] == pytest.approx(ref_lon, abs=1e-9)
        assert lat[k] == pytest.approx(ref_lat, abs=1e-9)
    bx, by = projection.to_xy(lon, lat)
    np.testing.assert_allclose(bx, x, atol=1e-6)
    np.testing.assert_allclose(by, y, atol=1e-6)


def test_city_matches_sumolib(city_dir):
    _check_against_sumolib(city_dir / "net.net.xml.gz")


def test_rural_matches_sumolib(rural_dir):
    _check_against_sumolib(rural_dir / "net.net.xml.gz")


def test_hamburg_matches_sumolib(hamburg_cfg):
    _check_against_sumolib(hamburg_cfg.parent / "network.net.xml.gz")


def test_city_is_centred_on_hamburg(city_dir):
    projection = read_projection(city_dir / "net.net.xml.gz")
    assert projection.conv_boundary == (0.0, 0.0, 5000.0, 5000.0)
    assert projection.area_km2 == pytest.approx(25.0)
    lon, lat = xy_to_lonlat_converter(city_dir / "net.net.xml.gz")(*projection.center_xy)
    assert (float(lon), float(lat)) == pytest.approx((9.99, 53.55), abs=1e-9)


def test_net_without_projection_says_how_to_fix_it(tiny_net):
    with pytest.raises(ScenarioError, match=r"netconvert --proj"):
        read_projection(tiny_net)


def test_missing_net_raises(tmp_path):
    with pytest.raises(ScenarioError, match="no SUMO network"):
        read_projection(tmp_path / "nope.net.xml")
