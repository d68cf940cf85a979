"""``GET /v1/health``: can the service decide now; is Redis reachable; how old is the latest tick; which
policies are served; how often the bridge fell back lately."""

from __future__ import annotations

import time

from fastapi import APIRouter, status

from twin_service.api.deps import JSONBody, StateDep
from twin_service.api.errors import RETRY_AFTER_S
from twin_service.api.health import assess
from twin_service.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get(
    "/v1/health",
    response_model=Health,
    summary="Service health",
    responses={
        503: {
            "model": Health,
            "description": "`unavailable`: Redis is not configured or unreachable; `degraded`: Redis answers but the "
            "service cannot decide for the latest tick (`reasons` says why).",
        }
    },
)
def health(state: StateDep) -> JSONBody:
    """200 (`ok`) when Redis answers and the default policies can decide for the latest tick, or no tick is
    written yet. 503 with ``Retry-After`` when the service cannot do its job now: `unavailable` (Redis not
    configured or unreachable) or `degraded` (Redis answers, but no decision can be made: the run's records are
    missing, the stored layout does not match the tick, or a default model or the workload predictor does not
    fit the run; `reasons` lists why). `recent_fallback_ticks` counts the bridge's ticks, of its last
    30, decided locally because it got no decision from a service."""
    report = assess(state)
    age = None
    if report.latest_tick is not None and report.latest_tick_wall_time is not None:
        age = state.metrics.saw_tick(report.latest_tick, report.latest_tick_wall_time)
    body = {
        "status": report.status,
        "redis": report.redis,
        "detail": report.detail,
        "reasons": report.reasons,
        "latest_tick": report.latest_tick,
        "latest_tick_age_s": age,
        "recent_ticks": report.recent_ticks,
        "recent_fallback_ticks": report.recent_fallback_ticks,
        "checked_at": time.time(),
        "defaults": state.default_policies(),
        "policies": state.catalogue(),
    }
    if report.status == "ok":
        return JSONBody(body)
    return JSONBody(body, status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER_S)})
