"""AdFL client selection (paper B, Eq. 24, Alg. 3 l. 3-9): which vehicles train in a round.

A vehicle V_n is eligible when ``f_n >= f_min``, ``E_n >= E_min`` and its predicted stay in its RSU's range
``t_stay >= T_min`` (Table V: 1.5 GHz, 150 Wh, 2 s). The stay is predicted from the twin: its distance to the
host RSU and its speed, taking the worst case (heading straight out of the range), so an eligible vehicle
has time to upload its update before it leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

WH_TO_J = 3600.0


@dataclass(frozen=True)
class SelectionCriteria:
    """Paper B Table V (AdFL)."""

    f_min_hz: float = 1.5e9
    e_min_wh: float = 150.0
    t_min_s: float = 2.0


def predicted_stay_s(distance_m: ArrayLike, range_m: ArrayLike, speed_mps: ArrayLike) -> NDArray[np.float64]:
    """Worst-case time before the vehicle leaves its RSU's range: ``(R - d) / v`` (0 when out of range,
    infinite when standing still)."""
    d = np.asarray(distance_m, dtype=np.float64)
    r = np.asarray(range_m, dtype=np.float64)
    v = np.asarray(speed_mps, dtype=np.float64)
    margin = np.maximum(r - d, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        stay = np.where(v > 1e-6, margin / np.maximum(v, 1e-6), np.where(margin > 0, np.inf, 0.0))
    return stay


def eligible(
    f_hz: ArrayLike,
    energy_wh: ArrayLike,
    stay_s: ArrayLike,
    criteria: SelectionCriteria = SelectionCriteria(),
) -> NDArray[np.bool_]:
    """Eq. 24: ``f_n >= f_min and E_n >= E_min and t_stay >= T_min``, per vehicle."""
    return (
        (np.asarray(f_hz, dtype=np.float64) >= criteria.f_min_hz)
        & (np.asarray(energy_wh, dtype=np.float64) >= criteria.e_min_wh)
        & (np.asarray(stay_s, dtype=np.float64) >= criteria.t_min_s)
    )
