"""Road networks for the built scenarios: a netgenerate grid made into a geo-referenced SUMO net.

netgenerate draws the grid (optionally jittered); here the arterials get more lanes and speed, some
interior links of sparse (rural) grids are dropped (keeping the network connected, without dead
ends), and netconvert builds the net with traffic lights guessed and a transverse Mercator
projection whose origin is the grid's centre, so every net x/y has a lon/lat.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin_service.config import ScenarioError
from twin_service.scenario.tools import run_tool, tool_path


@dataclass(frozen=True)
class GridSpec:
    """A netgenerate grid and what netconvert makes of it."""

    junctions_x: int
    junctions_y: int
    block_m: float
    local_speed_mps: float
    arterial_every: int = 0
    """Every n-th grid line, counted from the central one, is an arterial; 0 = none."""
    arterial_lanes: int = 2
    arterial_speed_mps: float = 16.67
    perturb_m: float = 0.0
    """Junctions move by up to this much in x and y (uniform, seeded)."""
    drop_fraction: float = 0.0
    """Share of interior road links removed at random (the network stays connected)."""
    traffic_lights: bool = True
    """netconvert ``--tls.guess``: signals where the incoming lane speeds sum above 69.4 m/s."""
    lat_0: float = 53.55
    lon_0: float = 9.99


def _strip_comments(text: str) -> str:
    return re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)


def _grid_index(node_id: str) -> tuple[int, int]:
    """netgenerate grid ids: column letters (A, B, ..., Z, AA, ...) then the row number."""
    m = re.fullmatch(r"([A-Z]+)(\d+)", node_id)
    if not m:
        raise ScenarioError(f"unexpected netgenerate node id {node_id!r}")
    col = 0
    for ch in m.group(1):
        col = col * 26 + (ord(ch) - ord("A") + 1)
    return col - 1, int(m.group(2))


def _drop_links(edges: list[ET.Element], grid: GridSpec, seed: int) -> set[frozenset[str]]:
    """Pick interior links (both directions) to remove, keeping the network connected."""
    links = sorted({frozenset((e.get("from", ""), e.get("to", ""))) for e in edges}, key=sorted)
    nodes = sorted({n for link in links for n in link})

    def interior(link: frozenset[str]) -> bool:
        (c0, r0), (c1, r1) = (_grid_index(n) for n in sorted(link))
        on_border = (c0 == c1 and c0 in (0, grid.junctions_x - 1)) or (r0 == r1 and r0 in (0, grid.junctions_y - 1))
        return not on_border

    candidates = [link for link in links if interior(link)]
    rng = np.random.default_rng([seed, 3])
    order = rng.permutation(len(candidates))
    wanted = int(round(grid.drop_fraction * len(links)))
    kept = set(links)
    dropped: set[frozenset[str]] = set()
    for i in order:
        if len(dropped) == wanted:
            break
        link = candidates[i]
        trial = kept - {link}
        degree = {n: 0 for n in nodes}
        for lk in trial:
            for n in lk:
                degree[n] += 1
        if min(degree.values()) < 2:
            continue  # no dead ends
        # connected? (undirected BFS)
        adj: dict[str, list[str]] = {n: [] for n in nodes}
        for lk in trial:
            a, b = sorted(lk)
            adj[a].append(b)
            adj[b].append(a)
        seen = {nodes[0]}
        stack = [nodes[0]]
        while stack:
            for nb in adj[stack.pop()]:
                if nb not in seen:
                    seen.add(nb)
                    stack.append(nb)
        if len(seen) == len(nodes):
            kept = trial
            dropped.add(link)
    return dropped


def build_network(grid: GridSpec, seed: int, work: Path) -> Path:
    """netgenerate grid -> arterials / dropped links -> netconvert with projection; returns the net."""
    prefix = work / "plain"
    args = [
        tool_path("netgenerate"),
        "--grid",
        "--grid.x-number",
        grid.junctions_x,
        "--grid.y-number",
        grid.junctions_y,
        "--grid.length",
        grid.block_m,
        "--default.lanenumber",
        1,
        "--default.speed",
        grid.local_speed_mps,
        "--seed",
        seed,
        "--plain-output-prefix",
        prefix,
        "--output-file",
        work / "grid.net.xml",
    ]
    if grid.perturb_m > 0:
        args += ["--perturb-x", grid.perturb_m, "--perturb-y", grid.perturb_m]
    run_tool(args, "netgenerate")

    nodes = ET.fromstring(_strip_comments((work / "plain.nod.xml").read_text()))
    for node in nodes.iter("node"):
        node.attrib.pop("type", None)  # let netconvert decide (and guess traffic lights)
    for location in nodes.iter("location"):
        # netgenerate shifted jittered nodes to start at 0 and recorded that shift; drop it, so
        # that the offset below alone ties the plain x/y to the projection
        location.set("netOffset", "0.00,0.00")
    edges_root = ET.fromstring(_strip_comments((work / "plain.edg.xml").read_text()))
    edges = list(edges_root.iter("edge"))
    dropped = _drop_links(edges, grid, seed) if grid.drop_fraction > 0 else set()
    for e in edges:
        if frozenset((e.get("from", ""), e.get("to", ""))) in dropped:
            edges_root.remove(e)
            continue
        (c0, r0), (_, r1) = _grid_index(e.get("from", "")), _grid_index(e.get("to", ""))
        line = r0 if r0 == r1 else c0  # horizontal edges lie on row r, vertical ones on column c
        centre_line = (grid.junctions_y if r0 == r1 else grid.junctions_x) // 2
        arterial = grid.arterial_every > 0 and (line - centre_line) % grid.arterial_every == 0
        e.set("numLanes", str(grid.arterial_lanes if arterial else 1))
        e.set("speed", f"{grid.arterial_speed_mps if arterial else grid.local_speed_mps:.2f}")
        e.set("priority", "3" if arterial else "1")
    (work / "city.nod.xml").write_text(ET.tostring(nodes, encoding="unicode"))
    (work / "city.edg.xml").write_text(ET.tostring(edges_root, encoding="unicode"))

    xmin = min(float(n.get("x", 0)) for n in nodes.iter("node"))
    xmax = max(float(n.get("x", 0)) for n in nodes.iter("node"))
    ymin = min(float(n.get("y", 0)) for n in nodes.iter("node"))
    ymax = max(float(n.get("y", 0)) for n in nodes.iter("node"))
    proj = f"+proj=tmerc +lat_0={grid.lat_0} +lon_0={grid.lon_0} +ellps=WGS84 +units=m"
    net = work / "net.net.xml"
    args = [
        tool_path("netconvert"),
        "--node-files",
        work / "city.nod.xml",
        "--edge-files",
        work / "city.edg.xml",
        "--no-turnarounds",
        "true",
        "--proj",
        proj,
        # netconvert reads the plain x/y as projected coordinates plus this offset, so the
        # projection's origin (lat_0, lon_0) falls on the centre of the grid's bounding box
        "--offset.x",
        f"{(xmin + xmax) / 2:.2f}",
        "--offset.y",
        f"{(ymin + ymax) / 2:.2f}",
        "--output-file",
        net,
    ]
    if grid.traffic_lights:
        args += ["--tls.guess", "true"]
    run_tool(args, "netconvert")
    return net
