"""Where the edge servers go: one documented placement rule for built and imported scenarios.

The rule (its knobs are :class:`LayoutRule`, recorded in ``params.toml`` ``[layout]``):

1. **Traffic.** Count the vehicles using each edge over the whole demand
   (:func:`twin_service.scenario.traffic.edge_traffic`). A junction's traffic is the sum over its
   incoming edges. Downtown is the traffic-weighted centroid of the junctions, and every site gets a
   downtown weight ``w(r) = 1 + downtown_gain * exp(-r^2 / (2 downtown_sigma_m^2))``.
2. **RSUs.** Candidates are the signalised junctions (``traffic_light*``), scored by traffic x
   ``w(r)``, best first (ties broken by a seeded shuffle). A candidate is taken when it lies at least
   ``spacing(r)`` from every RSU taken so far, where the spacing grows linearly from
   ``rsu_spacing_center_m`` at downtown to ``rsu_spacing_edge_m`` at ``r >= spacing_ramp_m``: RSUs are
   denser downtown. When the signalised junctions run out, the other junctions with traffic follow
   in the same order; when those run out too, every spacing shrinks by ``spacing_relax`` and the pick
   starts again (the factor used is recorded as ``rsu_spacing_scale``).

   A *provisioned* layout (an imported city, ``rural``: :class:`SiteGrowth` given) never runs out of places.
   An RSU is then a *unit*, a server with the scenario's RSU physics, and a *site* is where units stand (units of
   one site share its coordinates). The spacing relaxes no further than ``site_spacing_min_m`` downtown; when
   the junctions at that spacing are all taken, the rule goes on as an operator would:

   a. **Roadside sites for coverage.** Points every ``road_step_m`` along the roads with traffic, scored like the
      junctions (traffic x ``w(r)``), busiest first: a point out of range of every site so far becomes a site
      (a pole on a busy road that no junction site reaches). Sites are dear (a permit, power and backhaul
      each), so they go where the traffic has no server in reach, not beside ones it has.
   b. **More units per site for capacity.** Every further RSU is one more unit at an existing site: the next
      one goes to the site with the most demand per unit (D'Hondt on each site's demand: the vehicles it is
      the nearest site to at the demand peak, measured by :mod:`twin_service.scenario.provision`; its traffic
      when none is measured). Capacity then grows where the load is, a cabinet of servers at a busy junction.

3. **UAVs.** Roads (edges) are scored by traffic x ``w(r)`` at their midpoint. Each UAV takes the best
   road whose midpoint is at least ``uav_spacing_m`` from the other patrols' first roads, then its
   patrol grows forward (then backward) along the busiest connecting road, never turning back and
   never using a road (either direction) that this or another patrol already covers, until it is
   ``patrol_length_m`` long (or no road continues). UAVs fly it back and
   forth at the UAV speed, starting at its first vertex.
4. **Satellite.** One LEO satellite above the centre of the network's bounding box.

The RSU and UAV counts are given (built scenarios) or scaled to the network's bounding-box area
(imported scenarios): ``rsu_per_km2`` within [``rsu_min``, ``rsu_max``] and ``uav_per_km2`` within
[``uav_min``, ``uav_max``], the city's densities (76 RSUs and 10 UAVs on 25 km^2).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from twin_service.config import RsuParams, SatelliteParams, ScenarioError, UavParams
from twin_service.scenario.edge_servers import EdgeLayout, EdgeServer
from twin_service.scenario.geo import NetProjection, read_projection
from twin_service.scenario.traffic import edge_traffic

SIGNALISED = ("traffic_light", "traffic_light_unregulated", "traffic_light_right_on_red")
_MAX_RELAX_ROUNDS = 30

SiteDemand = Callable[[np.ndarray], np.ndarray]
"""Given sites' ``(S, 2)`` net positions, the demand of each (for stacking units: step 2b of the rule)."""


