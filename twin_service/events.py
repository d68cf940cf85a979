"""What-if events: server outages, UAV recalls and launches, demand and channel changes, at run time.

One event model serves every way an event reaches a run:

* ``POST /v1/events`` (the API validates the body against :data:`EventSpec` and the run's servers);
* a schedule file given to ``twin-service run --events FILE`` or ``evaluate --events FILE`` (TOML or JSON,
  :func:`load_schedule`);
* the events a live run applied, kept in its recording, which its replay applies again at the same ticks.

Kinds (every duration is in simulated seconds; no duration: until ended with ``DELETE /v1/events/{id}``):

``server_outage``
    ``server`` (any RSU, UAV or the satellite) is out of service: masked (paper A Eq. 23) and every twin still
    on it fails (Eq. 14) until it has moved. The satellite stays the action of last resort, serving nobody.
``uav_recall``
    The UAV ``server`` (every UAV when omitted) lands: out of service as above, until a ``uav_launch`` (or its
    ``duration_s``).
``uav_launch``
    Ends the recall of ``server`` (every recalled UAV when omitted); it flies its patrol again.
``demand_scale``
    SUMO's demand scale (``simulation.setScale``) multiplied by ``factor``: 2 inserts twice the vehicles.
``channel``
    Every link rate (vehicle-server access links of both papers, server-server migration links; only those of
    ``server`` when given) multiplied by ``factor``.

Active events compose: outages and recalls add up, factors multiply. This module is pure (no Redis, no
SUMO): the engine's :class:`~twin_service.engine.schedule.EventSchedule` turns events into what is in service
and how links fare at each tick, for the bridge, the environments and the evaluation alike.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from twin_service.option_ranges import EVENT_FIELDS

EventKind = Literal["server_outage", "uav_recall", "uav_launch", "demand_scale", "channel"]
EVENT_KINDS: tuple[str, ...] = ("server_outage", "uav_recall", "uav_launch", "demand_scale", "channel")
MAX_SCHEDULE_EVENTS = 10_000
"""Events one schedule file may hold."""

_ID_FIELD = Field(min_length=1, max_length=256, pattern=r"^[^\n\x00]+$")


def _bounded(name: str, description: str, *, default: Any = None) -> Any:
    """A pydantic ``Field`` whose range is the one of :data:`twin_service.option_ranges.EVENT_FIELDS`."""
    bound = EVENT_FIELDS[name]
    limits: dict[str, float] = {}
    if bound.low is not None:
        limits["gt" if bound.low_open else "ge"] = bound.low
    if bound.high is not None:
        limits["le"] = bound.high
    return Field(default, allow_inf_nan=False, description=description, **limits)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: float | None = _bounded(
        "at_s", "Sim time (s) to start at; default: the bridge's next tick. Required in a schedule file."
    )
    note: str | None = Field(
        None, max_length=200, description="Free text shown with the event (the dashboard's banner)."
    )


class _Lasting(_Event):
    duration_s: float | None = _bounded(
        "duration_s", "How long it lasts, in simulated seconds (> 0); default: until ended (DELETE)."
    )


class ServerOutage(_Lasting):
    """An RSU, UAV or the satellite out of service."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "server_outage", "server": "rsu_012", "duration_s": 60}]}
    )
    kind: Literal["server_outage"]
    server: Annotated[str, _ID_FIELD] = Field(description="The server's id (`GET /v1/twins/servers`).")


class UavRecall(_Lasting):
    """A UAV (or every UAV) lands and stays down until launched."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "uav_recall", "server": "uav_03"}]})
    kind: Literal["uav_recall"]
    server: Annotated[str, _ID_FIELD] | None = Field(None, description="The UAV's id; default: every UAV.")


class UavLaunch(_Event):
    """Recalled UAVs fly again."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "uav_launch", "server": "uav_03"}]})
    kind: Literal["uav_launch"]
    server: Annotated[str, _ID_FIELD] | None = Field(None, description="The UAV's id; default: every recalled UAV.")


class DemandScale(_Lasting):
    """SUMO's demand scale multiplied by ``factor`` (vehicles inserted from then on)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "demand_scale", "factor": 2.0, "duration_s": 300}]}
    )
    kind: Literal["demand_scale"]
    factor: float = _bounded("factor", "Multiplies SUMO's demand scale (2: twice the vehicles inserted).", default=...)


class Channel(_Lasting):
    """Link rates multiplied by ``factor`` (all links, or those of one server)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "channel", "factor": 0.5, "duration_s": 120}]})
    kind: Literal["channel"]
    factor: float = _bounded("factor", "Multiplies the link rates (0.5: half the rate).", default=...)
    server: Annotated[str, _ID_FIELD] | None = Field(None, description="Only this server's links; default: every link.")


EventSpec = Annotated[
    ServerOutage | UavRecall | UavLaunch | DemandScale | Channel,
    Field(discriminator="kind"),
]
"""One event as posted or scheduled (discriminated by ``kind``)."""

_SPEC = TypeAdapter(EventSpec)


class EventError(ValueError):
    """An event that cannot apply to this run: ``field`` names what is wrong (``server``, ``at_s``, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ServerInfo:
    """What validation needs of the run's edge servers: ids and tiers, in layout order."""

    ids: tuple[str, ...]
    tiers: tuple[str, ...]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> ServerInfo:
        rows = [(str(r["id"]), str(r["tier"])) for r in records]
        return cls(tuple(i for i, _ in rows), tuple(t for _, t in rows))

    def index(self, server: str) -> int:
        return self.ids.index(server)

    @property
    def uavs(self) -> tuple[str, ...]:
        return tuple(i for i, t in zip(self.ids, self.tiers, strict=True) if t == "uav")


