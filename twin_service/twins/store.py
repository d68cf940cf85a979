"""The twin store: one tick of all twins written per transaction, read as a consistent snapshot.

Writer (the bridge) calls :meth:`TwinStore.begin_run` once, then :meth:`TwinStore.write_tick` once per
tick. Everything of the tick (packed tables, index hashes, KPIs, meta), the deletion of the ticks that
left the window and the flip of the ``latest`` pointer go in one MULTI/EXEC, so a reader never sees two
ticks mixed. Readers resolve the latest tick once, then read only keys of that tick number, which do not
change until they leave the window (see :mod:`twin_service.twins.keys`).

The run's records (metadata and edge-server layout) heal themselves: each tick's write first checks the
run marker (``run_id`` in ``P:run``) under WATCH, and when a restarted or emptied Redis no longer holds it,
the same transaction puts the records back ahead of the tick. A reader never sees a tick of a run whose
records are missing, and a FLUSHALL between the check and the write aborts the transaction, which is
then tried again.

Ticks that Redis acknowledged and then lost come back too. On a Redis Cluster (or any primary with
replicas) a write is acknowledged before it reaches the replica; when the primary dies, the replica that
takes over may lack its last few ticks. The same read that checks the marker reads the last tick the
server holds (``last_tick``, set in ``P:run`` by every tick's transaction); when it is behind the last tick
the writer was told was stored, the writer puts those ticks back, as they were written (same bytes, same
``write_id``), in the transaction of the next tick: the window's per-tick keys and the tick log's entries.
No acknowledged tick is lost, and none is half there.

Every key of a run carries the run's hash tag (:mod:`twin_service.twins.keys`), so on a cluster a tick's
transaction and each read stay in one slot, on one node; the client may be a ``redis.Redis`` or a
``redis.cluster.RedisCluster`` (redis-py >= 6.2, whose cluster pipelines run single-slot transactions).

One writer per prefix. Readers may be many, in other processes.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

from twin_service.twins import codec
from twin_service.twins.declog import DecisionLogEntry
from twin_service.twins.errors import TwinStoreUnavailable, unavailable_as_error
from twin_service.twins.frames import TickFrame, TickMeta
from twin_service.twins.logs import DEFAULT_DECISION_LOG_TICKS, EventRecords, TwinLogs
from twin_service.twins.server import RedisClient

_WRITE_ATTEMPTS = 5
"""A tick's write starts over when the server changed under its WATCH (emptied, restarted); at most this often."""

_LAST_TICK = b"last_tick"
"""Field of ``P:run`` holding the last tick written (set in each tick's transaction): where a server stands."""
_LOG_REPLAY_TICKS = 512
"""Tick-log entries the writer keeps to put back what a failed-over server lost (per-tick keys: the window)."""


@dataclass(frozen=True)
class _StoredTick:
    """A tick as this writer stored it: what it takes to store it again, byte for byte."""

    tick: int
    meta_raw: bytes
    veh: Any
    srv: Any
    kpis: dict[str, float]
    log_fields: dict[str, str]
    event_states: dict[str, str] | None = None
    decision_log: DecisionLogEntry | None = None


@dataclass(frozen=True)
class RunRecords:
    """What readers need besides the ticks, as the writer re-asserts it: ``P:run`` and ``P:layout``."""

    run_id: str
    """The run marker: new for every run, stored in ``P:run``; a tick's write checks that it is still there."""
    meta: dict[str, str]
    layout_json: bytes