@dataclass(frozen=True)
class LayoutRule:
    """Knobs of the placement rule (module docstring); all distances in net metres."""

    rsu_count: int = 0
    """RSUs to place; 0 means scale to area: ``round(rsu_per_km2 * bbox km^2)`` within [rsu_min, rsu_max]."""
    rsu_per_km2: float = 3.04
    """76 RSUs on the 25 km^2 city: the middle of paper A's 68-84."""
    rsu_min: int = 6
    rsu_max: int = 84
    rsu_spacing_center_m: float = 350.0
    rsu_spacing_edge_m: float = 800.0
    spacing_ramp_m: float = 2500.0
    """Distance from downtown at which the spacing reaches ``rsu_spacing_edge_m``."""
    spacing_relax: float = 0.9
    downtown_gain: float = 2.0
    downtown_sigma_m: float = 1000.0
    uav_count: int = 10
    """UAVs to place; 0 means scale to area: ``round(uav_per_km2 * bbox km^2)`` within [uav_min, uav_max]."""
    uav_per_km2: float = 0.4
    """Paper A's 10 UAVs on the 25 km^2 city."""
    uav_min: int = 2
    uav_max: int = 10
    uav_spacing_m: float = 900.0
    patrol_length_m: float = 1500.0
    """Target patrol length; paper A gives none (our reading of "patrolling busy roads": 1-2 km)."""

    def rsu_target(self, projection: NetProjection) -> int:
        if self.rsu_count > 0:
            return self.rsu_count
        return int(np.clip(round(self.rsu_per_km2 * projection.area_km2), self.rsu_min, self.rsu_max))

    def uav_target(self, projection: NetProjection) -> int:
        if self.uav_count > 0:
            return self.uav_count
        return int(np.clip(round(self.uav_per_km2 * projection.area_km2), self.uav_min, self.uav_max))

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class SiteGrowth:
    """How a provisioned layout grows past one RSU per junction (module docstring, steps 2a-2b).

    Built scenarios with a given RSU count (``city``) place without it and keep their layout; the knobs are
    recorded in ``[layout]`` of the scenarios that use them.
    """

    site_spacing_min_m: float = 30.0
    """Floor of the relaxed spacing between RSU sites, downtown (it grows outward with the spacing ramp). A real
    net splits a large crossing into several junction nodes a few tens of metres apart: closer than this, two
    sites are one crossing, serve the same vehicles, and a second unit at one does the job of a second site.
    (The Hamburg test field's 131 junction sites reach 34 m, so its layout is what it was before units.) A floor
    of 100 m halves the units the rule asks for there (62 at 51 sites) but stacks them where nearest-server
    hosting loads them, at the edge of their capacity (24 % of the units overloaded): the sticky default of the
    calibration then loses 8.6 % of packets at Hamburg's peak against 3.1 % (README, importing a real city)."""
    road_step_m: float = 50.0
    """Candidate roadside sites every this many metres along the roads with traffic."""

    def as_dict(self) -> dict[str, float]:
        return {key: float(value) for key, value in asdict(self).items()}


def _downtown_weight(xy: np.ndarray, centre: np.ndarray, rule: LayoutRule) -> np.ndarray:
    r2 = np.sum((xy - centre) ** 2, axis=-1)
    return 1.0 + rule.downtown_gain * np.exp(-r2 / (2.0 * rule.downtown_sigma_m**2))


def _spacing(r: np.ndarray, rule: LayoutRule) -> np.ndarray:
    ramp = np.clip(r / rule.spacing_ramp_m, 0.0, 1.0)
    return rule.rsu_spacing_center_m + (rule.rsu_spacing_edge_m - rule.rsu_spacing_center_m) * ramp


def _tiebreak(n: int, seed: int, salt: int) -> np.ndarray:
    return np.random.default_rng([seed, salt]).permutation(n)


def _junctions(net, traffic: dict[str, float]):
    """Non-internal junctions with their traffic (sum over incoming edges) and signalised flag."""
    ids, xy, score, signalised = [], [], [], []
    for node in net.getNodes():
        if node.getType() in ("internal", "dead_end") or not node.getIncoming():
            continue
        t = sum(traffic.get(e.getID(), 0.0) for e in node.getIncoming())
        ids.append(node.getID())
        xy.append(node.getCoord()[:2])
        score.append(t)
        signalised.append(node.getType() in SIGNALISED)
    return ids, np.asarray(xy, dtype=np.float64).reshape(-1, 2), np.asarray(score), np.asarray(signalised)


