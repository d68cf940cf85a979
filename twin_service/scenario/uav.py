"""UAV patrol kinematics: where each UAV is at sim time t, vectorised over all UAVs (and times).

A UAV starts at its patrol's first vertex at t = 0 and flies at constant ground speed along the
polyline, either back and forth (``pingpong``: at the last vertex it turns round) or round a loop
(``loop``: from the last vertex straight back to the first). Pure numpy: no SUMO, no I/O. Build a
:class:`PatrolTable` once, then call :func:`uav_positions` every tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twin_service.scenario.edge_servers import EdgeLayout


@dataclass(frozen=True)
class PatrolTable:
    """Patrol polylines of ``U`` UAVs, padded to a common vertex count ``K`` (``K >= 2``)."""

    vertices_xy: NDArray[np.float64]
    """``(U, K, 2)`` vertices, net metres; padded by repeating the last vertex."""
    cum_m: NDArray[np.float64]
    """``(U, K)`` distance along the patrol at each vertex; padded with the patrol's length."""
    length_m: NDArray[np.float64]
    """``(U,)`` length of one pass (for a loop, including the closing leg)."""
    n_segments: NDArray[np.intp]
    """``(U,)`` number of real segments (0 for a UAV hovering at one point)."""
    speed_mps: NDArray[np.float64]
    """``(U,)`` ground speed."""
    loop: NDArray[np.bool_]
    """``(U,)`` True for loop patrols, False for ping-pong."""

    def __len__(self) -> int:
        return int(self.length_m.shape[0])


def _clean(points: Sequence[Sequence[float]], loop: bool) -> NDArray[np.float64]:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        raise ValueError("a patrol needs at least one vertex")
    keep = np.ones(len(pts), dtype=bool)
    keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)  # zero-length segments have no heading
    pts = pts[keep]
    if loop and len(pts) >= 2 and np.any(pts[-1] != pts[0]):
        pts = np.vstack([pts, pts[:1]])
    return pts


def patrol_table(
    patrols: Sequence[Sequence[Sequence[float]]],
    speed_mps: ArrayLike,
    loop: ArrayLike = False,
) -> PatrolTable:
    """Pack patrol polylines (each a sequence of ``(x, y)``) into a :class:`PatrolTable`.

    ``speed_mps`` and ``loop`` broadcast to one value per patrol.
    """
    n = len(patrols)
    loops = np.broadcast_to(np.asarray(loop, dtype=bool), (n,)).copy()
    speeds = np.broadcast_to(np.asarray(speed_mps, dtype=np.float64), (n,)).copy()
    cleaned = [_clean(p, bool(lp)) for p, lp in zip(patrols, loops, strict=True)]
    k = max([2, *(len(p) for p in cleaned)])
    vertices = np.zeros((n, k, 2))
    cum = np.zeros((n, k))
    for i, pts in enumerate(cleaned):
        vertices[i, : len(pts)] = pts
        vertices[i, len(pts) :] = pts[-1]
        seg = np.hypot(*np.diff(pts, axis=0).T) if len(pts) > 1 else np.zeros(0)
        cum[i, 1 : len(pts)] = np.cumsum(seg)
        cum[i, len(pts) :] = cum[i, len(pts) - 1]
    return PatrolTable(
        vertices_xy=vertices,
        cum_m=cum,
        length_m=cum[:, -1].copy(),
        n_segments=np.array([len(p) - 1 for p in cleaned], dtype=np.intp),
        speed_mps=speeds,
        loop=loops,
    )


def patrol_table_from_layout(layout: EdgeLayout) -> PatrolTable:
    """The patrol table of a layout's UAVs, in layout order."""
    uavs = layout.uavs
    return patrol_table(
        [u.patrol_xy for u in uavs],
        [u.speed_mps for u in uavs],
        [u.patrol_mode == "loop" for u in uavs],
    )


def uav_positions(table: PatrolTable, t_s: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Positions and headings of all UAVs at sim time(s) ``t_s``.

    Parameters
    ----------
    table:
        The UAVs' patrols (:func:`patrol_table`).
    t_s:
        Sim time in seconds since the UAVs took off, a scalar or an array of shape ``T``.

    Returns
    -------
    xy_m, heading_deg:
        ``(*T, U, 2)`` net positions in metres and ``(*T, U)`` headings in degrees clockwise from
        north (SUMO/TraCI's angle convention); a hovering UAV reports heading 0.
    """
    t = np.asarray(t_s, dtype=np.float64)
    n = len(table)
    length = table.length_m
    travelled = np.maximum(t, 0.0)[..., None] * table.speed_mps  # (*T, U)
    safe_len = np.where(length > 0, length, 1.0)
    period = np.where(table.loop, safe_len, 2.0 * safe_len)
    s = np.mod(travelled, period)
    backwards = (~table.loop) & (s > safe_len)
    s = np.where(backwards, 2.0 * safe_len - s, s)
    s = np.where(length > 0, s, 0.0)

    # Segment k holds s when cum[k] <= s < cum[k+1]; padding and the far end clip to the last one.
    cum = np.broadcast_to(table.cum_m, (*s.shape, table.cum_m.shape[1]))
    k = np.sum(cum[..., 1:] <= s[..., None], axis=-1)
    k = np.clip(k, 0, np.maximum(table.n_segments - 1, 0))
    u = np.broadcast_to(np.arange(n), s.shape)
    p0 = table.vertices_xy[u, k]
    p1 = table.vertices_xy[u, k + 1]
    c0 = table.cum_m[u, k]
    seg_len = table.cum_m[u, k + 1] - c0
    frac = np.where(seg_len > 0, (s - c0) / np.where(seg_len > 0, seg_len, 1.0), 0.0)
    xy = p0 + frac[..., None] * (p1 - p0)

    direction = np.where(backwards[..., None], p0 - p1, p1 - p0)
    heading = np.degrees(np.arctan2(direction[..., 0], direction[..., 1])) % 360.0
    heading = np.where(seg_len > 0, heading, 0.0)
    return xy, heading
