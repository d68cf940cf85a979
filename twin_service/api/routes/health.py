"""``GET /v1/health``: is Redis reachable, how old is the latest tick, which policies are served."""

from __future__ import annotations

from fastapi import APIRouter, status

from twin_service.api.deps import JSONBody, StateDep
from twin_service.api.errors import RETRY_AFTER_S
from twin_service.api.schemas import Health
from twin_service.api.state import NO_REDIS_HINT
from twin_service.twins import TwinStoreUnavailable

router = APIRouter(tags=["health"])


@router.get(
    "/v1/health",
    response_model=Health,
    summary="Service health",
    responses={503: {"model": Health, "description": "Redis is not configured or unreachable."}},
)
def health(state: StateDep) -> JSONBody:
    """200 when Redis answers (the latest tick may still be null before the bridge's first tick);
    503 with ``Retry-After`` when it does not."""
    body = {"defaults": state.default_policies(), "policies": state.catalogue()}
    unavailable = {"status": "unavailable", "latest_tick": None, "latest_tick_age_s": None}
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    if not state.redis_configured:
        body |= unavailable | {"redis": "not configured", "detail": NO_REDIS_HINT}
        return JSONBody(body, status.HTTP_503_SERVICE_UNAVAILABLE, headers=retry)
    try:
        store = state.store()
        store.ping()
        meta = store.latest_tick()
    except TwinStoreUnavailable as exc:
        body |= unavailable | {"redis": "unreachable", "detail": str(exc)}
        return JSONBody(body, status.HTTP_503_SERVICE_UNAVAILABLE, headers=retry)
    age = None if meta is None else state.metrics.saw_tick(meta.tick, meta.wall_time)
    body |= {
        "status": "ok",
        "redis": "ok",
        "detail": "" if meta is not None else "no tick written yet",
        "latest_tick": None if meta is None else meta.tick,
        "latest_tick_age_s": age,
    }
    return JSONBody(body)
