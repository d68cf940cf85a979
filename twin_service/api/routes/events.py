"""``/v1/events``: what-if events at run time (outages, UAV recalls and launches, demand and channel changes).

Posting and ending need the API key (when the service has one); listing is a read. Events are stored in Redis
and applied by the bridge at its next tick (``twin_service.bridge.events``), so they outlive an API restart.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, status
from fastapi.responses import JSONResponse

from twin_service.api.deps import StoreDep, require_api_key
from twin_service.api.errors import AUTH_ERROR_RESPONSES, ERROR_RESPONSES
from twin_service.api.schemas import ErrorBody, EventList, EventOut
from twin_service.api.whatif import EventConflict, check_against_run, event_view, event_views, post_event
from twin_service.events import EventSpec, ServerInfo
from twin_service.twins import TwinStore, UnknownTwinError

router = APIRouter(prefix="/v1/events", tags=["events"], responses=ERROR_RESPONSES)
write_router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    dependencies=[Depends(require_api_key)],
    responses={**ERROR_RESPONSES, **AUTH_ERROR_RESPONSES},
)

EventIdPath = Annotated[str, Path(min_length=1, max_length=32, description="The event's id (from POST).")]

EXAMPLES = {
    "outage": {
        "summary": "An RSU fails for a minute",
        "value": {"kind": "server_outage", "server": "rsu_012", "duration_s": 60},
    },
    "satellite": {"summary": "The satellite out of service", "value": {"kind": "server_outage", "server": "sat"}},
    "recall": {"summary": "Recall one UAV", "value": {"kind": "uav_recall", "server": "uav_03"}},
    "recall_all": {"summary": "Recall every UAV for 5 minutes", "value": {"kind": "uav_recall", "duration_s": 300}},
    "launch": {"summary": "Launch a recalled UAV", "value": {"kind": "uav_launch", "server": "uav_03"}},
    "demand": {
        "summary": "Twice the traffic for 10 minutes, from sim time 1800 s",
        "value": {"kind": "demand_scale", "factor": 2.0, "duration_s": 600, "at_s": 1800},
    },
    "channel": {
        "summary": "Every link at half its rate for 2 minutes",
        "value": {"kind": "channel", "factor": 0.5, "duration_s": 120, "note": "heavy rain"},
    },
}


def _servers(store: TwinStore) -> tuple[ServerInfo, dict[str, str]]:
    layout = store.read_layout()
    run = store.read_run_meta()
    if not layout:
        raise EventConflict("no run in Redis: an event applies to a running bridge (start one, then post)")
    return ServerInfo.from_records(layout), run


def _find(store: TwinStore, event_id: str) -> dict:
    records = store.read_events()
    if event_id not in records.events:
        raise UnknownTwinError(f"no event {event_id!r} in this run")
    return event_view(event_id, records)


@write_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EventOut,
    summary="Inject a what-if event",
    responses={
        409: {
            "model": ErrorBody,
            "description": "It cannot apply to the run now (no run; a replay; nothing to launch).",
        }
    },
)
def create_event(
    store: StoreDep,
    event: Annotated[EventSpec, Body(openapi_examples=EXAMPLES)],
) -> JSONResponse:
    """Post an event; the bridge applies it at its next tick (or at ``at_s``) and the event's ``status`` says when
    it is in force (``GET /v1/events/{id}``). A server out of service is masked (paper A Eq. 23) and every twin
    still on it fails (Eq. 14) until it has moved; ``duration_s`` counts simulated seconds. 422 names the field
    that is wrong (an unknown kind or server, a negative or non-finite duration or factor, a start in the past)."""
    servers, run = _servers(store)
    latest = store.latest_tick()
    check_against_run(event, servers, store.read_events(), latest.sim_time_s if latest else None, run)
    event_id = post_event(store, event)
    view = _find(store, event_id)
    return JSONResponse(
        EventOut(**view).model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"/v1/events/{event_id}"},
    )


@router.get("", response_model=EventList, summary="Every what-if event of the run")
def list_events(
    store: StoreDep,
    status_: Annotated[
        Literal["pending", "active", "ended", "refused"] | None,
        Query(alias="status", description="Only events with this status."),
    ] = None,
) -> EventList:
    """Active, pending and past events, in the order posted, with when each was in force."""
    views = event_views(store.read_events())
    return EventList(
        events=[EventOut(**v) for v in views if status_ is None or v["status"] == status_],
        active=sum(v["status"] == "active" for v in views),
        pending=sum(v["status"] == "pending" for v in views),
    )


@router.get("/{event_id}", response_model=EventOut, summary="One what-if event")
def get_event(store: StoreDep, event_id: EventIdPath) -> EventOut:
    return EventOut(**_find(store, event_id))


@write_router.delete(
    "/{event_id}",
    response_model=EventOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="End an event early",
    responses={200: {"model": EventOut, "description": "The event had ended already (or was refused): unchanged."}},
)
def end_event(store: StoreDep, event_id: EventIdPath) -> JSONResponse:
    """The bridge ends the event at its next tick (202); an event that is over already is returned as it is (200)."""
    view = _find(store, event_id)
    if view["status"] in ("ended", "refused"):
        return JSONResponse(EventOut(**view).model_dump(mode="json"), status_code=status.HTTP_200_OK)
    store.request_event_end(event_id, {"requested_wall_time": time.time()})
    return JSONResponse(
        EventOut(**_find(store, event_id)).model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED
    )