class TwinStore(TwinLogs):
    """Twins of vehicles and edge servers in Redis, with a sliding window of ``window`` ticks.

    The readers come from :class:`~twin_service.twins.reader.TwinReader` (one tick, one twin, blocks, window
    means, KPIs), the events and the decision log from :class:`~twin_service.twins.logs.TwinLogs`; this class
    writes.

    Parameters
    ----------
    redis_client, prefix, window
        As :class:`~twin_service.twins.reader.TwinReader`: the client (``decode_responses=False``, with socket
        timeouts), the run's key prefix, the ticks of history kept per twin.
    tick_ttl_s
        Safety-net expiry of per-tick keys, for a writer that dies without clearing its keys.
    log_maxlen
        Approximate number of ticks kept in the tick log (KPI history).
    decision_log_maxlen
        Approximate number of ticks kept in the decision log (``P:decisions``; Redis trims whole stream nodes, so
        a few more may be held).
    """

    def __init__(
        self,
        redis_client: RedisClient,
        prefix: str = "twin",
        window: int = 10,
        *,
        tick_ttl_s: int = 86_400,
        log_maxlen: int = 3_600,
        decision_log_maxlen: int = DEFAULT_DECISION_LOG_TICKS,
    ) -> None:
        super().__init__(redis_client, prefix, window, tick_ttl_s=tick_ttl_s, decision_log_maxlen=decision_log_maxlen)
        self.log_maxlen = log_maxlen
        self._held_ticks: list[int] | None = None
        """The writer's copy of ``P:ticks`` after its last successful write; None: ask Redis."""
        self._stored: dict[int, _StoredTick] = {}
        """The ticks this writer stored lately, by tick: the window's whole, older ones for their log entry."""
        self._whole: set[int] = set()
        """Ticks of ``_stored`` still held whole."""
        self.reasserted_ticks = 0
        """Ticks Redis had acknowledged and then lost (a failover to a replica behind), stored again."""
        self._records: RunRecords | None = None
        self.restores = 0
        """How often a tick's write found the run's records missing (Redis restarted or emptied) and put them back."""
        self.event_counts: tuple[int, int] | None = None
        """After each tick's write: how many events were posted and how many end requests were made (both only
        grow within a run), so the bridge reads the events again only when these change."""

    def _run_fields(self, scenario: str, param_hash: str, extra: dict[str, str | int | float]) -> dict[str, str]:
        fields: dict[str, str] = {
            "scenario": scenario,
            "param_hash": param_hash,
            "window": str(self.window),
            "started_wall_time": repr(time.time()),
        }
        fields.update({k: str(v) for k, v in extra.items()})
        return fields

    @unavailable_as_error
    def begin_run(
        self, scenario: str, param_hash: str, layout: list[dict[str, Any]], **extra: str | int | float
    ) -> str:
        """Store a new run's records (``P:run`` with a new run marker, ``P:layout``) in one transaction and keep
        them: from now on every :meth:`write_tick` puts them back first if Redis lost them. Returns the run id."""
        run_id = secrets.token_hex(8)
        fields = self._run_fields(scenario, param_hash, extra) | {"run_id": run_id}
        records = RunRecords(run_id, fields, json.dumps(layout, separators=(",", ":")).encode())
        pipe = self.redis.pipeline(transaction=True)
        self._queue_records(pipe, records)
        pipe.execute()
        self._records = records
        self._forget_stored()
        return run_id

    def _queue_events(self, pipe: Any, events: EventRecords) -> None:
        for key, values in ((self.keys.events, events.events), (self.keys.events_end, events.ends)):
            if values:
                pipe.hset(key, mapping=values)
        if events.states:
            pipe.hset(self.keys.events_state, mapping=events.states)
        if events.seq:
            pipe.set(self.keys.events_seq, events.seq)

    def _queue_records(self, pipe: Any, records: RunRecords) -> None:
        pipe.delete(self.keys.run)
        pipe.hset(self.keys.run, mapping=records.meta)
        pipe.set(self.keys.layout, records.layout_json)

    @property
    def run_id(self) -> str | None:
        """The marker of the run this store writes (None before :meth:`begin_run`)."""
        return None if self._records is None else self._records.run_id

    @unavailable_as_error
    def write_run_meta(self, scenario: str, param_hash: str, **extra: str | int | float) -> None:
        """Record what this run simulates (and the writer's window) in ``P:run``, once (no run marker: the bridge
        uses :meth:`begin_run`, whose records heal themselves)."""
        self.redis.hset(self.keys.run, mapping=self._run_fields(scenario, param_hash, extra))

    @unavailable_as_error
    def has_run(self) -> bool:
        """Whether Redis holds this run's records (``P:run``): a bridge writes, or wrote, under this prefix."""
        return bool(self.redis.exists(self.keys.run))

    @unavailable_as_error
    def read_run_meta(self) -> dict[str, str]:
        """``P:run`` as a dict (empty if never written); the writer's own ``last_tick`` is left out."""
        raw = self.redis.hgetall(self.keys.run)
        return {k.decode(): v.decode() for k, v in raw.items() if k != _LAST_TICK}

    @unavailable_as_error
    def write_layout(self, servers: list[dict[str, Any]]) -> None:
        """Store the edge-server layout (JSON-serialisable dicts)."""
        self.redis.set(self.keys.layout, json.dumps(servers, separators=(",", ":")))

    def read_layout(self) -> list[dict[str, Any]]:
        """The edge-server layout, or an empty list if none was written."""
        raw = self.read_layout_raw()
        return [] if raw is None else json.loads(raw)

    @unavailable_as_error
    def read_layout_raw(self) -> bytes | None:
        """The edge-server layout as stored (JSON bytes; None if none was written): to tell whether it changed
        without decoding it."""
        raw = self.redis.get(self.keys.layout)
        return None if raw is None else bytes(raw)

    @unavailable_as_error
    def clear(self) -> int:
        """Delete every key under the prefix (SCAN + UNLINK, never KEYS); return how many.

        On a cluster only the node serving the run's slot is scanned: every key of the run is there.
        """
        removed = 0
        batch: list[bytes] = []
        where: dict[str, Any] = {}
        if self.cluster:
            where["target_nodes"] = self.redis.get_node_from_key(self.keys.run)
        for key in self.redis.scan_iter(match=self.keys.pattern(), count=1000, **where):
            batch.append(key)
            if len(batch) >= 500:
                removed += self.redis.unlink(*batch)
                batch.clear()
        if batch:
            removed += self.redis.unlink(*batch)
        self._held_ticks = None
        self._forget_stored()
        return removed

    # ------------------------------------------------------------------------------------------
    # Writer
    # ------------------------------------------------------------------------------------------

    @unavailable_as_error
    def write_tick(self, frame: TickFrame) -> TickMeta:
        """Write one tick in one transaction; return its meta.

        Rewriting the latest tick replaces it whole (a retried write is safe); a tick older than
        the latest stored one is refused with ``ValueError`` (``clear()`` first to start over).
        Raises :class:`TwinStoreUnavailable` if Redis cannot be reached: then either nothing of
        the tick is stored or all of it (the transaction ran and only its reply was lost).
        After :meth:`begin_run`, the run's records are put back first when Redis lost them
        (``restores`` counts it), and so are the ticks it acknowledged and then lost in a failover
        (``reasserted_ticks`` counts them).
        """
        veh = codec.encode_block(frame.vehicle_ids, frame.vehicle_columns, frame.vehicle_text, "vehicles")
        srv = codec.encode_block(frame.server_ids, frame.server_columns, frame.server_text, "servers")
        n = int(frame.tick)
        sim_time_s, wall_time = float(frame.sim_time_s), float(frame.wall_time)
        meta_raw = codec.encode_meta(n, sim_time_s, wall_time, secrets.token_hex(6), veh.layout, srv.layout)
        kpis = {name: float(v) for name, v in frame.kpis.items()}
        log_fields = {
            "tick": str(n),
            "sim_time_s": repr(sim_time_s),
            "wall_time": repr(wall_time),
            "kpis": json.dumps(kpis, separators=(",", ":")),
        }
        tick = _StoredTick(n, meta_raw, veh, srv, kpis, log_fields, frame.event_states, frame.decision_log)
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.redis.pipeline(transaction=True) as pipe:
                    self._write_tick_once(pipe, tick)
                break
            except redis.WatchError:
                # The server changed between the marker check and EXEC (emptied, or the connection broke):
                # nothing was written. Check again.
                self._held_ticks = None
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise TwinStoreUnavailable(
                        f"Redis kept changing under the write of tick {n} ({_WRITE_ATTEMPTS} tries)"
                    ) from None
            except BaseException:
                self._held_ticks = None  # the transaction may or may not have run: ask Redis next time
                self._last_logged_tick = None
                raise
        return codec.decode_meta(meta_raw).meta

    def _write_tick_once(self, pipe: Any, tick: _StoredTick) -> None:
        k, n = self.keys, tick.tick
        records = self._records
        restore = False
        lost: list[_StoredTick] = []
        held = self._held_ticks
        if records is not None:
            # Optimistic check of the run marker: EXEC fails if P:run changes (FLUSHALL included) before it.
            # The same read says which tick the server holds last, which a failover may have set back.
            pipe.watch(k.run)
            marker, server_last = pipe.hmget(k.run, ["run_id", _LAST_TICK])
            if marker != records.run_id.encode():
                restore = True
                held = None  # an emptied or new server holds none of our ticks
            else:
                acked = max(self._stored) if self._stored else None
                last = None if server_last is None else int(server_last)
                if acked is not None and last != acked:
                    held = None  # not where this writer left it (a lost reply, or a failover): look
                    lost = [t for t in self._stored.values() if (last is None or t.tick > last) and t.tick < n]
        if held is None:  # while watching, the pipeline runs commands at once; else ask the client
            held = sorted(int(t) for t in (pipe if records is not None else self.redis).zrange(k.ticks, 0, -1))
        if held and n < held[-1]:
            raise ValueError(
                f"tick {n} is older than the latest stored tick {held[-1]} under prefix "
                f"{self.prefix!r}; ticks must not go back (clear() starts a new run)"
            )
        stale = [t for t in held if t <= n - self.window]
        lost_whole = [t for t in lost if t.tick > n - self.window and t.tick not in held and t.veh is not None]

        # The decision log: this tick's entry, and those of ticks a failed-over server lost, newer than its newest.
        wanted = {t.decision_log.tick: t.decision_log for t in [*lost, tick] if t.decision_log is not None}
        entries: list[DecisionLogEntry] = []
        if wanted and self.decision_log_maxlen > 0:
            logged = None if restore or lost else self._last_logged_tick
            if logged is None:  # unknown after a failure, a restore or a failover: ask (a retry must not log twice)
                newest = (pipe if records is not None else self.redis).xrevrange(k.decisions, count=1)
                logged = int(newest[0][0].split(b"-")[0]) if newest else 0
            self._last_logged_tick = logged
            entries = [wanted[t] for t in sorted(wanted) if t > logged]

        pipe.multi()
        if restore:
            assert records is not None
            self._queue_records(pipe, records)
            if self._events is not None:
                self._queue_events(pipe, self._events)
        # A rewritten tick goes first as a whole: it must not keep index entries of departed twins.
        doomed = [*stale, n] if n in held else stale
        if doomed:
            pipe.unlink(*(key for t in doomed for key in k.tick_keys(t)))
        if stale:
            pipe.zrem(k.ticks, *stale)
        for old in lost:  # oldest first, so that the log stays in tick order
            if old in lost_whole:
                self._queue_tick_keys(pipe, old)
            self._queue_log_entry(pipe, old)
        self._queue_tick_keys(pipe, tick)
        pipe.zadd(k.ticks, {str(t.tick): t.tick for t in [*lost_whole, tick]})
        pipe.expire(k.ticks, self.tick_ttl_s)
        pipe.set(k.latest, tick.meta_raw, ex=self.tick_ttl_s)
        self._queue_log_entry(pipe, tick)
        pipe.expire(k.log, self.tick_ttl_s)
        states = {key: value for t in [*lost, tick] for key, value in (t.event_states or {}).items()}
        if states:
            pipe.hset(k.events_state, mapping=states)
        for entry in entries:
            self._queue_decisions(pipe, entry)
        if records is not None:
            pipe.hset(k.run, _LAST_TICK, str(n))
        pipe.hlen(k.events)
        pipe.hlen(k.events_end)
        results = pipe.execute()
        self._held_ticks = sorted({*held, *(t.tick for t in lost_whole), n} - set(stale))
        self._remember(tick)
        self.event_counts = (int(results[-2]), int(results[-1]))
        if entries:
            self._last_logged_tick = entries[-1].tick
        if states and self._events is not None:
            self._events.states.update(states)
        if restore:
            self.restores += 1
        self.reasserted_ticks += len(lost)

    def _queue_tick_keys(self, pipe: Any, tick: _StoredTick) -> None:
        """SET/HSET of one tick's per-tick keys (meta, entity blocks, KPIs), each with the safety-net TTL."""
        k, ttl, n = self.keys, self.tick_ttl_s, tick.tick
        pipe.set(k.tick_meta(n), tick.meta_raw, ex=ttl)
        for entity, enc in (("veh", tick.veh), ("srv", tick.srv)):
            pipe.set(k.block(n, entity, "ids"), enc.ids, ex=ttl)
            pipe.set(k.block(n, entity, "num"), enc.num, ex=ttl)
            pipe.set(k.block(n, entity, "text"), enc.text, ex=ttl)
            if enc.index:
                pipe.hset(k.block(n, entity, "idx"), mapping=enc.index)
                pipe.expire(k.block(n, entity, "idx"), ttl)
        if tick.kpis:
            pipe.hset(k.tick_kpi(n), mapping={name: repr(v) for name, v in tick.kpis.items()})
            pipe.expire(k.tick_kpi(n), ttl)

    def _queue_log_entry(self, pipe: Any, tick: _StoredTick) -> None:
        pipe.xadd(self.keys.log, tick.log_fields, maxlen=self.log_maxlen, approximate=True)

    def _forget_stored(self) -> None:
        self._stored.clear()
        self._whole.clear()

    def _remember(self, tick: _StoredTick) -> None:
        """Keep what it takes to store ``tick`` again: whole while in the window (its decision-log entry too), then
        its tick-log entry and event states only."""
        n, stored = tick.tick, self._stored
        stored[n] = tick
        self._whole.add(n)
        while stored and next(iter(stored)) <= n - _LOG_REPLAY_TICKS:  # ticks go up: the oldest is first
            del stored[next(iter(stored))]
        for t in [t for t in self._whole if t <= n - self.window]:
            self._whole.discard(t)
            if t in stored:
                stored[t] = dataclasses.replace(stored[t], veh=None, srv=None, decision_log=None)
