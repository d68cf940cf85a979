"""What Redis says about a run's health: are the run's records there, how fresh is the latest tick, and in
how many recent ticks did the bridge decide locally (the ``fallback`` KPI: no decision came from a service).

Read by the bridge's health check (``python -m twin_service.webstack check``) and by the decision service's
(``GET /v1/health``, ``twin_service.api.health``); light to import (no SUMO, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twin_service.twins.frames import TickMeta
from twin_service.twins.store import TwinStore

FALLBACK_WINDOW_TICKS = 30
"""Recent ticks over which the fallback share is counted."""
MOSTLY = 0.5
"""More than this share of fallback ticks is "mostly fallback"."""


@dataclass
class RunHealth:
    latest: TickMeta | None
    missing: list[str] = field(default_factory=list)
    """The run's records that Redis does not hold (``P:run`` with its run marker, ``P:layout``)."""
    recent_ticks: int = 0
    recent_fallback_ticks: int = 0

    @property
    def mostly_fallback(self) -> bool:
        return self.recent_ticks > 0 and self.recent_fallback_ticks > MOSTLY * self.recent_ticks

    def fallback_reason(self) -> str | None:
        """A sentence when the bridge decided locally in most of its recent ticks."""
        if not self.mostly_fallback:
            return None
        return (
            f"the bridge decided locally (fallback) in {self.recent_fallback_ticks} of its last "
            f"{self.recent_ticks} ticks: it gets no decisions from a decision service"
        )


def read_run_health(store: TwinStore, window: int = FALLBACK_WINDOW_TICKS) -> RunHealth:
    """A few reads of Redis; raises ``TwinStoreUnavailable`` when it does not answer."""
    health = RunHealth(store.latest_tick())
    if health.latest is None:
        return health
    run = store.read_run_meta()
    if not run:
        health.missing.append("the run's metadata")
    elif "run_id" not in run:
        health.missing.append("the run marker")
    if not store.read_layout():
        health.missing.append("the edge-server layout")
    recent = store.kpi_history(last_n=window)
    health.recent_ticks = len(recent)
    health.recent_fallback_ticks = sum(1 for s in recent if s.kpis.get("fallback", 0.0) > 0.0)
    return health
