"""What-if events in a live run: read from Redis, applied at the bridge's next tick, their course written back.

Events reach a run three ways, and all go through the twin store so that ``GET /v1/events`` lists them:
``POST /v1/events`` (the API stores them), a schedule file (``run --events FILE``: stored by the bridge when the
run starts, each at its ``at_s``), and a replayed recording (the events its live run applied, at the sim times
they were in force). Before each tick :meth:`EventRunner.before_tick` starts what is due, ends what elapsed or
was asked to end (``DELETE /v1/events/{id}``), and hands the engine the conditions of the tick through the same
:class:`~twin_service.engine.schedule.EventSchedule` the training environments use. What changed is written with
the tick (``P:events:state``), so a reader sees an event in force together with the first tick it governs.

The bridge learns of new events from the counts its tick write reads back (no extra round trip per tick): an
event posted while tick N is written starts at tick N+1 or N+2. A ``demand_scale`` event sets SUMO's scale
(``simulation.setScale``) for the steps SUMO takes from then on; with SUMO in a worker process that steps up to
two ticks ahead, the new scale governs insertions from two ticks later.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from twin_service.engine import Engine
from twin_service.engine.schedule import EventSchedule
from twin_service.events import (
    EventError,
    EventSpan,
    EventSpec,
    ServerInfo,
    check_event,
    describe_validation_error,
    event_json,
    parse_event,
)
from twin_service.twins import TwinStore, TwinStoreUnavailable

_RECORD_KEYS = ("id", "posted_wall_time", "source")
"""Fields of a stored event that are not the event itself."""
_EPS_S = 1e-9


@dataclass
class Course:
    """One event's course in the run (what ``P:events:state`` holds)."""

    event_id: str
    spec: EventSpec | None
    source: str
    status: str = "pending"
    """``pending``, ``active``, ``ended`` or ``refused``."""
    start_tick: int | None = None
    start_s: float | None = None
    end_tick: int | None = None
    end_s: float | None = None
    """When it stops being in force: the first tick's sim time without it (known ahead for a duration)."""
    reason: str = ""
    end_requested: bool = False

    def state_json(self) -> str:
        state: dict[str, Any] = {"status": self.status}
        for name in ("start_tick", "start_s", "end_tick", "end_s"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, float) and math.isinf(value)):
                state[name] = value
        if self.reason:
            state["reason"] = self.reason
        return json.dumps(state, separators=(",", ":"))

    def describe(self) -> str:
        spec = self.spec
        if spec is None:
            return f"event {self.event_id}"
        what = " ".join(str(v) for k, v in event_json(spec).items() if k in ("kind", "server", "factor"))
        return f"event {self.event_id} ({what})"