def _pick_rsus(
    xy: np.ndarray,
    score: np.ndarray,
    signalised: np.ndarray,
    centre: np.ndarray,
    target: int,
    rule: LayoutRule,
    seed: int,
    floor_scale: float | None = None,
) -> tuple[list[int], float]:
    """Greedy spaced pick; returns chosen candidate indices and the spacing scale used.

    ``floor_scale``: the spacing relaxes no further (the pick then returns what fits at that scale).
    """
    weight = score * _downtown_weight(xy, centre, rule)
    tie = _tiebreak(len(xy), seed, 1)
    # Signalised first, then the rest; each group by weight, best first; only sites with traffic.
    order = np.lexsort((tie, -weight, ~signalised))
    order = order[weight[order] > 0]
    r = np.hypot(*(xy - centre).T)
    base = _spacing(r, rule)
    scale = 1.0
    for _ in range(_MAX_RELAX_ROUNDS):
        chosen: list[int] = []
        for i in order:
            if chosen:
                d = np.hypot(*(xy[chosen] - xy[i]).T)
                if d.min() < base[i] * scale:
                    continue
            chosen.append(int(i))
            if len(chosen) == target:
                return chosen, scale
        if len(order) <= len(chosen):
            return chosen, scale  # fewer sites with traffic than RSUs wanted
        if floor_scale is not None and scale <= floor_scale:
            return chosen, scale  # every junction the floor spacing allows is taken
        scale *= rule.spacing_relax
        if floor_scale is not None:
            scale = max(scale, floor_scale)
    return chosen, scale


