"""The edge servers of a scenario (RSUs, UAVs, one LEO satellite) and their SUMO additional file.

A layout is written as SUMO's own shapes format (``edge_servers.add.xml``), so ``sumo-gui`` shows it
with no code and the bridge can read it back with :func:`read_edge_servers`:

* an RSU is a ``<poi type="rsu">`` (blue);
* a UAV is a ``<poi type="uav">`` at its patrol's first vertex (orange) plus a ``<poly
  type="uav_patrol">`` line (unfilled, semi-transparent orange) for the road it patrols;
* the satellite is a ``<poi type="satellite">`` above the scenario centre (purple).

Physics attributes travel as ``<param>`` children (``range_m``, ``cache_mb``, ``cpu_hz``,
``altitude_m``, ``lon``, ``lat``; for UAVs ``speed_mps``, ``patrol`` and ``patrol_mode``). Numbers are
written with ``repr`` so reading gives back exactly the floats that were written.

Server order is the candidate-host order of paper A: RSUs, then UAVs, then the satellite last
(``M = N + U + 1``).
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from twin_service.config import ScenarioError, ScenarioParams

Tier = Literal["rsu", "uav", "satellite"]
PatrolMode = Literal["pingpong", "loop"]
TIERS: tuple[Tier, ...] = ("rsu", "uav", "satellite")
PATROL_TYPE = "uav_patrol"

# sumo-gui draws these with no settings file: the network is layer 0, higher layers on top.
_STYLE: dict[str, dict[str, str]] = {
    "rsu": {"color": "0,90,255", "layer": "10", "width": "40", "height": "40"},
    "uav": {"color": "255,140,0", "layer": "12", "width": "50", "height": "50"},
    "satellite": {"color": "150,40,200", "layer": "14", "width": "150", "height": "150"},
    PATROL_TYPE: {"color": "255,140,0,150", "layer": "5", "lineWidth": "6"},
}


@dataclass(frozen=True)
class EdgeServer:
    """One candidate host of vehicle twins (paper A: RSU, UAV or satellite)."""

    id: str
    tier: Tier
    x_m: float
    """Net x (metres). For a UAV: the first vertex of its patrol."""
    y_m: float
    lon: float
    """WGS84 degrees."""
    lat: float
    altitude_m: float
    """Height above ground (RSU 0, UAV 50 m, satellite 550 km)."""
    range_m: float
    """Coverage D_max (paper A: 1200 m RSU, 1500 m UAV); ``inf`` for the satellite."""
    cache_mb: float
    """L_max: load above which the server is overloaded (paper A: 300 MB)."""
    cpu_hz: float
    """C_m (paper A: 32 GHz RSU/UAV, 80 GHz satellite)."""
    patrol_xy: tuple[tuple[float, float], ...] = ()
    """UAV only: the polyline it flies along, net metres; starts at ``(x_m, y_m)``."""
    speed_mps: float = 0.0
    """UAV only: ground speed along the patrol (paper A: 3.7 m/s)."""
    patrol_mode: PatrolMode = "pingpong"
    """UAV only: back and forth along the polyline, or round a loop (last vertex -> first)."""

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ScenarioError(f"edge server {self.id!r}: unknown tier {self.tier!r}")
        if self.tier == "uav":
            if len(self.patrol_xy) < 1:
                raise ScenarioError(f"UAV {self.id!r} has no patrol polyline")
            if self.patrol_mode not in ("pingpong", "loop"):
                raise ScenarioError(f"UAV {self.id!r}: unknown patrol mode {self.patrol_mode!r}")
        elif self.patrol_xy:
            raise ScenarioError(f"{self.tier} {self.id!r} cannot have a patrol")


@dataclass(frozen=True)
class EdgeLayout:
    """All edge servers of a scenario, RSUs first, then UAVs, then the one satellite."""

    servers: tuple[EdgeServer, ...]
    description: str = field(default="", compare=False)
    """Free text written as a comment at the top of the additional file."""

    def __post_init__(self) -> None:
        servers = tuple(self.servers)
        object.__setattr__(self, "servers", servers)
        ids = [s.id for s in servers]
        if len(set(ids)) != len(ids):
            raise ScenarioError("edge server ids are not unique")
        tiers = [s.tier for s in servers]
        if tiers.count("satellite") != 1:
            raise ScenarioError(f"a layout needs exactly one satellite, got {tiers.count('satellite')}")
        if tiers != sorted(tiers, key=TIERS.index):
            raise ScenarioError("edge servers must be ordered RSUs, UAVs, satellite")

    def __len__(self) -> int:
        return len(self.servers)

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.servers)

    @cached_property
    def tiers(self) -> NDArray[np.str_]:
        return np.array([s.tier for s in self.servers])

    def column(self, name: str) -> NDArray[np.float64]:
        """One numeric field of every server as a float array of shape ``(M,)``."""
        return np.array([getattr(s, name) for s in self.servers], dtype=np.float64)

    @cached_property
    def xy_m(self) -> NDArray[np.float64]:
        """``(M, 2)`` net positions (UAVs at their patrol start)."""
        return np.column_stack([self.column("x_m"), self.column("y_m")]) if self.servers else np.zeros((0, 2))

    @cached_property
    def lonlat(self) -> NDArray[np.float64]:
        """``(M, 2)`` lon/lat degrees."""
        return np.column_stack([self.column("lon"), self.column("lat")])

    @cached_property
    def altitude_m(self) -> NDArray[np.float64]:
        return self.column("altitude_m")

    @cached_property
    def range_m(self) -> NDArray[np.float64]:
        return self.column("range_m")

    @cached_property
    def cache_mb(self) -> NDArray[np.float64]:
        return self.column("cache_mb")

    @cached_property
    def cpu_hz(self) -> NDArray[np.float64]:
        return self.column("cpu_hz")

    def indices(self, tier: Tier) -> NDArray[np.intp]:
        """Positions in :attr:`servers` of the servers of one tier."""
        return np.flatnonzero(self.tiers == tier)

    @cached_property
    def rsu_indices(self) -> NDArray[np.intp]:
        return self.indices("rsu")

    @cached_property
    def uav_indices(self) -> NDArray[np.intp]:
        return self.indices("uav")

    @cached_property
    def satellite_index(self) -> int:
        return int(self.indices("satellite")[0])

    @property
    def rsus(self) -> tuple[EdgeServer, ...]:
        return tuple(s for s in self.servers if s.tier == "rsu")

    @property
    def uavs(self) -> tuple[EdgeServer, ...]:
        return tuple(s for s in self.servers if s.tier == "uav")

    @property
    def satellite(self) -> EdgeServer:
        return self.servers[self.satellite_index]


def check_layout_matches_params(layout: EdgeLayout, params: ScenarioParams, path: str | Path) -> None:
    """Refuse a layout whose servers disagree with ``params.toml``.

    ``params.toml`` is the one source of each tier's physics (``[rsu]``, ``[uav]``, ``[satellite]``) and of the
    number of UAVs; the layout file repeats those values on every server for sumo-gui and other readers. A
    file edited on one side only would make the run silently use the other, so a disagreement is an error
    that names the server, the key and both values.
    """
    on_server = {f.name for f in dataclasses.fields(EdgeServer)}  # what the layout file repeats per server
    tiers = {
        tier: {k: v for k, v in section.model_dump().items() if k in on_server}
        for tier, section in (("rsu", params.rsu), ("uav", params.uav), ("satellite", params.satellite))
    }
    if len(layout.uavs) != params.uav.count:
        raise ScenarioError(
            f"{path} has {len(layout.uavs)} UAVs but params.toml [uav] count = {params.uav.count}; "
            "the two must agree (rebuild the scenario, or correct the count)"
        )
    for server in layout.servers:
        for key, expected in tiers[server.tier].items():
            found = float(getattr(server, key))
            if not math.isclose(found, expected, rel_tol=1e-9):
                wrong = sum(1 for s in layout.servers if s.tier == server.tier and getattr(s, key) != found)
                raise ScenarioError(
                    f"{path}: {server.tier} {server.id!r} has {key} = {found:g} but params.toml [{server.tier}] "
                    f"{key} = {expected:g}; params.toml is the source of this value: rebuild the scenario "
                    f"('twin-service scenario build' or 'scenario import') or make the two agree"
                    + (f" ({wrong} other {server.tier} servers differ from this one)" if wrong else "")
                )


# --------------------------------------------------------------------------------------------
# SUMO additional file
# --------------------------------------------------------------------------------------------


def _num(value: float) -> str:
    """Exact, round-trippable text for a float (``repr``), ``inf`` for unlimited range."""
    value = float(value)
    if math.isinf(value):
        return "inf"
    return repr(value)


def _shape(points: tuple[tuple[float, float], ...]) -> str:
    return " ".join(f"{_num(x)},{_num(y)}" for x, y in points)


def _param(parent: ET.Element, key: str, value: str) -> None:
    ET.SubElement(parent, "param", {"key": key, "value": value})


def _poi(parent: ET.Element, s: EdgeServer) -> ET.Element:
    style = _STYLE[s.tier]
    attrs = {
        "id": s.id,
        "type": s.tier,
        "name": s.id,
        "color": style["color"],
        "layer": style["layer"],
        "x": _num(s.x_m),
        "y": _num(s.y_m),
        "width": style["width"],
        "height": style["height"],
    }
    poi = ET.SubElement(parent, "poi", attrs)
    _param(poi, "lon", _num(s.lon))
    _param(poi, "lat", _num(s.lat))
    _param(poi, "altitude_m", _num(s.altitude_m))
    _param(poi, "range_m", _num(s.range_m))
    _param(poi, "cache_mb", _num(s.cache_mb))
    _param(poi, "cpu_hz", _num(s.cpu_hz))
    if s.tier == "uav":
        _param(poi, "speed_mps", _num(s.speed_mps))
        _param(poi, "patrol", f"{s.id}_patrol")
        _param(poi, "patrol_mode", s.patrol_mode)
    return poi


def layout_to_xml(layout: EdgeLayout) -> str:
    """The layout as the text of a SUMO additional file (deterministic: no timestamps)."""
    root = ET.Element("additional")
    if layout.description:
        root.append(ET.Comment(f" {layout.description.replace('--', '-')} "))
    for s in layout.servers:
        if s.tier == "uav":
            style = _STYLE[PATROL_TYPE]
            ET.SubElement(
                root,
                "poly",
                {
                    "id": f"{s.id}_patrol",
                    "type": PATROL_TYPE,
                    "color": style["color"],
                    "fill": "0",
                    "layer": style["layer"],
                    "lineWidth": style["lineWidth"],
                    "shape": _shape(s.patrol_xy),
                },
            )
        _poi(root, s)
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_edge_servers(layout: EdgeLayout, path: str | Path) -> Path:
    """Write ``edge_servers.add.xml``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(layout_to_xml(layout), encoding="utf-8")
    return p


