"""``GET /v1/ticks/latest`` and ``GET /v1/kpis``: what the bridge wrote last, and the KPI history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from twin_service.api.deps import StateDep, StoreDep
from twin_service.api.errors import ERROR_RESPONSES
from twin_service.api.schemas import KpiHistory, KpiSampleOut, TickInfo
from twin_service.api.service import clean_floats
from twin_service.twins import UnknownTickError

router = APIRouter(tags=["ticks"], responses=ERROR_RESPONSES)


@router.get("/v1/ticks/latest", response_model=TickInfo, summary="The latest tick")
def latest_tick(state: StateDep, store: StoreDep) -> TickInfo:
    """Tick number, simulation and wall time, its age, counts and KPIs; 404 before the first tick."""
    meta = store.latest_tick()
    if meta is None:
        raise UnknownTickError("no tick written yet: is the bridge running and writing to this Redis and prefix?")
    age = state.metrics.saw_tick(meta.tick, meta.wall_time)
    kpis = store.kpis(meta.tick)
    return TickInfo(
        tick=meta.tick,
        sim_time_s=meta.sim_time_s,
        wall_time=meta.wall_time,
        age_s=age,
        n_vehicles=meta.n_vehicles,
        n_servers=meta.n_servers,
        vehicle_columns=list(meta.vehicle_columns) + list(meta.vehicle_text_columns),
        server_columns=list(meta.server_columns) + list(meta.server_text_columns),
        kpis=clean_floats(kpis),
    )


@router.get("/v1/kpis", response_model=KpiHistory, summary="KPI history")
def kpi_history(
    store: StoreDep,
    last: Annotated[int, Query(ge=1, le=3600, description="How many of the latest ticks.")] = 60,
) -> KpiHistory:
    """KPIs of the last ``last`` ticks written, oldest first (from the tick log, which outlives the window)."""
    samples = store.kpi_history(last_n=last)
    return KpiHistory(
        samples=[
            KpiSampleOut(tick=s.tick, sim_time_s=s.sim_time_s, wall_time=s.wall_time, kpis=clean_floats(s.kpis))
            for s in samples
        ]
    )
