"""``GET /metrics``: Prometheus text exposition of this app's registry."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from twin_service.api.deps import StateDep
from twin_service.twins import TwinStoreError

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(state: StateDep) -> Response:
    """Request latency per route, decisions served, latest tick age (refreshed now when Redis answers)."""
    if state.redis_configured:
        try:
            meta = state.store().latest_tick()
        except TwinStoreError:
            meta = None  # the gauge keeps its last value; /v1/health tells why
        if meta is not None:
            state.metrics.saw_tick(meta.tick, meta.wall_time)
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
