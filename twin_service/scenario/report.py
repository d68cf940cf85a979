"""What provisioning did, for people: the terminal report and the layout picture (``layout.png``).

:func:`provisioning_report` reads the ``[calibration]`` a provisioned scenario records (an import, ``rural``)
and says, in a few lines, how many servers of each tier it got, the demand peak it was sized for and the share
of the twins' data expected to be dropped there against the city's calibration point.
:func:`plot_layout` draws the layout over the network: the roads, RSU sites sized by their units, the UAV
patrols and the satellite.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from twin_service.scenario.edge_servers import EdgeLayout

LAYOUT_PNG = "layout.png"


def provisioning_report(calibration: dict) -> list[str]:
    """The report lines of a provisioned scenario's ``[calibration]``; empty for one that is not provisioned."""
    c = calibration
    if "target_dropped_share" not in c or "rsus" not in c:
        return []
    rsus, sites = int(c["rsus"]), int(c.get("rsu_sites", c["rsus"]))
    where = f"{int(c.get('rsu_junction_sites', sites))} at junctions"
    if int(c.get("rsu_road_sites", 0)):
        where += f", {int(c['rsu_road_sites'])} by the road"
    stacked = int(c.get("rsu_units_max_per_site", 1))
    per_site = f"; up to {stacked} units per site" if stacked > 1 else ""
    met = "within" if c.get("target_met", c["dropped_data_share_at_peak"] <= c["target_dropped_share"]) else "ABOVE"
    return [
        f"servers: {rsus} RSUs at {sites} sites ({where}{per_site}), {int(c['uavs'])} UAVs, 1 LEO satellite",
        f"sized for the demand peak at {c['peak_time_s']:g} s: {c['vehicles_at_peak']:.0f} vehicles running "
        f"({c['vehicles_per_rsu_at_peak']:g} per RSU; at most {int(c['demand_pass_max_vehicles'])} in the pass)",
        f"expected there under nearest-server hosting: {c['dropped_data_share_at_peak']:.1%} of the twins' data "
        f"dropped, {met} the city's calibration point ({c['target_dropped_share']:.1%}); "
        f"{c['overloaded_rsu_share_at_peak']:.1%} of RSUs overloaded (city: {c['city_overloaded_rsu_share']:.0%}), "
        f"{c['satellite_hosted_share_at_peak']:.1%} of vehicles out of every RSU's and UAV's range",
    ]


def layout_title(name: str, calibration: dict) -> str:
    """The picture's title for a provisioned scenario."""
    c = calibration
    return (
        f"{name}: {c['rsus']} RSUs at {c['rsu_sites']} sites, {c['uavs']} UAVs, 1 satellite, "
        f"for {c['vehicles_at_peak']:.0f} vehicles at {c['peak_time_s']:g} s"
    )


def plot_layout(net: object, layout: EdgeLayout, path: str | Path, title: str = "") -> Path:
    """Draw ``layout`` over the roads of ``net`` (a sumolib net) into the PNG ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    roads = [np.asarray(e.getRawShape(), dtype=float)[:, :2] for e in net.getEdges()]  # type: ignore[attr-defined]
    lanes = [e.getLaneNumber() for e in net.getEdges()]  # type: ignore[attr-defined]
    fig, ax = plt.subplots(figsize=(9.5, 7.0), dpi=120)
    ax.add_collection(
        LineCollection(roads, colors="0.62", linewidths=[0.35 + 0.3 * min(n, 4) for n in lanes], zorder=1)
    )
    for server in layout.uavs:
        patrol = np.asarray(server.patrol_xy)
        ax.plot(patrol[:, 0], patrol[:, 1], color="#ff8c00", lw=2.4, alpha=0.8, zorder=3, solid_capstyle="round")
        ax.plot(*patrol[0], marker="^", color="#ff8c00", ms=7, mec="black", mew=0.5, zorder=5)
    units = Counter((s.x_m, s.y_m) for s in layout.rsus)
    xy = np.array(list(units), dtype=float).reshape(-1, 2)
    count = np.array(list(units.values()), dtype=float)
    ax.scatter(xy[:, 0], xy[:, 1], s=14 + 22 * count, c="#005aff", alpha=0.75, edgecolors="black", lw=0.4, zorder=4)
    for (x, y), n in zip(xy, count, strict=True):
        if n > 1:  # a site of several units: how many
            ax.annotate(f"{n:.0f}", (x, y), ha="center", va="center", fontsize=6, color="white", zorder=7)
    sat = layout.servers[layout.satellite_index]
    ax.plot(sat.x_m, sat.y_m, marker="*", color="#9628c8", ms=18, mec="black", mew=0.6, zorder=6)
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, net)")
    ax.set_ylabel("y (m, net)")
    most = int(count.max()) if len(count) else 1
    legend = [
        Line2D([], [], color="0.62", lw=1.2, label="roads"),
        Line2D([], [], ls="", marker="o", color="#005aff", mec="black", ms=5, label="RSU site, 1 unit"),
    ]
    if most > 1:
        size = float(np.sqrt(14 + 22 * most))
        legend.append(
            Line2D([], [], ls="", marker="o", color="#005aff", mec="black", ms=size, label=f"RSU site, {most} units")
        )
    legend += [
        Line2D([], [], color="#ff8c00", lw=2.4, marker="^", mec="black", label="UAV patrol (start)"),
        Line2D([], [], ls="", marker="*", color="#9628c8", mec="black", ms=12, label="LEO satellite (overhead)"),
    ]
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    n_sites = len(units)
    ax.set_title(
        title or f"{len(layout.rsus)} RSUs at {n_sites} sites, {len(layout.uavs)} UAVs, 1 satellite", fontsize=10
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return out
