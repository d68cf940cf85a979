"""``GET /v1/cities``: the cities (or regions) whose bridges write this Redis or Redis Cluster, each under its own key
prefix; any route serves one of them with ``?city=NAME``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from twin_service.api.errors import ERROR_RESPONSES
from twin_service.api.schemas import CityList, CityOut
from twin_service.api.state import ApiState
from twin_service.twins import RunOverview, TwinStore, run_names, runs_overview

router = APIRouter(tags=["cities"], responses={503: ERROR_RESPONSES[503]})

NAMES_TTL_S = 2.0
"""How long the list of names is reused: finding them is the one read that visits every node (a SCAN)."""
MAX_CITIES_LISTED = 1000


def _cached_names(state: ApiState, store: TwinStore) -> list[str]:
    now = time.monotonic()
    cached = state.city_names
    if cached is not None and now - cached[0] < NAMES_TTL_S:
        return cached[1]
    names = run_names(store.redis, limit=MAX_CITIES_LISTED)
    state.city_names = (now, names)
    return names


def _city(view: RunOverview) -> CityOut:
    meta = view.latest
    return CityOut(
        name=view.name,
        scenario=view.scenario,
        latest_tick=None if meta is None else meta.tick,
        sim_time_s=None if meta is None else meta.sim_time_s,
        n_vehicles=None if meta is None else meta.n_vehicles,
        age_s=None if meta is None else max(time.time() - meta.wall_time, 0.0),
    )


@router.get("/v1/cities", response_model=CityList, summary="The cities in this Redis")
def list_cities(request: Request) -> CityList:
    """Every run in the service's Redis (or Redis Cluster), by the key prefix its bridge writes under, with its
    scenario and latest tick; the service's own city (the default of `?city=`) always, even before its first
    tick. Names are found by a SCAN of every node, reused for 2 s."""
    home: ApiState = request.app.state.twin  # whatever ?city= says: the list and its default are the service's
    store = home.store()
    names = _cached_names(home, store)
    if store.prefix not in names:
        names = sorted([*names, store.prefix])
    return CityList(
        default=store.prefix,
        cluster=store.cluster,
        cities=[_city(view) for view in runs_overview(store.redis, names)],
    )
