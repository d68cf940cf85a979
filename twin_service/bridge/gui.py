"""What sumo-gui shows of the decisions, drawn over TraCI each tick.

* Vehicles are coloured by the tier of their twin's host: RSU blue, UAV orange, satellite purple; a
  vehicle whose twin service failed this tick (Eq. 14) is red.
* A thin line joins each vehicle to its host (a polygon per vehicle, moved every tick).
* Server POIs shade from green (idle) through yellow to red (at or over L_max), and UAV POIs fly along
  their patrols. A server out of service (a what-if outage or a recalled UAV) is dark grey.

Only changes are sent: a vehicle's colour when its tier or failure flag changes, a server's colour when
its load bucket changes. Lines must move every tick, so they are the main cost (one call per vehicle).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin_service.engine import TIER_CODES, Engine
from twin_service.twins.frames import TickFrame

TIER_COLOURS = {
    TIER_CODES["rsu"]: (0, 90, 255, 255),
    TIER_CODES["uav"]: (255, 140, 0, 255),
    TIER_CODES["satellite"]: (150, 40, 200, 255),
}
FAILED_COLOUR = (220, 0, 0, 255)
OUT_OF_SERVICE_COLOUR = (70, 70, 70, 255)
"""A server out of service (``server_outage``, ``uav_recall``)."""
_OUT = -2
LINE_LAYER = 20
LOAD_BUCKETS = 10


def load_colour(load_fraction: float) -> tuple[int, int, int, int]:
    """Green at 0, yellow at 0.5, red at 1 or more."""
    f = float(np.clip(load_fraction, 0.0, 1.0))
    if f <= 0.5:
        return (int(510 * f), 200, 0, 255)
    return (255, int(200 * (1.0 - f) * 2), 0, 255)


class GuiOverlay:
    """Keeps sumo-gui's picture in step with the engine's hosting and loads."""

    def __init__(self, engine: Engine, draw_lines: bool = True) -> None:
        if not engine.backend.has_gui:
            raise ValueError("the GUI overlay needs a sumo-gui backend (run with --gui)")
        self.engine = engine
        self.api: Any = engine.backend.api
        self.draw_lines = draw_lines
        self._vehicle_style: dict[str, int] = {}
        self._lines: set[str] = set()
        self._server_bucket = np.full(len(engine.server_ids), -1)

    def update(self, frame: TickFrame) -> None:
        api = self.api
        engine = self.engine
        ids = frame.vehicle_ids
        cols = frame.vehicle_columns
        host = cols["host_index"].astype(np.int64)
        failed = cols["failed"] > 0
        tier = engine.tier_code[host] if len(host) else np.zeros(0, dtype=np.int64)
        style = np.where(failed, -1, tier)

        known = self._vehicle_style
        for vid, s in zip(ids, style.tolist(), strict=True):
            if known.get(vid) != s:
                api.vehicle.setColor(vid, FAILED_COLOUR if s < 0 else TIER_COLOURS[s])
                known[vid] = s

        current = set(ids)
        if self.draw_lines:
            sx, sy = engine.srv_x[host], engine.srv_y[host]
            vx, vy = cols["x_m"], cols["y_m"]
            for k, vid in enumerate(ids):
                line_id = f"host_{vid}"
                shape = [(float(vx[k]), float(vy[k])), (float(sx[k]), float(sy[k]))]
                colour = FAILED_COLOUR if style[k] < 0 else TIER_COLOURS[int(style[k])]
                if line_id in self._lines:
                    api.polygon.setShape(line_id, shape)
                    api.polygon.setColor(line_id, colour)
                else:
                    api.polygon.add(line_id, shape, colour, fill=False, layer=LINE_LAYER, lineWidth=1.5)
                    self._lines.add(line_id)
            for line_id in [lid for lid in self._lines if lid[5:] not in current]:
                api.polygon.remove(line_id)
                self._lines.discard(line_id)
        for vid in [v for v in known if v not in current]:
            del known[vid]

        load_fraction = np.where(engine.is_sat, 0.0, engine.load_bits / engine.cache_bits)
        bucket = np.minimum((load_fraction * LOAD_BUCKETS).astype(np.int64), LOAD_BUCKETS)
        bucket = np.where(np.asarray(engine.servers.active, dtype=bool), bucket, _OUT)
        for m in np.flatnonzero(bucket != self._server_bucket):
            if engine.is_sat[m]:
                continue
            colour = OUT_OF_SERVICE_COLOUR if bucket[m] == _OUT else load_colour(bucket[m] / LOAD_BUCKETS)
            api.poi.setColor(engine.server_ids[m], colour)
        self._server_bucket = bucket
        for m in engine.uav_idx:
            api.poi.setPosition(engine.server_ids[m], float(engine.srv_x[m]), float(engine.srv_y[m]))

    def screenshot(self, path: str, view: str = "View #0") -> None:
        """Ask sumo-gui for a PNG of the view; it is written after the next simulation step."""
        self.api.gui.screenshot(view, str(path))
