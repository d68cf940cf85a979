"""Great-circle and slant distances between vehicles and edge servers (paper A, Eq. 1-2).

Positions are WGS84 degrees; distances are metres. Every function broadcasts, so a
``(V, 1)`` column of vehicles against an ``(M,)`` row of servers gives a ``(V, M)`` matrix.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_M = 6_371_393.0
"""Earth radius R of paper A (6,371.393 km), used for every great-circle distance."""

SPEED_OF_LIGHT_MPS = 3.0e8
"""c as paper A states it (Eq. 3)."""


def haversine_central_angle_rad(
    lat1_deg: ArrayLike, lon1_deg: ArrayLike, lat2_deg: ArrayLike, lon2_deg: ArrayLike
) -> NDArray[np.float64]:
    """Central angle eta between two points on the sphere (paper A, Eq. 1), radians.

    Standard haversine: ``hav(eta) = sin^2(dphi/2) + cos(phi1) cos(phi2) sin^2(dlambda/2)``,
    ``eta = 2 arcsin(sqrt(hav))``. The paper prints ``sin^2(dlambda) + cos cos sin^2(dphi)``,
    which swaps latitude and longitude and drops the halves (NOTES.md erratum); that reading
    overstates a 1 degree east-west step at 60 N four-fold.
    """
    phi1 = np.radians(np.asarray(lat1_deg, dtype=np.float64))
    phi2 = np.radians(np.asarray(lat2_deg, dtype=np.float64))
    dlam = np.radians(np.asarray(lon2_deg, dtype=np.float64) - np.asarray(lon1_deg, dtype=np.float64))
    hav = np.sin((phi2 - phi1) * 0.5) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam * 0.5) ** 2
    # Rounding can push hav a hair outside [0, 1] for coincident or antipodal points.
    return 2.0 * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0)))


def ground_distance_m(
    lat1_deg: ArrayLike,
    lon1_deg: ArrayLike,
    lat2_deg: ArrayLike,
    lon2_deg: ArrayLike,
    radius_m: float = EARTH_RADIUS_M,
) -> NDArray[np.float64]:
    """Great-circle ground distance ``R * eta`` (paper A, Eq. 2, RSU case), metres."""
    return radius_m * haversine_central_angle_rad(lat1_deg, lon1_deg, lat2_deg, lon2_deg)


def slant_distance_m(ground_m: ArrayLike, altitude_diff_m: ArrayLike) -> NDArray[np.float64]:
    """Straight-line distance ``sqrt((R eta)^2 + h^2)`` (paper A, Eq. 2, UAV case), metres.

    ``altitude_diff_m`` is the height of one end above the other (UAV 50 m, LEO satellite
    550 km). For the satellite this treats the Earth as flat under the footprint; for the
    few-km ground offsets of a city scenario the error against the exact spherical chord
    is below a metre at 550 km altitude.
    """
    ground = np.asarray(ground_m, dtype=np.float64)
    height = np.asarray(altitude_diff_m, dtype=np.float64)
    # Plain sqrt of squares: np.hypot's overflow guard costs time and metres never come near overflow.
    return np.sqrt(ground * ground + height * height)


def distance_matrix_m(
    veh_lat_deg: ArrayLike,
    veh_lon_deg: ArrayLike,
    srv_lat_deg: ArrayLike,
    srv_lon_deg: ArrayLike,
    srv_alt_m: ArrayLike = 0.0,
    radius_m: float = EARTH_RADIUS_M,
) -> NDArray[np.float64]:
    """Vehicle-to-server distances D_{v,m} (paper A, Eq. 1-2), shape ``(V, M)``, metres.

    Vehicles are on the ground; ``srv_alt_m`` is 0 for RSUs, the cruise altitude for UAVs and
    the orbit altitude for the satellite (scalar or shape ``(M,)``).
    """
    vehicles = unit_vectors(veh_lat_deg, veh_lon_deg)
    servers = unit_vectors(srv_lat_deg, srv_lon_deg)
    alt = np.broadcast_to(np.asarray(srv_alt_m, dtype=np.float64), servers.shape[:1])
    return distance_matrix_from_units_m(vehicles, servers, alt, radius_m)


def unit_vectors(lat_deg: ArrayLike, lon_deg: ArrayLike) -> NDArray[np.float64]:
    """Earth-centred unit vectors of points given in degrees, shape ``(n, 3)``.

    Computing these once per point (and once per run for fixed servers) moves all trigonometry off
    the ``(V, M)`` matrix in :func:`distance_matrix_from_units_m`.
    """
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64).reshape(-1))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64).reshape(-1))
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=1)


_SERIES_LIMIT_CHORD = 0.02
"""Below this chord (about 127 km on the ground) the arcsin series is exact to double precision."""


def distance_matrix_from_units_m(
    vehicle_units: NDArray[np.float64],
    server_units: NDArray[np.float64],
    srv_alt_m: NDArray[np.float64],
    radius_m: float = EARTH_RADIUS_M,
) -> NDArray[np.float64]:
    """Eq. 1-2 distances ``(V, M)`` in metres from unit vectors (see :func:`unit_vectors`).

    The haversine of Eq. 1 is the half-chord in disguise: ``hav(eta) = (c / 2)^2`` where ``c`` is the
    straight chord between the two unit vectors, so ``eta = 2 arcsin(c / 2)``. The chord comes from
    coordinate differences (not ``1 - dot``), which keeps centimetre precision at short range, and at city
    scale ``2 arcsin(c / 2) = c + c^3/24 + 3 c^5/640`` replaces the arcsin. The result equals
    :func:`haversine_central_angle_rad` to about 1e-10 relative, at a fraction of its cost.
    """
    diff = vehicle_units[:, 0, None] - server_units[None, :, 0]
    chord_sq = diff * diff
    for axis in (1, 2):
        np.subtract(vehicle_units[:, axis, None], server_units[None, :, axis], out=diff)
        diff *= diff
        chord_sq += diff
    chord = np.sqrt(chord_sq)
    if chord.size and chord.max() >= _SERIES_LIMIT_CHORD:
        eta = 2.0 * np.arcsin(np.minimum(0.5 * chord, 1.0))
    else:
        eta = chord_sq * (3.0 / 640.0)
        eta += 1.0 / 24.0
        eta *= chord_sq
        eta += 1.0
        eta *= chord
    eta *= radius_m  # ground distance R * eta
    eta *= eta
    eta += (srv_alt_m * srv_alt_m)[None, :]
    return np.sqrt(eta, out=eta)


def projected_distance_matrix_m(
    veh_x_m: ArrayLike,
    veh_y_m: ArrayLike,
    srv_x_m: ArrayLike,
    srv_y_m: ArrayLike,
    srv_alt_m: ArrayLike = 0.0,
    dtype: type[np.floating] = np.float32,
) -> NDArray[np.floating]:
    """Eq. 1-2 distances ``(V, M)`` from positions in a conformal map projection (SUMO's net x/y), metres.

    SUMO nets are projected with a conformal projection of the WGS84 ellipsoid (UTM, or a local transverse
    Mercator), whose scale factor differs from 1 by at most 4e-4 (UTM) and about 1e-7 for a local tmerc
    over a 5 km city. Plane distances therefore match true ground distances to 0.04 % or better, and
    Eq. 1's great circle on a sphere of R = 6371.393 km to about 0.3 % at 53 N: the size of the sphere's
    own error against the ellipsoid (tests/bridge/test_distances.py pins this). They cost a small fraction
    of the haversine, which matters on the bridge's per-tick hot path; float32 keeps the matrix in cache,
    and its resolution over a 10 km net is about a millimetre. The height term is as in Eq. 2.
    """
    vx = np.asarray(veh_x_m, dtype=np.float64).reshape(-1)
    vy = np.asarray(veh_y_m, dtype=np.float64).reshape(-1)
    sx = np.asarray(srv_x_m, dtype=np.float64).reshape(-1)
    sy = np.asarray(srv_y_m, dtype=np.float64).reshape(-1)
    # Coordinates relative to the servers' centre keep float32 precise.
    ox, oy = (float(sx.mean()), float(sy.mean())) if sx.size else (0.0, 0.0)
    vx32, vy32 = (vx - ox).astype(dtype), (vy - oy).astype(dtype)
    sx32, sy32 = (sx - ox).astype(dtype), (sy - oy).astype(dtype)
    alt = np.broadcast_to(np.asarray(srv_alt_m, dtype=np.float64), sx.shape)
    dist = vx32[:, None] - sx32[None, :]
    dist *= dist
    dy = np.subtract(vy32[:, None], sy32[None, :])
    dy *= dy
    dist += dy
    dist += (alt * alt).astype(dtype)[None, :]
    return np.sqrt(dist, out=dist)


def server_distance_matrix_m(
    srv_lat_deg: ArrayLike,
    srv_lon_deg: ArrayLike,
    srv_alt_m: ArrayLike = 0.0,
    radius_m: float = EARTH_RADIUS_M,
) -> NDArray[np.float64]:
    """Server-to-server distances D^mig_{m,m_d} (paper A, Eq. 2 applied to two servers), ``(M, M)``, m.

    The height term is the altitude difference of the two servers (UAV to UAV at equal
    altitude is a ground distance).
    """
    lat = np.asarray(srv_lat_deg, dtype=np.float64).reshape(-1)
    lon = np.asarray(srv_lon_deg, dtype=np.float64).reshape(-1)
    alt = np.broadcast_to(np.asarray(srv_alt_m, dtype=np.float64), lat.shape)
    ground = ground_distance_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :], radius_m)
    return slant_distance_m(ground, alt[:, None] - alt[None, :])
