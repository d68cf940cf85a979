"""A SUMO network's geo-reference: net x/y (metres) <-> WGS84 lon/lat, vectorised with pyproj.

SUMO stores the projection in the net's ``<location>`` element. Net coordinates are the projected
coordinates shifted by ``netOffset``, so ``lon, lat = proj^-1(x - netOffset_x, y - netOffset_y)``
(the same as ``sumolib.net.Net.convertXY2LonLat``).
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twin_service.config import ScenarioError

NO_PROJECTION = "!"
"""SUMO's projParameter for a network without a geo-reference."""


@dataclass(frozen=True)
class NetProjection:
    """The ``<location>`` of a SUMO network."""

    proj: str
    """PROJ string of the projection (``projParameter``)."""
    net_offset: tuple[float, float]
    """Added to projected coordinates to give net coordinates, metres."""
    conv_boundary: tuple[float, float, float, float]
    """Net bounding box ``(xmin, ymin, xmax, ymax)`` in net coordinates, metres."""

    @cached_property
    def _transformer(self):
        from pyproj import CRS, Transformer

        try:
            crs = CRS.from_proj4(self.proj) if self.proj.lstrip().startswith("+") else CRS(self.proj)
        except Exception as exc:  # pyproj.exceptions.CRSError and friends
            raise ScenarioError(f"cannot read the network projection {self.proj!r}: {exc}") from exc
        # SUMO inverts the projection onto its own ellipsoid: the CRS's geodetic base.
        return Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)

    def to_lonlat(self, x_m: ArrayLike, y_m: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Net x/y (metres) -> (lon, lat) in degrees; broadcasts like numpy."""
        x = np.asarray(x_m, dtype=np.float64) - self.net_offset[0]
        y = np.asarray(y_m, dtype=np.float64) - self.net_offset[1]
        lon, lat = self._transformer.transform(x, y)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)

    def to_xy(self, lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lon, lat) in degrees -> net x/y in metres; the inverse of :meth:`to_lonlat`."""
        from pyproj.enums import TransformDirection

        px, py = self._transformer.transform(
            np.asarray(lon, dtype=np.float64),
            np.asarray(lat, dtype=np.float64),
            direction=TransformDirection.INVERSE,
        )
        return np.asarray(px) + self.net_offset[0], np.asarray(py) + self.net_offset[1]

    @property
    def center_xy(self) -> tuple[float, float]:
        """Centre of the net's bounding box, net metres."""
        xmin, ymin, xmax, ymax = self.conv_boundary
        return (xmin + xmax) / 2.0, (ymin + ymax) / 2.0

    @property
    def area_km2(self) -> float:
        """Area of the net's bounding box, km^2."""
        xmin, ymin, xmax, ymax = self.conv_boundary
        return (xmax - xmin) * (ymax - ymin) / 1e6


def _floats(text: str, n: int, what: str, path: Path) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise ScenarioError(f"{path}: <location {what}={text!r}> is not {n} comma-separated numbers")
    return values


def read_location(net_file: str | Path) -> ET.Element:
    """The ``<location>`` element of a (possibly gzipped) net, read without parsing the whole net."""
    path = Path(net_file)
    if not path.is_file():
        raise ScenarioError(f"no SUMO network at {path}")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            for _, elem in ET.iterparse(fh, events=("start",)):
                if elem.tag == "location":
                    return elem
                if elem.tag in ("edge", "junction"):
                    break  # <location> comes first in every SUMO net
    except (ET.ParseError, OSError, EOFError) as exc:
        raise ScenarioError(f"{path}: not a readable SUMO network: {exc}") from exc
    raise ScenarioError(f"{path}: no <location> element; is this a SUMO .net.xml?")


def read_projection(net_file: str | Path) -> NetProjection:
    """Read a net's projection; a net without one raises :class:`ScenarioError`."""
    path = Path(net_file)
    loc = read_location(path)
    proj = (loc.get("projParameter") or NO_PROJECTION).strip()
    if proj == NO_PROJECTION:
        raise ScenarioError(
            f"{path} has no geo-reference (projParameter='!'): edge servers need lon/lat. "
            f"Re-project it first, e.g. 'netconvert -s {path.name} --proj \"+proj=utm +zone=32 "
            f"+ellps=WGS84 +datum=WGS84 +units=m\" -o geo.net.xml' (or --proj.utm for OSM imports), "
            f"or pass it through 'netconvert --proj' with the projection it was drawn in."
        )
    offset = _floats(loc.get("netOffset", "0,0"), 2, "netOffset", path)
    boundary = _floats(loc.get("convBoundary", "0,0,0,0"), 4, "convBoundary", path)
    return NetProjection(proj=proj, net_offset=(offset[0], offset[1]), conv_boundary=boundary)  # type: ignore[arg-type]


def xy_to_lonlat_converter(net_file: str | Path):
    """A vectorised ``f(x_m, y_m) -> (lon, lat)`` for the net's projection."""
    return read_projection(net_file).to_lonlat