@dataclass
class EventRunner:
    """The run's what-if events: their schedule, their course, and SUMO's demand scale."""

    engine: Engine
    store: TwinStore
    base_scale: float = 1.0
    """The run's own demand scale (``--scale``): a demand_scale event multiplies it."""
    notify: Callable[[str], None] | None = None
    courses: dict[str, Course] = field(default_factory=dict)
    _changed: dict[str, str] = field(default_factory=dict)
    _counts: tuple[int, int] | None = None
    _demand: float = 1.0

    def __post_init__(self) -> None:
        layout = self.engine.layout
        self.servers = ServerInfo(tuple(layout.ids), tuple(str(t) for t in layout.tiers))
        self.schedule = EventSchedule(len(layout))
        backend = self.engine.backend
        self._set_scale: Callable[[float], None] | None = getattr(backend, "set_scale", None)

    # ------------------------------------------------------------------------------------------
    # Events the bridge posts itself
    # ------------------------------------------------------------------------------------------
    def post(self, spec: EventSpec, source: str) -> str:
        """Store an event as ``POST /v1/events`` does (``source``: ``schedule`` or ``recording``)."""
        return self.store.add_event({**event_json(spec), "posted_wall_time": time.time(), "source": source})

    def post_schedule(self, events: Sequence[EventSpec]) -> list[str]:
        """A schedule file's events (each with its ``at_s``), checked against the run's servers."""
        for event in events:
            check_event(event, self.servers)
        return [self.post(e, "schedule") for e in events]

    def post_recorded(self, spans: Sequence[EventSpan]) -> list[str]:
        """A replayed recording's events, at the sim times they were in force in its live run."""
        ids = []
        for span in spans:
            update: dict[str, Any] = {"at_s": span.start_s}
            if span.spec.kind != "uav_launch":
                update["duration_s"] = None if math.isinf(span.end_s) else span.end_s - span.start_s
            ids.append(self.post(span.spec.model_copy(update=update), "recording"))
        return ids

    # ------------------------------------------------------------------------------------------
    # Each tick
    # ------------------------------------------------------------------------------------------
    def sync(self) -> None:
        """Read the events again (new ones, end requests); a Redis away now is asked again next tick."""
        try:
            records = self.store.read_events(remember=True)
        except TwinStoreUnavailable:
            return
        for event_id, text in sorted(records.events.items(), key=lambda kv: _id_order(kv[0])):
            if event_id not in self.courses:
                self.courses[event_id] = self._course(event_id, text)
        for event_id in records.ends:
            if event_id in self.courses:
                self.courses[event_id].end_requested = True
        self._counts = (len(records.events), len(records.ends))

    def _course(self, event_id: str, text: str) -> Course:
        try:
            record = json.loads(text)
            spec = parse_event({k: v for k, v in record.items() if k not in _RECORD_KEYS})
            source = str(record.get("source", "api"))
        except (ValueError, TypeError, AttributeError, ValidationError) as exc:
            detail = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            return self._refuse(Course(event_id, None, "?"), f"not an event: {detail}")
        course = Course(event_id, spec, source)
        try:
            check_event(spec, self.servers)
        except EventError as exc:
            return self._refuse(course, f"{exc.field}: {exc}")
        if spec.kind == "demand_scale" and self._set_scale is None and source != "recording":
            return self._refuse(course, "this run replays a recording: its traffic is fixed")
        return course

    def _refuse(self, course: Course, reason: str) -> Course:
        course.status, course.reason = "refused", reason
        self._changed[course.event_id] = course.state_json()
        self._say(f"{course.describe()} refused: {reason}")
        return course

    def before_tick(self, tick: int, t_s: float) -> dict[str, str]:
        """Start, end and apply the events of the tick at ``t_s``; the courses that changed (id -> JSON)."""
        counts = self.store.event_counts
        if self._counts is None or (counts is not None and counts != self._counts):
            self.sync()
        for course in sorted(self.courses.values(), key=lambda c: _id_order(c.event_id)):
            spec = course.spec
            if spec is None or course.status in ("ended", "refused"):
                continue
            if course.status == "pending":
                if course.end_requested:
                    self._end(course, tick, t_s, "ended before it started")
                elif spec.at_s is None or spec.at_s <= t_s + _EPS_S:
                    self._start(course, tick, t_s)
            elif course.end_requested:
                self.schedule.end(course.event_id, t_s)
                self._end(course, tick, t_s, "ended by request")
            elif course.end_s is not None and t_s >= course.end_s - _EPS_S:
                self._end(course, tick, course.end_s, "its duration elapsed")
        conditions = self.schedule.apply(self.engine, t_s)
        if self._set_scale is not None and conditions.demand_scale != self._demand:
            self._set_scale(self.base_scale * conditions.demand_scale)
            self._demand = conditions.demand_scale
        changed, self._changed = self._changed, {}
        return changed

    def _start(self, course: Course, tick: int, t_s: float) -> None:
        spec = course.spec
        assert spec is not None
        course.status, course.start_tick, course.start_s = "active", tick, t_s
        if spec.kind == "uav_launch":
            self._launch(course, tick, t_s)
            return
        duration = getattr(spec, "duration_s", None)
        course.end_s = math.inf if duration is None else t_s + float(duration)
        self.schedule.add_span(EventSpan(course.event_id, spec, t_s, course.end_s), self.servers)
        self._changed[course.event_id] = course.state_json()
        self._say(f"{course.describe()} in force from tick {tick} (sim {t_s:g} s)")

    def _launch(self, course: Course, tick: int, t_s: float) -> None:
        spec = course.spec
        assert spec is not None
        launched = []
        for recall in self.courses.values():
            r = recall.spec
            if r is None or r.kind != "uav_recall" or recall.status != "active":
                continue
            if spec.server is not None and r.server not in (None, spec.server):
                continue
            if r.server is None and spec.server is not None:
                self._end(course, tick, t_s, f"every UAV is recalled by event {recall.event_id}: launch them all")
                return
            self.schedule.end(recall.event_id, t_s)
            self._end(recall, tick, t_s, f"launched by event {course.event_id}")
            launched.append(recall.event_id)
        reason = f"ended the recall of event {', '.join(launched)}" if launched else "no recalled UAV to launch"
        self._end(course, tick, t_s, reason)

    def _end(self, course: Course, tick: int, t_s: float, reason: str) -> None:
        course.status, course.end_tick, course.end_s, course.reason = "ended", tick, t_s, reason
        self._changed[course.event_id] = course.state_json()
        self._say(f"{course.describe()} ended at tick {tick} (sim {t_s:g} s): {reason}")

    def _say(self, line: str) -> None:
        if self.notify is not None:
            self.notify(line)

    # ------------------------------------------------------------------------------------------
    def spans(self) -> list[EventSpan]:
        """The events that were in force in the run, with their sim-time spans (what a recording keeps)."""
        out = []
        for course in sorted(self.courses.values(), key=lambda c: _id_order(c.event_id)):
            if course.spec is None or course.start_s is None:
                continue
            end = course.end_s if course.end_s is not None else math.inf
            out.append(EventSpan(course.event_id, course.spec, course.start_s, end))
        return out


def _id_order(event_id: str) -> tuple[int, str]:
    return (int(event_id), "") if event_id.isdigit() else (1 << 62, event_id)


__all__ = ["Course", "EventRunner"]
