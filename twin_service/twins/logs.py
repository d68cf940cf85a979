"""The run's logs in Redis: what-if events (``P:events*``) and the decision log (``P:decisions``).

Events are posted by the API and applied by the bridge, which keeps a copy to put back into a Redis that lost
them (:meth:`TwinLogs.read_events` with ``remember``). The decision log is a stream with one entry per tick,
id ``{tick}-0``, appended in each tick's transaction by the writer and read by tick range or by vehicle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from twin_service.twins.declog import DecisionLogEntry, DecisionLogRecord, VehicleDecision, unpack_rows
from twin_service.twins.errors import unavailable_as_error
from twin_service.twins.reader import TwinReader
from twin_service.twins.server import RedisClient, hash_reply

DEFAULT_DECISION_LOG_TICKS = 600
"""Ticks of decisions kept in the decision log by default (``TWIN_DECISION_LOG_TICKS``; 10 minutes at 1 s)."""
_LOG_SCAN_BATCH = 16
"""Decision-log entries read per round trip when looking for one vehicle's decisions."""


@dataclass
class EventRecords:
    """The run's what-if events as stored: id -> JSON of each hash, and the id counter."""

    events: dict[str, str] = field(default_factory=dict)
    ends: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    seq: int = 0


class TwinLogs(TwinReader):
    """The events and the decision log of the run under ``prefix`` (see :class:`TwinReader` for the parameters).

    ``tick_ttl_s`` is the safety-net expiry of the log's keys; ``decision_log_maxlen`` the approximate number of
    ticks the decision log keeps (Redis trims whole stream nodes, so a few more may be held).
    """

    def __init__(
        self,
        redis_client: RedisClient,
        prefix: str = "twin",
        window: int = 10,
        *,
        tick_ttl_s: int = 86_400,
        decision_log_maxlen: int = DEFAULT_DECISION_LOG_TICKS,
    ) -> None:
        if tick_ttl_s < 1:
            raise ValueError(f"tick_ttl_s must be >= 1, got {tick_ttl_s}")
        super().__init__(redis_client, prefix, window)
        self.tick_ttl_s = tick_ttl_s
        self.decision_log_maxlen = decision_log_maxlen
        self._last_logged_tick: int | None = None
        """The newest tick in the decision log after the writer's last successful write; None: ask Redis."""
        self._events: EventRecords | None = None
        """The writer's copy of the run's events, put back with the run's records into a Redis that lost them."""

    # ------------------------------------------------------------------------------------------
    # What-if events
    # ------------------------------------------------------------------------------------------

    @unavailable_as_error
    def add_event(self, record: dict[str, Any]) -> str:
        """Store a new event (its JSON-ready ``record``, to which its id is added); return the id (``1``, ``2``...)."""
        event_id = str(int(self.redis.incr(self.keys.events_seq)))
        self.redis.hset(self.keys.events, event_id, json.dumps({"id": event_id, **record}, separators=(",", ":")))
        return event_id

    @unavailable_as_error
    def request_event_end(self, event_id: str, record: dict[str, Any]) -> bool:
        """Ask the bridge to end event ``event_id`` at its next tick; False if it was asked already."""
        return bool(self.redis.hsetnx(self.keys.events_end, event_id, json.dumps(record, separators=(",", ":"))))

    @unavailable_as_error
    def read_events(self, remember: bool = False) -> EventRecords:
        """Every event of the run as stored, read in one transaction. ``remember``: the writer keeps this copy and
        puts it back, with the run's records, into a Redis that lost them."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.events)
        pipe.hgetall(self.keys.events_end)
        pipe.hgetall(self.keys.events_state)
        pipe.get(self.keys.events_seq)
        events, ends, states, seq = pipe.execute()

        def text(raw: Any) -> dict[str, str]:
            return {k.decode(): v.decode() for k, v in hash_reply(raw).items()}

        records = EventRecords(text(events), text(ends), text(states), int(seq or 0))
        if remember:
            if self._events is not None:  # what this writer stored survives a read of an emptied Redis
                for mine, theirs in (
                    (self._events.events, records.events),
                    (self._events.ends, records.ends),
                    (self._events.states, records.states),
                ):
                    theirs.update({k: v for k, v in mine.items() if k not in theirs})
                records.seq = max(records.seq, self._events.seq)
            self._events = EventRecords(dict(records.events), dict(records.ends), dict(records.states), records.seq)
        return records

    # ------------------------------------------------------------------------------------------
    # The decision log
    # ------------------------------------------------------------------------------------------

    def _queue_decisions(self, pipe: Any, entry: DecisionLogEntry) -> None:
        """XADD of one tick's decisions to the decision log (id ``{tick}-0``), trimmed to ``decision_log_maxlen``."""
        pipe.xadd(
            self.keys.decisions,
            {
                "tick": str(entry.tick),
                "sim_time_s": repr(float(entry.sim_time_s)),
                "source": entry.source,
                "fallback": "1" if entry.fallback else "0",
                "rows": entry.rows,
            },
            id=f"{entry.tick}-0",
            maxlen=self.decision_log_maxlen,
            approximate=True,
        )
        pipe.expire(self.keys.decisions, self.tick_ttl_s)

    @unavailable_as_error
    def append_decisions(self, entry: DecisionLogEntry) -> bool:
        """Append one tick's decisions outside a tick's write (the last tick of a run); False if already there."""
        if self.decision_log_maxlen <= 0:
            return False
        newest = self.redis.xrevrange(self.keys.decisions, count=1)
        if newest and int(newest[0][0].split(b"-")[0]) >= entry.tick:
            return False
        pipe = self.redis.pipeline(transaction=True)
        self._queue_decisions(pipe, entry)
        pipe.execute()
        self._last_logged_tick = entry.tick
        return True

    @staticmethod
    def _log_record(fields: dict[bytes, bytes]) -> DecisionLogRecord:
        return DecisionLogRecord(
            tick=int(fields[b"tick"]),
            sim_time_s=float(fields[b"sim_time_s"]),
            source=fields[b"source"].decode(),
            fallback=fields[b"fallback"] == b"1",
            rows=unpack_rows(fields[b"rows"]),
        )

    @unavailable_as_error
    def decision_log(
        self, last: int = 10, from_tick: int | None = None, to_tick: int | None = None
    ) -> list[DecisionLogRecord]:
        """The ``last`` newest ticks of the decision log within ``[from_tick, to_tick]``, oldest first."""
        if last <= 0:
            return []
        raw = self.redis.xrevrange(self.keys.decisions, _tick_id(to_tick, "+"), _tick_id(from_tick, "-"), count=last)
        return [self._log_record(f) for _id, f in reversed(raw)]

    @unavailable_as_error
    def decision_log_after(self, tick: int, count: int = 8) -> list[DecisionLogRecord]:
        """Up to ``count`` entries of ticks after ``tick``, oldest first (what a log follower has not seen)."""
        raw = self.redis.xrange(self.keys.decisions, f"({tick}-0", "+", count=count)
        return [self._log_record(f) for _id, f in raw]

    @unavailable_as_error
    def decision_log_span(self) -> tuple[int, int, int] | None:
        """(oldest tick, newest tick, entries) of the decision log; None while it is empty."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.xrange(self.keys.decisions, count=1)
        pipe.xrevrange(self.keys.decisions, count=1)
        pipe.xlen(self.keys.decisions)
        first, newest, length = pipe.execute()
        if not first or not newest:
            return None
        return int(first[0][0].split(b"-")[0]), int(newest[0][0].split(b"-")[0]), int(length)

    @unavailable_as_error
    def vehicle_decisions(
        self, vehicle_id: str, last: int = 10, from_tick: int | None = None, to_tick: int | None = None
    ) -> list[VehicleDecision]:
        """The ``last`` newest decisions for one vehicle within ``[from_tick, to_tick]``, oldest first.

        Reads the log backwards, a few entries per round trip, and stops once it has ``last`` of them or has gone
        past the vehicle's first tick (a SUMO vehicle id is never reused within a run)."""
        found: list[VehicleDecision] = []
        upper = _tick_id(to_tick, "+")
        lower = _tick_id(from_tick, "-")
        seen = False
        while len(found) < last:
            raw = self.redis.xrevrange(self.keys.decisions, upper, lower, count=_LOG_SCAN_BATCH)
            if not raw:
                break
            for _entry_id, fields in raw:
                record = self._log_record(fields)
                row = record.rows.row(vehicle_id)
                if row is None:
                    if seen:  # before its first tick: nothing older to find
                        return found[::-1]
                    continue
                seen = True
                found.append(record.decision(row))
                if len(found) >= last:
                    break
            upper = "(" + raw[-1][0].decode()
        return found[::-1]


def _tick_id(tick: int | None, default: str) -> str:
    """The decision log's stream id of ``tick`` (entries are ``{tick}-0``), or ``default`` (``-`` / ``+``)."""
    return default if tick is None else f"{int(tick)}-0"
