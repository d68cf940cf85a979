"""``GET /v1/decisions/log``: why each tick's decisions were made, per vehicle or per tick, and as a live stream.

The bridge appends every tick's decisions to a Redis stream bounded by ``TWIN_DECISION_LOG_TICKS``
(``twin_service.twins.declog``): per vehicle who decided (the policy and its version, or the bridge's local
fallback), host and target, rho, the size of its Eq. 23 mask, the policy's three best-scored servers and the
target's predicted load the policy saw. These are reads (open unless ``TWIN_API_KEY_READS``).
"""

from __future__ import annotations

import math
import threading
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from twin_service.api.deps import StateDep, StoreDep
from twin_service.api.errors import ERROR_RESPONSES, RETRY_AFTER_S
from twin_service.api.live import KEEPALIVE_S, RETRY_MS, sse
from twin_service.api.schemas import DecisionLogOut, ErrorBody
from twin_service.config import BITS_PER_MB
from twin_service.twins import TwinStore, TwinStoreUnavailable, UnknownTwinError
from twin_service.twins.declog import DecisionLogError, DecisionLogRecord, VehicleDecision

router = APIRouter(prefix="/v1/decisions/log", tags=["decisions"], responses=ERROR_RESPONSES)

VehicleQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=256, pattern=r"^[^\n\x00]+$", description="A vehicle id; default: every vehicle."),
]
TickQuery = Annotated[int | None, Query(ge=0, le=1_000_000_000)]
FOLLOW_POLL_S = 0.5
"""How often a follower of the log stream looks for new entries."""


def _server_ids(state: Any, store: TwinStore) -> list[str]:
    return [str(s.get("id")) for s in state.run_context(store).layout]


def _name(ids: list[str], index: int) -> str | None:
    return ids[index] if 0 <= index < len(ids) else None


def vehicle_row(d: VehicleDecision, ids: list[str]) -> dict[str, Any]:
    return {
        "tick": d.tick,
        "sim_time_s": d.sim_time_s,
        "source": d.source,
        "fallback": d.fallback,
        "host_server_id": _name(ids, d.host),
        "target_server_id": _name(ids, d.target),
        "migrates": d.host >= 0 and d.host != d.target,
        "rho": round(d.rho, 4),
        "mask_size": d.mask_size,
        "top": [
            {"server_id": _name(ids, i), "score": round(s, 4)}
            for i, s in zip(d.top_index, d.top_score, strict=True)
            if i >= 0 and _name(ids, i) is not None
        ],
        "predicted_load_mb": round(d.predicted_load_bits / BITS_PER_MB, 3)
        if math.isfinite(d.predicted_load_bits)
        else 0.0,
    }


def tick_row(r: DecisionLogRecord) -> dict[str, Any]:
    rows = r.rows
    n = len(rows.vehicle_ids)
    rho = rows.rho.astype(np.float64)
    return {
        "tick": r.tick,
        "sim_time_s": r.sim_time_s,
        "source": r.source,
        "fallback": r.fallback,
        "vehicles": n,
        "migrations": int(((rows.host >= 0) & (rows.host != rows.target)).sum()),
        "offloading": int((rho > 0).sum()),
        "mean_rho": round(float(rho.mean()), 4) if n else None,
    }


def _span(store: TwinStore) -> dict[str, Any]:
    span = store.decision_log_span()
    if span is None:
        return {"oldest_tick": None, "newest_tick": None, "ticks": 0}
    return {"oldest_tick": span[0], "newest_tick": span[1], "ticks": span[2]}


@router.get("", response_model=DecisionLogOut, summary="The decision log: why each decision was made")
def decision_log(
    state: StateDep,
    store: StoreDep,
    vehicle: VehicleQuery = None,
    last: Annotated[int, Query(ge=1, le=1000, description="How many of the newest ticks.")] = 10,
    from_tick: Annotated[int | None, Query(ge=0, le=1_000_000_000, description="From this tick on.")] = None,
    to_tick: Annotated[int | None, Query(ge=0, le=1_000_000_000, description="Up to this tick.")] = None,
) -> JSONResponse:
    """With ``vehicle``: its ``last`` newest decisions within ``[from_tick, to_tick]``, oldest first (404 when the
    log holds none for it). Without: a summary of each of the ``last`` newest ticks. The log holds the newest
    ``TWIN_DECISION_LOG_TICKS`` ticks (``log`` says which)."""
    try:
        if vehicle is not None:
            found = store.vehicle_decisions(vehicle, last=last, from_tick=from_tick, to_tick=to_tick)
            span = _span(store)
            if not found:
                held = f"ticks {span['oldest_tick']}-{span['newest_tick']}" if span["ticks"] else "nothing yet"
                raise UnknownTwinError(f"no decision for vehicle {vehicle!r} in the decision log (it holds {held})")
            ids = _server_ids(state, store)
            body = {"vehicle_id": vehicle, "decisions": [vehicle_row(d, ids) for d in found], "ticks": None}
        else:
            records = store.decision_log(last=min(last, 600), from_tick=from_tick, to_tick=to_tick)
            span = _span(store)
            body = {"vehicle_id": None, "decisions": None, "ticks": [tick_row(r) for r in records]}
    except DecisionLogError as exc:
        return JSONResponse({"detail": f"the decision log holds an unreadable entry: {exc}"}, status_code=409)
    return JSONResponse({**body, "log": span})