def _edge_midpoint(edge) -> np.ndarray:
    shape = np.asarray(edge.getRawShape(), dtype=np.float64)[:, :2]
    return shape.mean(axis=0) if len(shape) == 2 else shape[len(shape) // 2]


def _road_key(edge) -> frozenset:
    """Both directions of a road share one key: a patrol covers the road, not a lane."""
    return frozenset((edge.getFromNode().getID(), edge.getToNode().getID()))


def _build_patrol(first, edge_score: dict[str, float], target_m: float, taken: set) -> list:
    """Chain of edges starting with ``first``: forward along the busiest continuation, then backward.

    Roads in ``taken`` (other UAVs' patrols) are not used; the chain's roads are added to it.
    """
    chain = [first]
    used = {first.getID()}
    taken.add(_road_key(first))
    length = first.getLength()

    def best(candidates, avoid_node):
        options = [
            e
            for e in candidates
            if e.getID() not in used
            and _road_key(e) not in taken
            and e.allows("passenger")
            and avoid_node not in (e.getFromNode(), e.getToNode())
        ]
        options = [e for e in options if edge_score.get(e.getID(), 0.0) > 0] or options
        if not options:
            return None
        return max(options, key=lambda e: (edge_score.get(e.getID(), 0.0), e.getID()))

    while length < target_m:  # forward: never straight back to the node we came from
        last = chain[-1]
        nxt = best(list(last.getOutgoing().keys()), last.getFromNode())
        if nxt is None:
            break
        chain.append(nxt)
        used.add(nxt.getID())
        taken.add(_road_key(nxt))
        length += nxt.getLength()
    while length < target_m:  # backward from the first edge
        head = chain[0]
        prev = best(list(head.getIncoming().keys()), head.getToNode())
        if prev is None:
            break
        chain.insert(0, prev)
        used.add(prev.getID())
        taken.add(_road_key(prev))
        length += prev.getLength()
    return chain


def _chain_shape(chain) -> tuple[tuple[float, float], ...]:
    points: list[tuple[float, float]] = []
    for edge in chain:
        for x, y, *_ in edge.getRawShape():
            p = (round(float(x), 2), round(float(y), 2))
            if not points or points[-1] != p:
                points.append(p)
    return tuple(points)


def _pick_patrols(
    net, traffic: dict[str, float], centre: np.ndarray, rule: LayoutRule, count: int, seed: int
) -> list[tuple[tuple[float, float], ...]]:
    edges = [e for e in net.getEdges() if e.allows("passenger") and traffic.get(e.getID(), 0.0) > 0]
    if not edges or count <= 0:
        return []
    mid = np.array([_edge_midpoint(e) for e in edges])
    weight = np.array([traffic[e.getID()] for e in edges]) * _downtown_weight(mid, centre, rule)
    order = np.lexsort((_tiebreak(len(edges), seed, 2), -weight))
    edge_score = {e.getID(): float(w) for e, w in zip(edges, weight, strict=True)}
    anchors: list[np.ndarray] = []
    patrols = []
    taken: set = set()
    for i in order:
        if _road_key(edges[i]) in taken:
            continue
        if anchors and np.min(np.hypot(*(np.array(anchors) - mid[i]).T)) < rule.uav_spacing_m:
            continue
        chain = _build_patrol(edges[i], edge_score, rule.patrol_length_m, taken)
        patrols.append(_chain_shape(chain))
        anchors.append(mid[i])
        if len(patrols) == count:
            break
    return patrols


def _r(x: float, digits: int) -> float:
    return round(float(x), digits)


@dataclass(frozen=True)
class NetSites:
    """What the placement rule reads from a net and its demand, once: :func:`place_on_sites` places any count.

    Reading the net and routing the demand take about a second on a real city; placing is fast, so a
    count search (``twin_service.scenario.provision``) reads once and places many times.
    """

    net: object
    """The sumolib net (without internal edges)."""
    projection: NetProjection
    traffic: dict[str, float]
    traffic_source: str
    junction_xy: np.ndarray
    junction_score: np.ndarray
    signalised: np.ndarray
    centre: np.ndarray
    """Downtown: the traffic-weighted centroid of the junctions (net metres)."""

    @property
    def busy_junctions(self) -> int:
        """Junctions with traffic: the most sites at junctions the rule can place."""
        return int((self.junction_score > 0).sum())

    def road_points(self, step_m: float, rule: LayoutRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate roadside sites every ``step_m`` (step 2a): positions, their road's traffic, their score."""
        cache = self.__dict__.setdefault("_road_points", {})  # read once per search, not once per count
        key = (step_m, rule.downtown_gain, rule.downtown_sigma_m)
        if key not in cache:
            cache[key] = _road_points(self, step_m, rule)
        return cache[key]


def read_sites(net_file: str | Path, route_files: list[str | Path], seed: int = 1, end_s: float = 3600.0) -> NetSites:
    """Read a geo-referenced net, its traffic per edge and junction, and downtown (step 1 of the rule)."""
    import sumolib

    projection = read_projection(net_file)  # raises on a net without geo-reference
    try:
        net = sumolib.net.readNet(str(net_file), withInternal=False)
    except Exception as exc:  # sumolib raises bare exceptions on broken nets
        raise ScenarioError(f"cannot read the network {net_file}: {exc}") from exc
    traffic = edge_traffic(net, route_files, seed=seed, end_s=end_s)
    traffic_source = "routes"
    if not traffic:  # no usable demand: fall back to road capacity (length x lanes)
        traffic = {e.getID(): e.getLength() * e.getLaneNumber() for e in net.getEdges()}
        traffic_source = "road length x lanes (no routable demand found)"

    ids, jxy, jscore, signalised = _junctions(net, traffic)
    if len(ids) == 0:
        raise ScenarioError(f"{net_file}: no junctions to place RSUs on")
    if jscore.sum() > 0:
        centre = (jxy * jscore[:, None]).sum(axis=0) / jscore.sum()
    else:
        centre = np.asarray(projection.center_xy)
    return NetSites(net, projection, traffic, traffic_source, jxy, jscore, signalised, np.round(centre, 2))


def place_edge_servers(
    net_file: str | Path,
    route_files: list[str | Path],
    rule: LayoutRule,
    rsu: RsuParams,
    uav: UavParams,
    satellite: SatelliteParams,
    seed: int = 1,
    end_s: float = 3600.0,
    description: str = "",
) -> tuple[EdgeLayout, dict[str, float | int | str]]:
    """Apply the placement rule to a geo-referenced net and its demand.

    Returns the layout and what the rule found (centre, count, spacing scale...) for ``[layout]``.
    """
    sites = read_sites(net_file, route_files, seed=seed, end_s=end_s)
    return place_on_sites(sites, rule, rsu, uav, satellite, seed=seed, description=description, name=str(net_file))


def _polyline_points(shape: np.ndarray, step_m: float) -> np.ndarray:
    """Points every ``step_m`` along a polyline, half a step in from its start (its middle if shorter)."""
    seg = np.hypot(*np.diff(shape, axis=0).T)
    total = float(seg.sum())
    if total <= 0:
        return shape[:1]
    at = np.arange(step_m / 2, total, step_m) if total > step_m else np.array([total / 2])
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return np.column_stack([np.interp(at, cum, shape[:, 0]), np.interp(at, cum, shape[:, 1])])


def _road_points(sites: NetSites, step_m: float, rule: LayoutRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate roadside sites: points along every road with traffic, their road's traffic and their score."""
    xy, traffic = [], []
    for edge in sites.net.getEdges():
        t = sites.traffic.get(edge.getID(), 0.0)
        if t <= 0:
            continue
        points = _polyline_points(np.asarray(edge.getRawShape(), dtype=np.float64)[:, :2], step_m)
        xy.append(points)
        traffic.append(np.full(len(points), t))
    if not xy:
        return np.empty((0, 2)), np.empty(0), np.empty(0)
    points, road_traffic = np.concatenate(xy), np.concatenate(traffic)
    return points, road_traffic, road_traffic * _downtown_weight(points, sites.centre, rule)


def _coverage_sites(
    taken_xy: np.ndarray, points: np.ndarray, score: np.ndarray, range_m: float, wanted: int, seed: int
) -> list[int]:
    """Step 2a: road points out of range of every site so far, busiest first; each one taken covers its range."""
    from scipy.spatial import cKDTree  # deferred: only provisioning needs it

    if wanted <= 0 or len(points) == 0:
        return []
    tree = cKDTree(points)
    covered = np.zeros(len(points), dtype=bool)
    if len(taken_xy):
        dist, _ = cKDTree(taken_xy).query(points, distance_upper_bound=range_m)
        covered = dist <= range_m
    order = np.lexsort((_tiebreak(len(points), seed, 3), -score))
    chosen: list[int] = []
    for i in order:
        if covered[i]:
            continue
        chosen.append(int(i))
        covered[tree.query_ball_point(points[i], range_m)] = True
        if len(chosen) == wanted:
            break
    return chosen


def _stack_units(demand: np.ndarray, extra: int) -> np.ndarray:
    """Step 2b: units per site, one each and ``extra`` more, each to the site with the most demand per unit."""
    units = np.ones(len(demand), dtype=np.int64)
    weight = np.maximum(np.asarray(demand, dtype=np.float64), 1e-9)
    heap = [(-w, i) for i, w in enumerate(weight)]  # (-demand per unit, site): ties to the earlier site
    heapq.heapify(heap)
    for _ in range(extra):
        _, i = heapq.heappop(heap)
        units[i] += 1
        heapq.heappush(heap, (-weight[i] / units[i], i))
    return units


def site_limit(sites: NetSites, rule: LayoutRule, growth: SiteGrowth, rsu: RsuParams, seed: int = 1) -> int:
    """The most RSU sites the rule places (steps 2 and 2a): every further RSU is a unit at one of them."""
    floor = min(1.0, growth.site_spacing_min_m / rule.rsu_spacing_center_m)
    jxy, weight = sites.junction_xy, sites.junction_score
    chosen, _ = _pick_rsus(jxy, weight, sites.signalised, sites.centre, len(weight) + 1, rule, seed, floor)
    points, _, score = sites.road_points(growth.road_step_m, rule)
    return len(chosen) + len(_coverage_sites(sites.junction_xy[chosen], points, score, rsu.range_m, len(points), seed))


def place_on_sites(
    sites: NetSites,
    rule: LayoutRule,
    rsu: RsuParams,
    uav: UavParams,
    satellite: SatelliteParams,
    seed: int = 1,
    description: str = "",
    name: str = "the network",
    growth: SiteGrowth | None = None,
    site_demand: SiteDemand | None = None,
) -> tuple[EdgeLayout, dict[str, float | int | str]]:
    """Steps 2-4 of the rule on sites read by :func:`read_sites`; as :func:`place_edge_servers`.

    Without ``growth`` there must be a junction with traffic for every RSU (built scenarios with a given
    count); with it the layout grows by roadside sites and units per site (steps 2a-2b), stacking by
    ``site_demand`` (default: each site's traffic).
    """
    projection, centre, jxy, signalised = sites.projection, sites.centre, sites.junction_xy, sites.signalised
    target = rule.rsu_target(projection)
    floor = None if growth is None else min(1.0, growth.site_spacing_min_m / rule.rsu_spacing_center_m)
    chosen, scale = _pick_rsus(jxy, sites.junction_score, signalised, centre, target, rule, seed, floor)
    site_xy, site_traffic = jxy[chosen], sites.junction_score[chosen]
    road: list[int] = []
    units = np.ones(len(chosen), dtype=np.int64)
    if len(chosen) < target:
        if growth is None:
            raise ScenarioError(f"{name}: only {len(chosen)} junctions carry traffic; cannot place {target} RSUs")
        points, road_traffic, score = sites.road_points(growth.road_step_m, rule)
        road = _coverage_sites(site_xy, points, score, rsu.range_m, target - len(chosen), seed)
        site_xy = np.concatenate([site_xy, points[road]])
        site_traffic = np.concatenate([site_traffic, road_traffic[road]])
        units = np.ones(len(site_xy), dtype=np.int64)
        if len(site_xy) < target:
            demand = site_traffic if site_demand is None else site_demand(np.round(site_xy, 2))
            units = _stack_units(demand, target - len(site_xy))
    patrols = _pick_patrols(sites.net, sites.traffic, centre, rule, rule.uav_target(projection), seed)

    servers: list[EdgeServer] = []
    site_xy = np.round(site_xy, 2)
    rsu_xy = np.repeat(site_xy, units, axis=0)
    lon, lat = projection.to_lonlat(rsu_xy[:, 0], rsu_xy[:, 1])
    width = max(2, len(str(len(rsu_xy) - 1)))
    for k in range(len(rsu_xy)):
        servers.append(
            EdgeServer(
                id=f"rsu_{k:0{width}d}",
                tier="rsu",
                x_m=_r(rsu_xy[k, 0], 2),
                y_m=_r(rsu_xy[k, 1], 2),
                lon=_r(lon[k], 8),
                lat=_r(lat[k], 8),
                altitude_m=0.0,
                range_m=rsu.range_m,
                cache_mb=rsu.cache_mb,
                cpu_hz=rsu.cpu_hz,
            )
        )
    for k, shape in enumerate(patrols):
        (x, y) = shape[0]
        ulon, ulat = projection.to_lonlat(x, y)
        servers.append(
            EdgeServer(
                id=f"uav_{k:02d}",
                tier="uav",
                x_m=x,
                y_m=y,
                lon=_r(ulon, 8),
                lat=_r(ulat, 8),
                altitude_m=uav.altitude_m,
                range_m=uav.range_m,
                cache_mb=uav.cache_mb,
                cpu_hz=uav.cpu_hz,
                patrol_xy=shape,
                speed_mps=uav.speed_mps,
                patrol_mode="pingpong",
            )
        )
    cx, cy = (_r(v, 2) for v in projection.center_xy)
    slon, slat = projection.to_lonlat(cx, cy)
    servers.append(
        EdgeServer(
            id="sat_0",
            tier="satellite",
            x_m=cx,
            y_m=cy,
            lon=_r(slon, 8),
            lat=_r(slat, 8),
            altitude_m=satellite.altitude_m,
            range_m=math.inf,
            cache_mb=satellite.cache_mb,
            cpu_hz=satellite.cpu_hz,
        )
    )
    rsu_spacings = _spacing(np.hypot(*(jxy[chosen] - centre).T), rule) * scale
    found: dict[str, float | int | str] = {
        "rule": "see twin_service/scenario/layout.py",
        **rule.as_dict(),
        "rsu_target": target,
        "rsus_placed": len(rsu_xy),
        "rsus_signalised": int(signalised[chosen].sum()),
        "rsu_spacing_scale": _r(scale, 6),
        "rsu_min_spacing_m": _r(rsu_spacings.min(), 2) if len(chosen) else 0.0,
        "uav_target": rule.uav_target(projection),
        "uavs_placed": len(patrols),
        "downtown_x_m": float(centre[0]),
        "downtown_y_m": float(centre[1]),
        "traffic_source": sites.traffic_source,
        "seed": seed,
    }
    if growth is not None:
        found.update(
            {
                **growth.as_dict(),
                "rsu_sites": len(site_xy),
                "rsu_junction_sites": len(chosen),
                "rsu_road_sites": len(road),
                "rsu_units_stacked": int(units.sum() - len(units)),
                "rsu_units_max_per_site": int(units.max()) if len(units) else 0,
            }
        )
    return EdgeLayout(tuple(servers), description=description), found
