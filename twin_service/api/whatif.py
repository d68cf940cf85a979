"""What-if events as the API shows and accepts them: one view over what was posted, asked and applied.

An event is stored in three parts (``twins.keys``): as posted (by the API, a schedule file or a replayed
recording), a request to end it (``DELETE``), and its course, written by the bridge in the tick it changed.
:func:`event_views` merges them into what ``GET /v1/events``, the live stream and the dashboard show.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.exceptions import RequestValidationError

from twin_service.events import EventError, EventSpec, ServerInfo, check_event, event_json
from twin_service.twins import TwinStore
from twin_service.twins.logs import EventRecords

STATUSES = ("pending", "active", "ended", "refused")


class EventConflict(Exception):
    """An event that is well formed but cannot apply to the run as it is now (answered 409)."""


def _load(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def event_view(event_id: str, records: EventRecords) -> dict[str, Any]:
    """One event: its fields as posted, its source, status and course, and whether it was asked to end."""
    posted = _load(records.events.get(event_id))
    state = _load(records.states.get(event_id))
    end = _load(records.ends.get(event_id))
    view: dict[str, Any] = {"id": event_id, **{k: v for k, v in posted.items() if k != "id"}}
    view["status"] = state.get("status", "pending") if state.get("status") in STATUSES else "pending"
    for name in ("start_tick", "start_s", "end_tick", "end_s", "reason"):
        view[name] = state.get(name)
    view["end_requested"] = bool(end)
    view["end_requested_wall_time"] = end.get("requested_wall_time")
    return view


def event_views(records: EventRecords) -> list[dict[str, Any]]:
    """Every event, in the order posted."""
    ids = sorted(records.events, key=lambda i: (int(i), "") if i.isdigit() else (1 << 62, i))
    return [event_view(i, records) for i in ids]


def validation_error(field: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 naming ``field`` of the body."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}])


def check_against_run(
    event: EventSpec, servers: ServerInfo, records: EventRecords, now_s: float | None, run: dict[str, str]
) -> None:
    """Raise a 422 (:class:`RequestValidationError` naming the field) or :class:`EventConflict` (409) when
    ``event`` cannot apply to the run now."""
    try:
        check_event(event, servers, now_s=now_s)
    except EventError as exc:
        raise validation_error(exc.field, str(exc), getattr(event, exc.field, None)) from None
    if event.kind == "demand_scale" and run.get("replay"):
        raise EventConflict(
            f"this run replays the recording {run['replay']}: its traffic is fixed, so SUMO's demand scale cannot "
            "change (record a live run under the event instead)"
        )
    if event.kind == "uav_launch":
        recalls = [
            v
            for v in event_views(records)
            if v.get("kind") == "uav_recall" and v["status"] in ("pending", "active") and not v["end_requested"]
        ]
        if event.server is None:
            if not recalls:
                raise EventConflict("no UAV is recalled: nothing to launch")
            return
        if any(v.get("server") is None for v in recalls):
            raise EventConflict(
                f"every UAV is recalled (event {next(v['id'] for v in recalls if v.get('server') is None)}): "
                "launch them all (no server), or end that event"
            )
        if not any(v.get("server") == event.server for v in recalls):
            raise EventConflict(f"UAV {event.server!r} is not recalled: nothing to launch")


def post_event(store: TwinStore, event: EventSpec) -> str:
    """Store an event posted to the API; the bridge applies it at its next tick."""
    return store.add_event({**event_json(event), "posted_wall_time": time.time(), "source": "api"})


__all__ = ["EventConflict", "check_against_run", "event_view", "event_views", "post_event", "validation_error"]
