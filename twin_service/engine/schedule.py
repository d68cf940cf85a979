"""What is in service and how links fare at each tick: the one path by which outages, UAV churn, recalls, demand
and channel changes reach the engine.

The training environments (``EnvOptions``: no UAVs, no satellite, UAV churn, an RSU outage), the evaluation
(``evaluate``, ``--events``) and the live bridge (``POST /v1/events``, ``run --events``, a replayed recording's
events) all fill an :class:`EventSchedule` with spans of simulated time and call :meth:`EventSchedule.apply`
before each tick, which hands the engine its :class:`Conditions`. So an outage posted to a live run is the same
physics as the outage a policy was trained under: the server is masked (paper A Eq. 23) and a twin still on it
fails (Eq. 14) until it has moved.

A span covers the ticks whose sim time ``t`` has ``from_s <= t < to_s``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from twin_service.events import EventSpan, EventSpec, ServerInfo


@dataclass(frozen=True)
class Conditions:
    """What the engine applies from a tick on (see :meth:`Engine.set_conditions`)."""

    active: NDArray[np.bool_] | None = None
    """``(M,)`` servers in service; None: all."""
    link_factor: NDArray[np.float64] | None = None
    """``(M,)`` multiplier of every link rate of each server; None: 1 everywhere."""
    demand_scale: float = 1.0
    """Product of the demand-scale events in force (SUMO's scale relative to the run's own)."""
    events_active: int = 0
    """Distinct events in force (a KPI: ticks under a what-if are marked)."""


@dataclass
class _Span:
    tag: str
    from_s: float
    to_s: float


@dataclass
class _FactorSpan(_Span):
    factor: float = 1.0
    server: int | None = None


class EventSchedule:
    """Spans of simulated time in which servers are out of service, links or demand scaled."""

    def __init__(self, n_servers: int) -> None:
        self.n_servers = n_servers
        self.off: list[list[_Span]] = [[] for _ in range(n_servers)]
        """Per server, the spans in which it is out of service."""
        self._links: list[_FactorSpan] = []
        self._demand: list[_FactorSpan] = []

    # ------------------------------------------------------------------------------------------
    def switch_off(self, server: int, from_s: float = -np.inf, to_s: float = np.inf, tag: str = "") -> None:
        """``server`` out of service over ``[from_s, to_s)``."""
        self.off[server].append(_Span(tag or f"off:{server}:{from_s}", from_s, to_s))

    def scale_links(
        self, factor: float, from_s: float = -np.inf, to_s: float = np.inf, server: int | None = None, tag: str = ""
    ) -> None:
        """Every link rate (of ``server`` only, when given) multiplied by ``factor`` over ``[from_s, to_s)``."""
        self._links.append(_FactorSpan(tag or f"links:{from_s}", from_s, to_s, float(factor), server))

    def scale_demand(self, factor: float, from_s: float = -np.inf, to_s: float = np.inf, tag: str = "") -> None:
        """SUMO's demand scale multiplied by ``factor`` over ``[from_s, to_s)`` (marked; SUMO applies it)."""
        self._demand.append(_FactorSpan(tag or f"demand:{from_s}", from_s, to_s, float(factor)))

    def end(self, tag: str, at_s: float) -> None:
        """End the spans of event ``tag`` at ``at_s`` (not in force from the tick at ``at_s`` on)."""
        for span in (*(s for spans in self.off for s in spans), *self._links, *self._demand):
            if span.tag == tag and span.to_s > at_s:
                span.to_s = max(at_s, span.from_s)

    def add_span(self, span: EventSpan, servers: ServerInfo, tag: str | None = None) -> None:
        """An event over its span (a ``uav_launch`` has no span of its own: it ends recalls)."""
        e = span.spec
        tag = tag or span.event_id
        server = getattr(e, "server", None)
        index = None if server is None else servers.index(server)
        if e.kind == "server_outage":
            assert index is not None
            self.switch_off(index, span.start_s, span.end_s, tag)
        elif e.kind == "uav_recall":
            targets = [index] if index is not None else [servers.index(u) for u in servers.uavs]
            for i in targets:
                self.switch_off(i, span.start_s, span.end_s, tag)
        elif e.kind == "channel":
            self.scale_links(e.factor, span.start_s, span.end_s, index, tag)
        elif e.kind == "demand_scale":
            self.scale_demand(e.factor, span.start_s, span.end_s, tag)

    # ------------------------------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        return not any(self.off) and not self._links and not self._demand

    def active_at(self, t_s: float) -> NDArray[np.bool_] | None:
        """``(M,)`` servers in service at ``t_s``; None when the schedule switches none off ever."""
        if not any(self.off):
            return None
        return np.array([not any(s.from_s <= t_s < s.to_s for s in spans) for spans in self.off])

    def at(self, t_s: float) -> Conditions:
        active = self.active_at(t_s)
        tags = {s.tag for spans in self.off for s in spans if s.from_s <= t_s < s.to_s}
        link = None
        for span in self._links:
            if span.from_s <= t_s < span.to_s:
                if link is None:
                    link = np.ones(self.n_servers)
                if span.server is None:
                    link *= span.factor
                else:
                    link[span.server] *= span.factor
                tags.add(span.tag)
        demand = 1.0
        for span in self._demand:
            if span.from_s <= t_s < span.to_s:
                demand *= span.factor
                tags.add(span.tag)
        return Conditions(active, link, demand, len(tags))

    def demand_scale_at(self, t_s: float) -> float:
        return math.prod(s.factor for s in self._demand if s.from_s <= t_s < s.to_s)

    def apply(self, engine: TakesConditions, t_s: float) -> Conditions:
        """Give ``engine`` the conditions of the tick at ``t_s`` (call before computing that tick)."""
        conditions = self.at(t_s)
        engine.set_conditions(conditions)
        return conditions


def scheduled_spans(events: Sequence[EventSpec], first_id: int = 1) -> list[EventSpan]:
    """The spans of events scheduled by ``at_s`` (a schedule file): each lasts ``duration_s`` from its ``at_s``
    (or to the end); a ``uav_launch`` ends, at its ``at_s``, the recalls of its UAV in force then (it gets a span
    of no length, so that it is kept and shown). Ids are ``s1``, ``s2``... in the order given."""
    spans: list[EventSpan] = []
    for k, event in enumerate(events, start=first_id):
        if event.at_s is None:
            raise ValueError(f"scheduled event {k} has no at_s")
        start = float(event.at_s)
        if event.kind == "uav_launch":
            for i, span in enumerate(spans):
                recall = span.spec
                if (
                    recall.kind == "uav_recall"
                    and span.start_s <= start < span.end_s
                    and (event.server is None or recall.server in (None, event.server))
                ):
                    # A launch of one UAV ends a recall of every UAV only for that one: split it.
                    if recall.server is None and event.server is not None:
                        raise ValueError(
                            f"scheduled event {k}: launching {event.server} alone while every UAV is recalled; "
                            "recall UAVs one by one to launch them one by one"
                        )
                    spans[i] = EventSpan(span.event_id, recall, span.start_s, start)
            spans.append(EventSpan(f"s{k}", event, start, start))
            continue
        duration = getattr(event, "duration_s", None)
        spans.append(EventSpan(f"s{k}", event, start, math.inf if duration is None else start + float(duration)))
    return spans


class TakesConditions(Protocol):
    def set_conditions(self, conditions: Conditions) -> None: ...


__all__ = ["Conditions", "EventSchedule", "scheduled_spans"]
