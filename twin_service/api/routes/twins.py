"""``/v1/twins/...``: vehicle and edge-server twins, paginated, and one twin with its window history."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Path, Query

from twin_service.api.deps import StoreDep
from twin_service.api.errors import ERROR_RESPONSES
from twin_service.api.schemas import TwinDetail, TwinPage, TwinRow, TwinStateOut
from twin_service.api.service import clean_floats
from twin_service.twins import Block, Twin, TwinStore, UnknownTickError

router = APIRouter(prefix="/v1/twins", tags=["twins"], responses=ERROR_RESPONSES)

TickQuery = Annotated[int | None, Query(ge=0, description="Stored tick; default the latest.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=1000)]
TwinIdPath = Annotated[str, Path(min_length=1, max_length=256)]


def _resolve(store: TwinStore, tick: int | None) -> int:
    if tick is not None:
        return tick
    meta = store.latest_tick()
    if meta is None:
        raise UnknownTickError("no tick written yet: is the bridge running and writing to this Redis and prefix?")
    return meta.tick


def _page(block: Block, tick: int, offset: int, limit: int) -> TwinPage:
    ids = block.ids[offset : offset + limit]
    stop = offset + len(ids)
    numeric = {name: col[offset:stop] for name, col in block.columns.items()}
    rows = []
    for k, twin_id in enumerate(ids):
        state: dict[str, float | str | None] = {name: float(col[k]) for name, col in numeric.items()}
        state.update({name: values[offset + k] for name, values in block.text.items()})
        rows.append(TwinRow(id=twin_id, state=clean_floats(state)))
    return TwinPage(tick=tick, total=len(block.ids), offset=offset, limit=limit, items=rows)


def _detail(twin: Twin, kind: Literal["vehicle", "server"]) -> TwinDetail:
    return TwinDetail(
        id=twin.id,
        kind=kind,
        tick=twin.tick,
        sim_time_s=twin.sim_time_s,
        state=clean_floats(twin.state),
        history=[
            TwinStateOut(tick=h.tick, sim_time_s=h.sim_time_s, values=clean_floats(h.values)) for h in twin.history
        ],
        window_mean={k: (v if np.isfinite(v) else None) for k, v in twin.window_mean.items()},
    )


@router.get("/vehicles", response_model=TwinPage, summary="Vehicle twins, a page at a time")
def list_vehicles(store: StoreDep, tick: TickQuery = None, offset: Offset = 0, limit: Limit = 100) -> TwinPage:
    """Vehicles of the tick in row order with their current state; ``total`` counts them all."""
    n = _resolve(store, tick)
    return _page(store.vehicles_frame(n), n, offset, limit)


@router.get("/vehicles/{vehicle_id}", response_model=TwinDetail, summary="One vehicle twin")
def get_vehicle(store: StoreDep, vehicle_id: TwinIdPath, tick: TickQuery = None) -> TwinDetail:
    """Current state, the states over the sliding window (10 s) and their mean (paper B Eq. 37)."""
    return _detail(store.vehicle(vehicle_id, tick), "vehicle")


@router.get("/servers", response_model=TwinPage, summary="Edge-server twins, a page at a time")
def list_servers(store: StoreDep, tick: TickQuery = None, offset: Offset = 0, limit: Limit = 100) -> TwinPage:
    """RSUs, UAVs and the satellite in layout order with their current state (load, hosted twins, ...)."""
    n = _resolve(store, tick)
    return _page(store.servers_frame(n), n, offset, limit)


@router.get("/servers/{server_id}", response_model=TwinDetail, summary="One edge-server twin")
def get_server(store: StoreDep, server_id: TwinIdPath, tick: TickQuery = None) -> TwinDetail:
    """Current state, the states over the sliding window and their mean."""
    return _detail(store.server(server_id, tick), "server")