def _parse_shape(text: str, where: str) -> tuple[tuple[float, float], ...]:
    points = []
    for token in text.split():
        parts = token.split(",")
        if len(parts) < 2:
            raise ScenarioError(f"{where}: bad shape point {token!r}")
        points.append((float(parts[0]), float(parts[1])))
    return tuple(points)


def read_edge_servers(path: str | Path) -> EdgeLayout:
    """Read a layout back from ``edge_servers.add.xml`` (other shapes in the file are ignored)."""
    p = Path(path)
    if not p.is_file():
        raise ScenarioError(f"no edge-server file at {p}")
    try:
        parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
        root = ET.parse(p, parser=parser).getroot()
    except ET.ParseError as exc:
        raise ScenarioError(f"{p}: not valid XML: {exc}") from exc
    patrols = {
        poly.get("id"): _parse_shape(poly.get("shape", ""), f"{p}: poly {poly.get('id')}")
        for poly in root.iter("poly")
        if poly.get("type") == PATROL_TYPE
    }
    servers: list[EdgeServer] = []
    for poi in root.iter("poi"):
        tier = poi.get("type")
        if tier not in TIERS:
            continue
        params = {par.get("key"): par.get("value", "") for par in poi.iter("param")}
        sid = poi.get("id", "")
        try:
            kwargs = dict(
                id=sid,
                tier=tier,
                x_m=float(poi.get("x", "nan")),
                y_m=float(poi.get("y", "nan")),
                lon=float(params["lon"]),
                lat=float(params["lat"]),
                altitude_m=float(params["altitude_m"]),
                range_m=float(params["range_m"]),
                cache_mb=float(params["cache_mb"]),
                cpu_hz=float(params["cpu_hz"]),
            )
            if tier == "uav":
                patrol_id = params.get("patrol", f"{sid}_patrol")
                if patrol_id not in patrols:
                    raise ScenarioError(f"{p}: UAV {sid!r} refers to a missing patrol {patrol_id!r}")
                kwargs.update(
                    patrol_xy=patrols[patrol_id],
                    speed_mps=float(params["speed_mps"]),
                    patrol_mode=params.get("patrol_mode", "pingpong"),
                )
        except KeyError as exc:
            raise ScenarioError(f"{p}: {tier} {sid!r} lacks the param {exc.args[0]!r}") from exc
        except ValueError as exc:
            raise ScenarioError(f"{p}: {tier} {sid!r}: {exc}") from exc
        servers.append(EdgeServer(**kwargs))  # type: ignore[arg-type]
    servers.sort(key=lambda s: TIERS.index(s.tier))  # stable: keeps file order within a tier
    first = root[0] if len(root) else None
    description = first.text.strip() if first is not None and first.tag is ET.Comment and first.text else ""
    return EdgeLayout(tuple(servers), description=description)
