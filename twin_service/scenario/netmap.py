"""A SUMO network's roads as light polylines, for drawing a map (the web dashboard).

Only what a map needs is read: each normal edge's centre line (its ``shape``, or the shape of its middle
lane) and its lane count; internal edges (junction interiors) are left out, and a road whose two
directions are separate edges is drawn once. Shapes are simplified (Douglas-Peucker) to a tolerance
well under a pixel at city zoom. The net is streamed (``iterparse``), so a large city costs memory for
the result only.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from twin_service.config import ScenarioError


@dataclass(frozen=True)
class Road:
    """One road drawn as a polyline in net coordinates (metres)."""

    edge_id: str
    lanes: int
    """Lanes in the drawn direction (the wider one where the two directions differ)."""
    xy: tuple[float, ...]
    """Flat ``x0, y0, x1, y1, ...``, rounded to 0.1 m."""


@dataclass(frozen=True)
class RoadMap:
    """Roads of a net and its bounding box ``(xmin, ymin, xmax, ymax)`` in net metres."""

    boundary: tuple[float, float, float, float]
    roads: tuple[Road, ...]


def _parse_shape(text: str) -> NDArray[np.float64]:
    points = [p.split(",") for p in text.split()]
    return np.array([(float(p[0]), float(p[1])) for p in points], dtype=np.float64)


def simplify(points: NDArray[np.float64], tolerance_m: float) -> NDArray[np.float64]:
    """Douglas-Peucker: drop the points of a polyline that lie within ``tolerance_m`` of the kept line.

    The first and last points are always kept. Iterative (an explicit stack), so a long polyline
    cannot exhaust the recursion limit.
    """
    n = len(points)
    if n <= 2 or tolerance_m <= 0:
        return points
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        a, b = points[first], points[last]
        inner = points[first + 1 : last]
        ab = b - a
        squared = float(ab @ ab)
        if squared == 0.0:  # (also when the length squared underflows)
            dist = np.hypot(*(inner - a).T)
        else:  # distance to the segment a-b (clamped projection)
            t = np.clip(((inner - a) @ ab) / squared, 0.0, 1.0)
            dist = np.hypot(*(inner - (a + t[:, None] * ab)).T)
        k = int(np.argmax(dist))
        if dist[k] > tolerance_m:
            split = first + 1 + k
            keep[split] = True
            stack += [(first, split), (split, last)]
    return points[keep]


def read_road_map(net_file: str | Path, tolerance_m: float = 1.0) -> RoadMap:
    """The roads of a (possibly gzipped) SUMO net; :class:`ScenarioError` if it cannot be read."""
    path = Path(net_file)
    if not path.is_file():
        raise ScenarioError(f"no SUMO network at {path}")
    opener = gzip.open if path.name.endswith(".gz") else open
    boundary: tuple[float, float, float, float] | None = None
    shapes: dict[tuple[str, str], tuple[str, int, NDArray[np.float64]]] = {}
    try:
        with opener(path, "rb") as fh:
            for _, elem in ET.iterparse(fh, events=("end",)):
                if elem.tag == "location":
                    values = [float(v) for v in elem.get("convBoundary", "0,0,0,0").split(",")]
                    if len(values) == 4:
                        boundary = (values[0], values[1], values[2], values[3])
                elif elem.tag == "edge":
                    if elem.get("function", "normal") == "normal":
                        lanes = elem.findall("lane")
                        shape = elem.get("shape") or (lanes[len(lanes) // 2].get("shape") if lanes else None)
                        if shape:
                            ends = (elem.get("from", ""), elem.get("to", ""))
                            reverse = (ends[1], ends[0])
                            if reverse in shapes and ends[0] != ends[1]:
                                # The other direction is drawn already: keep it, widened to the wider side.
                                eid, n, pts = shapes[reverse]
                                shapes[reverse] = (eid, max(n, len(lanes)), pts)
                            else:
                                shapes[ends if ends[0] != ends[1] else (elem.get("id", ""), "")] = (
                                    elem.get("id", ""),
                                    max(len(lanes), 1),
                                    _parse_shape(shape),
                                )
                    elem.clear()
                elif elem.tag in ("junction", "connection", "tlLogic", "roundabout", "request"):
                    elem.clear()
    except (ET.ParseError, OSError, EOFError, ValueError, IndexError) as exc:
        raise ScenarioError(f"{path}: not a readable SUMO network: {exc}") from exc
    roads = tuple(
        Road(eid, n, tuple(np.round(simplify(pts, tolerance_m), 1).ravel().tolist()))
        for eid, n, pts in shapes.values()
        if len(pts) >= 2
    )
    if boundary is None:
        if not roads:
            raise ScenarioError(f"{path}: no <location> and no edges; is this a SUMO .net.xml?")
        xy = np.concatenate([np.reshape(r.xy, (-1, 2)) for r in roads])
        boundary = (float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max()))
    return RoadMap(boundary=boundary, roads=roads)
