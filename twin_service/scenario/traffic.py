"""Expected traffic per edge, read from a scenario's route files (any SUMO demand format).

The edge-server placement rule weights junctions and roads by how many vehicles use them. This
module counts, per edge, the vehicles whose route crosses it:

* ``<vehicle>`` with an inner ``<route edges=...>`` or a ``route=`` reference to a named route;
* ``<flow>`` likewise, weighted by its vehicle count (``number``, or ``(end - begin) / period``,
  or ``vehsPerHour``, or ``probability`` per second);
* ``<trip>`` and ``<flow>`` with ``from``/``to`` (and ``via``): routed on the shortest path by travel
  time with sumolib. Identical origin-destination pairs are routed once; beyond ``max_od_pairs``
  distinct pairs a seeded, count-weighted sample stands in for the rest (counts are rescaled).

Persons, containers and junction-based (``fromJunction``) trips are ignored.
"""

from __future__ import annotations

import gzip
import math
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from twin_service.config import ScenarioError

MAX_OD_PAIRS = 3000
"""Distinct origin-destination pairs routed exactly; more are sampled (see module docstring)."""


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def _flow_count(attrs: dict[str, str], default_end: float) -> float:
    """How many vehicles a ``<flow>`` emits."""
    if "number" in attrs:
        return float(attrs["number"])
    begin = float(attrs.get("begin", 0.0))
    end = float(attrs.get("end", default_end))
    duration = max(0.0, end - begin)
    if "period" in attrs:
        period = attrs["period"]
        if period.startswith("exp("):  # Poisson departures with rate r per second
            return duration * float(period[4:-1])
        return duration / float(period) if float(period) > 0 else 0.0
    for key in ("vehsPerHour", "perHour"):
        if key in attrs:
            return duration * float(attrs[key]) / 3600.0
    if "probability" in attrs:
        return duration * float(attrs["probability"])
    return 0.0


def _parse_routes(
    route_files: Iterable[Path], default_end: float
) -> tuple[Counter[tuple[str, ...]], Counter[tuple[str, ...]]]:
    """(route edge sequences with counts, od (from, *via, to) tuples with counts) over all files."""
    named: dict[str, list[tuple[tuple[str, ...], float]]] = {}
    routes: Counter[tuple[str, ...]] = Counter()
    ods: Counter[tuple[str, ...]] = Counter()
    pending: list[tuple[str, float]] = []  # route references resolved after all files are read

    for path in route_files:
        if not path.is_file():
            raise ScenarioError(f"route file {path} does not exist")
        stack: list[ET.Element] = []
        dist_stack: list[str] = []
        try:
            with _open(path) as fh:
                for event, elem in ET.iterparse(fh, events=("start", "end")):
                    if event == "start":
                        stack.append(elem)
                        if elem.tag == "routeDistribution":
                            dist_stack.append(elem.get("id", ""))
                        continue
                    stack.pop()
                    tag = elem.tag
                    parent = stack[-1].tag if stack else ""
                    if tag == "route" and parent in ("routes", "additional", "routeDistribution"):
                        edges = tuple(elem.get("edges", "").split())
                        prob = float(elem.get("probability", 1.0))
                        if parent == "routeDistribution" and dist_stack and dist_stack[-1]:
                            named.setdefault(dist_stack[-1], []).append((edges, prob))
                        if elem.get("id"):
                            named.setdefault(elem.get("id", ""), []).append((edges, 1.0))
                    elif tag == "routeDistribution" and dist_stack:
                        dist_stack.pop()
                    elif tag in ("vehicle", "flow", "trip"):
                        count = _flow_count(elem.attrib, default_end) if tag == "flow" else 1.0
                        inner = elem.find("route")
                        alternatives = elem.findall("routeDistribution/route")
                        if inner is not None and inner.get("edges"):
                            routes[tuple(inner.get("edges", "").split())] += count
                        elif alternatives:  # duarouter .rou.alt.xml
                            total = sum(float(r.get("probability", 1.0)) for r in alternatives) or 1.0
                            for r in alternatives:
                                share = float(r.get("probability", 1.0)) / total
                                routes[tuple(r.get("edges", "").split())] += count * share
                        elif elem.get("route"):
                            pending.append((elem.get("route", ""), count))
                        elif elem.get("from") and elem.get("to"):
                            via = tuple(elem.get("via", "").split())
                            ods[(elem.get("from", ""), *via, elem.get("to", ""))] += count
                    if tag in ("vehicle", "flow", "trip", "person", "container", "personFlow"):
                        elem.clear()
        except ET.ParseError as exc:
            raise ScenarioError(f"{path}: not valid XML: {exc}") from exc

    for ref, count in pending:
        options = named.get(ref)
        if not options:
            continue
        total = sum(p for _, p in options) or 1.0
        for edges, prob in options:
            routes[edges] += count * prob / total
    return routes, ods


def _route_ods(net, ods: Counter[tuple[str, ...]], seed: int, max_od_pairs: int) -> Counter[tuple[str, ...]]:
    """Shortest-path routes for OD tuples, sampled when there are too many distinct ones."""
    items = sorted(ods.items())
    scale = 1.0
    if len(items) > max_od_pairs:
        rng = np.random.default_rng(seed)
        weights = np.array([c for _, c in items], dtype=np.float64)
        pick = rng.choice(len(items), size=max_od_pairs, replace=False, p=weights / weights.sum())
        total = weights.sum()
        items = [items[i] for i in sorted(pick)]
        scale = total / sum(c for _, c in items)
    routed: Counter[tuple[str, ...]] = Counter()
    for od, count in items:
        try:
            stops = [net.getEdge(e) for e in od]
        except KeyError:
            continue
        path: list[str] = []
        ok = True
        for a, b in zip(stops[:-1], stops[1:], strict=True):
            leg, _cost = net.getShortestPath(a, b, vClass="passenger")
            if leg is None:
                leg, _cost = net.getShortestPath(a, b)
            if leg is None:
                ok = False
                break
            ids = [e.getID() for e in leg]
            path.extend(ids[1:] if path and ids and path[-1] == ids[0] else ids)
        if ok and path:
            routed[tuple(path)] += count * scale
    return routed


def edge_traffic(
    net,
    route_files: Iterable[str | Path],
    seed: int = 1,
    end_s: float = 3600.0,
    max_od_pairs: int = MAX_OD_PAIRS,
) -> dict[str, float]:
    """Vehicles per edge over the whole demand (floats: flows and samples give fractions).

    ``net`` is a ``sumolib.net.Net``; ``end_s`` closes flows without an ``end``.
    """
    routes, ods = _parse_routes([Path(p) for p in route_files], default_end=end_s)
    if ods:
        routes.update(_route_ods(net, ods, seed, max_od_pairs))
    counts: dict[str, float] = {}
    for edges, count in routes.items():
        for e in edges:
            counts[e] = counts.get(e, 0.0) + count
    return {e: c for e, c in counts.items() if math.isfinite(c) and c > 0}