class _Followers:
    """How many log streams this process serves (``TWIN_DECISION_LOG_MAX_CLIENTS``)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def enter(self, limit: int) -> bool:
        with self.lock:
            if self.count >= limit:
                return False
            self.count += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.count -= 1


_FOLLOWERS = _Followers()


@router.get(
    "/stream",
    summary="The decision log as it grows (Server-Sent Events)",
    response_class=Response,
    responses={
        200: {
            "description": "One `decision` event per new tick: the vehicle's decision (with `vehicle`), or the "
            "tick's summary; `gone` once the vehicle has left the simulation, and the stream ends. 404: the "
            "vehicle has no decision in the log's newest ticks (it is not in the run now).",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": 'id: 1820\nevent: decision\ndata: {"tick":1820,"source":"api:dm-mappo-city@1+'
                    'af-marl-city@1","host_server_id":"rsu_012","target_server_id":"rsu_013","migrates":true,'
                    '"rho":0.62,"mask_size":6,"top":[...],"predicted_load_mb":182.4}\n\n',
                }
            },
        },
        503: {
            "model": ErrorBody,
            "description": "Redis unreachable, or this process follows the log for as many clients as it may.",
        },
    },
)
async def follow_decision_log(
    request: Request,
    state: StateDep,
    vehicle: VehicleQuery = None,
    max_events: Annotated[int | None, Query(ge=1, le=1_000_000, description="End after this many events.")] = None,
) -> Response:
    """Follows the log from its newest entry on: what ``GET /v1/decisions/log`` gives, as it is written."""
    if not _FOLLOWERS.enter(state.settings.decision_log_max_clients):
        return JSONResponse(
            {
                "detail": "this service follows the decision log for as many clients as it may "
                "(TWIN_DECISION_LOG_MAX_CLIENTS); retry later"
            },
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        store = state.store()
        span = await run_in_threadpool(store.decision_log_span)
        ids = await run_in_threadpool(_server_ids, state, store)
        if vehicle is not None:  # a vehicle in the run now (its decision in the newest entries), or 404
            recent = await run_in_threadpool(store.vehicle_decisions, vehicle, 1, max(span[1] - 2, 0) if span else None)
            if not recent:
                raise UnknownTwinError(f"vehicle {vehicle!r} has no decision in the newest ticks of the decision log")
    except BaseException:
        _FOLLOWERS.leave()
        raise
    start = span[1] - 1 if span is not None else 0  # the newest entry first, then each new one

    async def events() -> Any:
        after, sent, seen, quiet = start, 0, False, 0.0
        try:
            yield f"retry: {RETRY_MS}\n\n"
            while max_events is None or sent < max_events:
                if await request.is_disconnected():
                    return
                try:
                    records = await run_in_threadpool(store.decision_log_after, after, 8)
                except (TwinStoreUnavailable, DecisionLogError):
                    records = []
                for record in records:
                    after = record.tick
                    if vehicle is None:
                        data = tick_row(record)
                    else:
                        row = record.rows.row(vehicle)
                        if row is None:
                            if seen:
                                yield sse("gone", {"vehicle_id": vehicle, "tick": record.tick})
                                return
                            continue
                        seen = True
                        data = vehicle_row(record.decision(row), ids)
                    yield sse("decision", data, record.tick)
                    sent += 1
                    quiet = 0.0
                    if max_events is not None and sent >= max_events:
                        return
                await anyio.sleep(FOLLOW_POLL_S)
                quiet += FOLLOW_POLL_S
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
        finally:
            _FOLLOWERS.leave()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