def parse_event(raw: Any) -> EventSpec:
    """An event from a mapping (raises pydantic's ``ValidationError``)."""
    return _SPEC.validate_python(raw)


def event_json(event: EventSpec) -> dict[str, Any]:
    """The event as a JSON-ready dict (fields left at their default omitted)."""
    return event.model_dump(mode="json", exclude_none=True)


def check_event(event: EventSpec, servers: ServerInfo, *, now_s: float | None = None) -> None:
    """Raise :class:`EventError` naming the field when ``event`` cannot apply to a run with these servers.

    A ``server_outage`` names any server; ``uav_recall``/``uav_launch`` a UAV; ``channel`` any server.
    ``now_s``: the run's current sim time; an ``at_s`` before it is refused (the past cannot be changed).
    """
    server = getattr(event, "server", None)
    if server is not None:
        if server not in servers.ids:
            shown = ", ".join(servers.ids[:5]) + (" ..." if len(servers.ids) > 5 else "")
            raise EventError("server", f"no server {server!r} in this run (servers: {shown})")
        tier = servers.tiers[servers.index(server)]
        if event.kind in ("uav_recall", "uav_launch") and tier != "uav":
            raise EventError("server", f"{server!r} is a {tier}, not a UAV: {event.kind} takes a UAV")
    elif event.kind in ("uav_recall", "uav_launch") and not servers.uavs:
        raise EventError("kind", f"{event.kind}: this run has no UAV")
    if now_s is not None and event.at_s is not None and event.at_s < now_s:
        raise EventError("at_s", f"at_s {event.at_s:g} s is before the run's current sim time {now_s:g} s")


# --------------------------------------------------------------------------------------------
# Schedule files
# --------------------------------------------------------------------------------------------


class ScheduleError(ValueError):
    """A schedule file that cannot be read or holds a bad event (the message names the file, event and field)."""


def load_schedule(path: str | Path, servers: ServerInfo | None = None) -> list[EventSpec]:
    """The events of a schedule file, in order of ``at_s`` (stable), each with an ``at_s``.

    TOML: ``[[event]]`` tables. JSON: ``{"events": [...]}`` or a list. Each event is what ``POST /v1/events``
    takes, with ``at_s`` (sim seconds) required. With ``servers`` each event is checked against the run.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from exc
    try:
        if path.suffix.lower() == ".toml":
            raw: Any = tomllib.loads(text).get("event", [])
        elif path.suffix.lower() == ".json":
            raw = json.loads(text)
            raw = raw.get("events", None) if isinstance(raw, dict) else raw
        else:
            raise ScheduleError(f"{path}: a schedule is a .toml or .json file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScheduleError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(raw, list):
        raise ScheduleError(f'{path}: expected a list of events ([[event]] in TOML, "events": [...] in JSON)')
    if not raw:
        raise ScheduleError(f"{path}: holds no event")
    if len(raw) > MAX_SCHEDULE_EVENTS:
        raise ScheduleError(f"{path}: {len(raw)} events; at most {MAX_SCHEDULE_EVENTS}")
    events: list[EventSpec] = []
    for k, item in enumerate(raw, start=1):
        where = f"{path}: event {k}"
        try:
            event = parse_event(item)
        except ValidationError as exc:
            raise ScheduleError(f"{where}: {describe_validation_error(exc)}") from None
        if event.at_s is None:
            raise ScheduleError(f"{where}: at_s: a scheduled event needs its start (sim seconds)")
        if servers is not None:
            try:
                check_event(event, servers)
            except EventError as exc:
                raise ScheduleError(f"{where}: {exc.field}: {exc}") from None
        events.append(event)
    return sorted(events, key=lambda e: float(e.at_s or 0.0))


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field: message`` (the kind's tag left out of the path)."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p not in EVENT_KINDS]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append("kind")
        msg = err["msg"]
        if err["type"] == "union_tag_invalid":
            msg = f"unknown kind {err.get('ctx', {}).get('tag')!r}; one of {', '.join(EVENT_KINDS)}"
        lines.append(f"{'.'.join(loc) or 'event'}: {msg}")
    return "; ".join(lines)


# --------------------------------------------------------------------------------------------
# An event's course in a run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSpan:
    """When an event was in force in a run: ticks with ``start_s <= t < end_s`` (sim seconds)."""

    event_id: str
    spec: EventSpec
    start_s: float
    end_s: float = math.inf

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "event": event_json(self.spec),
            "start_s": self.start_s,
            "end_s": None if math.isinf(self.end_s) else self.end_s,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> EventSpan:
        """An applied event as a recording keeps it (``ValueError`` when malformed)."""
        try:
            spec = parse_event(raw["event"])
            start = float(raw["start_s"])
            end = math.inf if raw.get("end_s") is None else float(raw["end_s"])
            event_id = str(raw["id"])
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise ValueError(f"a recorded event is malformed: {exc}") from None
        if not math.isfinite(start) or not end >= start:
            raise ValueError(f"recorded event {event_id}: its span {start:g}-{end:g} s is not a span")
        return cls(event_id, spec, start, end)


def spans_from_json(items: Sequence[Mapping[str, Any]]) -> list[EventSpan]:
    return [EventSpan.from_json(item) for item in items]


__all__ = [
    "EVENT_KINDS",
    "Channel",
    "DemandScale",
    "EventError",
    "EventKind",
    "EventSpan",
    "EventSpec",
    "ScheduleError",
    "ServerInfo",
    "ServerOutage",
    "UavLaunch",
    "UavRecall",
    "check_event",
    "describe_validation_error",
    "event_json",
    "load_schedule",
    "parse_event",
    "spans_from_json",
]
