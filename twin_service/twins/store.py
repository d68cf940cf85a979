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
import functools
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import redis
from redis.cluster import RedisCluster
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    CrossSlotTransactionError,
    InvalidPipelineStack,
    RedisClusterException,
    TryAgainError,
)

from twin_service.twins import codec
from twin_service.twins.codec import BlockLayout, StoredTick
from twin_service.twins.declog import DecisionLogEntry, DecisionRows, unpack_rows
from twin_service.twins.errors import TwinStoreUnavailable, UnknownTickError, UnknownTwinError
from twin_service.twins.frames import (
    Block,
    KpiSample,
    Page,
    ServerTwin,
    TickFrame,
    TickMeta,
    Twin,
    TwinState,
    Value,
    VehicleTwin,
    WindowMean,
)
from twin_service.twins.keys import RUN_KEY_PATTERN, Entity, TwinKeys, run_name
from twin_service.twins.server import RedisClient
from twin_service.twins.window import window_mean_aligned

P = ParamSpec("P")
R = TypeVar("R")

_READ_ATTEMPTS = 5
"""A reader that resolved the latest tick resolves again when that tick left the window before it
was read (the reader fell ``window`` writes behind) or was rewritten meanwhile; at most this often."""

_KIND = {"veh": "vehicle", "srv": "server"}

_WRITE_ATTEMPTS = 5
"""A tick's write starts over when the server changed under its WATCH (emptied, restarted); at most this often."""

_LAST_TICK = b"last_tick"
"""Field of ``P:run`` holding the last tick written (set in each tick's transaction): where a server stands."""
_LOG_REPLAY_TICKS = 512
"""Tick-log entries the writer keeps to put back what a failed-over server lost (per-tick keys: the window)."""

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,  # a slot's master is down and not failed over yet (MasterDownError too)
    TryAgainError,
    ClusterError,  # redirections exhausted while the cluster reshapes
    RedisClusterException,  # no node reachable to learn the cluster's shape (see _as_unavailable)
)
_PROGRAMMING_ERRORS = (CrossSlotTransactionError, InvalidPipelineStack)
"""Cluster client errors that are bugs here (keys in two slots), never an unreachable server."""


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


@dataclass(frozen=True)
class VehicleDecision:
    """One vehicle's decision at one tick, from the decision log (server indices in the layout order)."""

    tick: int
    sim_time_s: float
    source: str
    fallback: bool
    host: int
    target: int
    rho: float
    mask_size: int
    top_index: tuple[int, ...]
    top_score: tuple[float, ...]
    predicted_load_bits: float


@dataclass(frozen=True)
class DecisionLogRecord:
    """One tick of the decision log as read back."""

    tick: int
    sim_time_s: float
    source: str
    fallback: bool
    rows: DecisionRows

    def decision(self, row: int) -> VehicleDecision:
        """The decision of the vehicle in ``row``."""
        r = self.rows
        return VehicleDecision(
            tick=self.tick,
            sim_time_s=self.sim_time_s,
            source=self.source,
            fallback=self.fallback,
            host=int(r.host[row]),
            target=int(r.target[row]),
            rho=float(r.rho[row]),
            mask_size=int(r.mask_size[row]),
            top_index=tuple(int(i) for i in r.top_index[row]),
            top_score=tuple(float(v) for v in r.top_score[row]),
            predicted_load_bits=float(r.predicted_load_bits[row]),
        )


@dataclass(frozen=True)
class RunRecords:
    """What readers need besides the ticks, as the writer re-asserts it: ``P:run`` and ``P:layout``."""

    run_id: str
    """The run marker: new for every run, stored in ``P:run``; a tick's write checks that it is still there."""
    meta: dict[str, str]
    layout_json: bytes


def _unavailable_as_error(method: Callable[P, R]) -> Callable[P, R]:
    """Turn redis connection and timeout errors into :class:`TwinStoreUnavailable`."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except _PROGRAMMING_ERRORS:
            raise
        except _UNAVAILABLE as exc:
            raise TwinStoreUnavailable(f"Redis unavailable in {method.__name__}: {exc}") from exc

    return wrapper


class TwinStore:
    """Twins of vehicles and edge servers in Redis, with a sliding window of ``window`` ticks.

    Parameters
    ----------
    redis_client
        A ``redis.Redis`` or ``redis.cluster.RedisCluster`` with ``decode_responses=False`` (tables are
        bytes); give it socket timeouts (``open_redis`` / ``connect`` do) so that an unreachable server
        fails fast.
    prefix
        Key prefix (``Settings.key_prefix``); runs with different prefixes share a server or a cluster.
    window
        Ticks of history kept per twin (paper B: 10 ticks of 1 s).
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
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if tick_ttl_s < 1:
            raise ValueError(f"tick_ttl_s must be >= 1, got {tick_ttl_s}")
        if redis_client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("TwinStore needs a Redis client with decode_responses=False")
        self.redis = redis_client
        self.keys = TwinKeys(prefix)
        self.window = window
        self.tick_ttl_s = tick_ttl_s
        self.log_maxlen = log_maxlen
        self.decision_log_maxlen = decision_log_maxlen
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
        self._blocks: dict[tuple[str, int], tuple[str, list[str], np.ndarray, tuple[str, ...], bytes]] = {}
        """Decoded entity blocks of recent ticks by (entity, tick): (write_id, ids, table, columns, raw ids)."""
        self._blocks_lock = threading.Lock()
        self._last_logged_tick: int | None = None
        """The newest tick in the decision log after the writer's last successful write; None: ask Redis."""
        self.event_counts: tuple[int, int] | None = None
        """After each tick's write: how many events were posted and how many end requests were made (both only
        grow within a run), so the bridge reads the events again only when these change."""
        self._events: EventRecords | None = None
        """The writer's copy of the run's events, put back with the run's records into a Redis that lost them."""

    @property
    def prefix(self) -> str:
        """The run's name (``Settings.key_prefix``); its keys carry it as the hash tag ``{prefix}``."""
        return self.keys.name

    @property
    def cluster(self) -> bool:
        """Whether the store talks to a Redis Cluster."""
        return isinstance(self.redis, RedisCluster)

    # ------------------------------------------------------------------------------------------
    # Run-wide data
    # ------------------------------------------------------------------------------------------

    @_unavailable_as_error
    def ping(self) -> None:
        """Raise :class:`TwinStoreUnavailable` unless Redis answers."""
        self.redis.ping()

    def _run_fields(self, scenario: str, param_hash: str, extra: dict[str, str | int | float]) -> dict[str, str]:
        fields: dict[str, str] = {
            "scenario": scenario,
            "param_hash": param_hash,
            "window": str(self.window),
            "started_wall_time": repr(time.time()),
        }
        fields.update({k: str(v) for k, v in extra.items()})
        return fields

    @_unavailable_as_error
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

    @_unavailable_as_error
    def write_run_meta(self, scenario: str, param_hash: str, **extra: str | int | float) -> None:
        """Record what this run simulates (and the writer's window) in ``P:run``, once (no run marker: the bridge
        uses :meth:`begin_run`, whose records heal themselves)."""
        self.redis.hset(self.keys.run, mapping=self._run_fields(scenario, param_hash, extra))

    @_unavailable_as_error
    def has_run(self) -> bool:
        """Whether Redis holds this run's records (``P:run``): a bridge writes, or wrote, under this prefix."""
        return bool(self.redis.exists(self.keys.run))

    @_unavailable_as_error
    def read_run_meta(self) -> dict[str, str]:
        """``P:run`` as a dict (empty if never written); the writer's own ``last_tick`` is left out."""
        raw = self.redis.hgetall(self.keys.run)
        return {k.decode(): v.decode() for k, v in raw.items() if k != _LAST_TICK}

    @_unavailable_as_error
    def write_layout(self, servers: list[dict[str, Any]]) -> None:
        """Store the edge-server layout (JSON-serialisable dicts)."""
        self.redis.set(self.keys.layout, json.dumps(servers, separators=(",", ":")))

    @_unavailable_as_error
    def read_layout(self) -> list[dict[str, Any]]:
        """The edge-server layout, or an empty list if none was written."""
        raw = self.redis.get(self.keys.layout)
        return [] if raw is None else json.loads(raw)

    @_unavailable_as_error
    def clear(self) -> int:
        """Delete every key under the prefix (SCAN + UNLINK, never KEYS); return how many.

        On a cluster only the node serving the run's slot is scanned: every key of the run is there.
        """
        removed = 0
        batch: list[bytes] = []
        where: dict[str, Any] = {}
        if isinstance(self.redis, RedisCluster):
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

    @_unavailable_as_error
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

    # ------------------------------------------------------------------------------------------
    # Readers: tick resolution
    # ------------------------------------------------------------------------------------------

    @_unavailable_as_error
    def latest_tick(self) -> TickMeta | None:
        """Meta of the latest tick, or None if no tick was written under this prefix."""
        raw = self.redis.get(self.keys.latest)
        return None if raw is None else codec.decode_meta(raw).meta

    def _latest_number(self) -> int:
        raw = self.redis.get(self.keys.latest)
        if raw is None:
            raise UnknownTickError(f"no tick written yet under prefix {self.prefix!r}")
        return codec.decode_meta(raw).meta.tick

    def _unknown_tick(self, tick: int) -> UnknownTickError:
        return UnknownTickError(
            f"tick {tick} is not held under prefix {self.prefix!r} "
            f"(never written, or older than the window of {self.window} ticks)"
        )

    def _read_tick(self, tick: int | None, queue: Callable[[Any, int], None]) -> tuple[StoredTick, list[Any]]:
        """Read the meta of one tick and what ``queue(pipe, n)`` asks for, in one MULTI.

        With ``tick=None`` the latest tick is resolved first (one more round trip).
        """
        for _ in range(_READ_ATTEMPTS):
            n = self._latest_number() if tick is None else int(tick)
            pipe = self.redis.pipeline(transaction=True)
            pipe.get(self.keys.tick_meta(n))
            queue(pipe, n)
            meta_raw, *results = pipe.execute()
            if meta_raw is not None:
                return codec.decode_meta(meta_raw), results
            if tick is not None:
                raise self._unknown_tick(n)
        raise UnknownTickError(f"the latest tick kept leaving the window while being read ({self.prefix!r})")

    def _read_window(
        self, tick: int | None, queue: Callable[[Any, int], None], per_tick: int, ticks_back: int | None = None
    ) -> list[tuple[StoredTick, list[Any]]]:
        """Meta and ``per_tick`` results of each held tick of the window ending at ``tick``.

        Oldest first; the last entry is the resolved tick itself. One MULTI (plus one round trip
        to resolve the latest tick when ``tick`` is None). ``ticks_back`` reads only the last ticks.
        """
        span = self.window if ticks_back is None else max(1, min(ticks_back, self.window))
        for _ in range(_READ_ATTEMPTS):
            n = self._latest_number() if tick is None else int(tick)
            ticks = range(n - span + 1, n + 1)
            pipe = self.redis.pipeline(transaction=True)
            for t in ticks:
                pipe.get(self.keys.tick_meta(t))
                queue(pipe, t)
            flat = pipe.execute()
            step = 1 + per_tick
            held = [
                (codec.decode_meta(flat[i * step]), flat[i * step + 1 : (i + 1) * step])
                for i in range(len(ticks))
                if flat[i * step] is not None
            ]
            if held and held[-1][0].meta.tick == n:
                return held
            if tick is not None:
                raise self._unknown_tick(n)
        raise UnknownTickError(f"the latest tick kept leaving the window while being read ({self.prefix!r})")

    # ------------------------------------------------------------------------------------------
    # Readers: one twin
    # ------------------------------------------------------------------------------------------

    @_unavailable_as_error
    def vehicle(self, vid: str, tick: int | None = None) -> VehicleTwin:
        """One vehicle at ``tick`` (default latest), with its window history and window mean."""
        return self._twin("veh", vid, tick, VehicleTwin)

    @_unavailable_as_error
    def server(self, sid: str, tick: int | None = None) -> ServerTwin:
        """One edge server at ``tick`` (default latest), with its window history and window mean."""
        return self._twin("srv", sid, tick, ServerTwin)

    def _twin(self, entity: Entity, twin_id: str, tick: int | None, cls: type[Twin]) -> Any:
        k = self.keys
        try:
            bucket = str(codec.index_bucket(twin_id))
        except UnicodeEncodeError:  # a lone surrogate from a JSON path: no twin has such an id
            raise UnknownTwinError(f"no {_KIND[entity]} {twin_id!r}") from None
        for _ in range(_READ_ATTEMPTS):
            # Round trip 1 (+1 to resolve the latest tick): meta and index bucket of each window tick.
            held = self._read_window(tick, lambda pipe, t: pipe.hget(k.block(t, entity, "idx"), bucket), 1)
            found: list[tuple[StoredTick, BlockLayout, int]] = []
            for stored, (bucket_raw,) in held:
                layout = stored.layouts[entity]
                row = codec.find_row(bucket_raw, twin_id, layout.id_width)
                if row is not None:
                    found.append((stored, layout, row))
            current = held[-1][0]
            if not found or found[-1][0] is not current:
                raise UnknownTwinError(f"no {_KIND[entity]} {twin_id!r} at tick {current.meta.tick}")
            # Round trip 2: the twin's row of each tick's numeric and text tables, nothing more;
            # and the current meta again, because the latest tick (only it) may be rewritten.
            pipe = self.redis.pipeline(transaction=True)
            for stored, layout, row in found:  # a table with no columns is b"": GETRANGE 0 -1 is fine
                t = stored.meta.tick
                pipe.getrange(k.block(t, entity, "num"), *codec.num_row_range(row, len(layout.columns)))
                pipe.getrange(k.block(t, entity, "text"), *codec.text_row_range(row, layout.text_widths))
            pipe.get(k.tick_meta(current.meta.tick))
            *rows_raw, meta_now = pipe.execute()
            if meta_now is None or codec.decode_meta(meta_now).meta.write_id != current.meta.write_id:
                if tick is not None and meta_now is None:
                    raise self._unknown_tick(tick)
                continue
            history: list[TwinState] = []
            numeric: list[tuple[str, ...]] = []
            for (stored, layout, _row), num_raw, text_raw in zip(found, rows_raw[0::2], rows_raw[1::2], strict=True):
                state = _decode_row(stored.meta, layout, num_raw, text_raw)
                if state is not None:  # None: this older tick left the window between the trips
                    history.append(state)
                    numeric.append(layout.columns)
            return cls(
                id=twin_id,
                tick=current.meta.tick,
                sim_time_s=current.meta.sim_time_s,
                state=dict(history[-1].values),
                history=history,
                window_mean=_history_mean(history, numeric),
            )
        raise UnknownTickError(f"the tick kept changing while reading {_KIND[entity]} {twin_id!r}")

    # ------------------------------------------------------------------------------------------
    # Readers: whole blocks
    # ------------------------------------------------------------------------------------------

    @_unavailable_as_error
    def vehicle_ids(self, tick: int | None = None) -> list[str]:
        """Ids of the vehicles present at ``tick`` (default latest), in row order."""
        return self._ids("veh", tick)

    @_unavailable_as_error
    def server_ids(self, tick: int | None = None) -> list[str]:
        """Ids of the edge servers at ``tick`` (default latest), in row order."""
        return self._ids("srv", tick)

    def _ids(self, entity: Entity, tick: int | None) -> list[str]:
        stored, (ids_raw,) = self._read_tick(tick, lambda pipe, n: pipe.get(self.keys.block(n, entity, "ids")))
        return codec.decode_ids(ids_raw, stored.layouts[entity].n)

    @_unavailable_as_error
    def list_vehicles(self, tick: int | None = None, offset: int = 0, limit: int = 100) -> Page:
        """A page of vehicle ids (row order) and the number of vehicles at ``tick``."""
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must be >= 0, got {offset}, {limit}")
        ids = self._ids("veh", tick)
        return Page(ids=ids[offset : offset + limit], total=len(ids))

    @_unavailable_as_error
    def vehicles_frame(self, tick: int | None = None) -> Block:
        """All vehicles of one tick: ``(ids, numeric columns, text columns)``."""
        return self._frame("veh", tick)

    @_unavailable_as_error
    def servers_frame(self, tick: int | None = None) -> Block:
        """All edge servers of one tick: ``(ids, numeric columns, text columns)``."""
        return self._frame("srv", tick)

    @_unavailable_as_error
    def tick_frames(self, tick: int | None = None) -> tuple[TickMeta, Block, Block]:
        """One tick whole: its meta, all vehicles and all edge servers, read in one transaction."""

        def queue(pipe: Any, n: int) -> None:
            for entity in ("veh", "srv"):
                for part in ("ids", "num", "text"):
                    pipe.get(self.keys.block(n, entity, part))

        stored, raw = self._read_tick(tick, queue)
        return stored.meta, _decode_block(stored, "veh", raw[:3]), _decode_block(stored, "srv", raw[3:])

    def _frame(self, entity: Entity, tick: int | None) -> Block:
        def queue(pipe: Any, n: int) -> None:
            for part in ("ids", "num", "text"):
                pipe.get(self.keys.block(n, entity, part))

        stored, raw = self._read_tick(tick, queue)
        return _decode_block(stored, entity, raw)

    @_unavailable_as_error
    def vehicles_window_mean(self, tick: int | None = None) -> WindowMean:
        """Paper B Eq. 37 for every vehicle present at ``tick``, aligned with its ids."""
        return self._window_mean("veh", tick)

    @_unavailable_as_error
    def servers_window_mean(self, tick: int | None = None) -> WindowMean:
        """Paper B Eq. 37 for every edge server present at ``tick``, aligned with its ids."""
        return self._window_mean("srv", tick)

    def _window_mean(self, entity: Entity, tick: int | None) -> WindowMean:
        held = self._window_blocks(entity, tick)
        blocks = [(ids, table, columns) for _, (_, ids, table, columns, _) in held]
        current_layout, current_ids_raw = held[-1][0].layouts[entity], held[-1][1][4]
        columns, counts = window_mean_aligned(blocks[-1][0], blocks)
        return WindowMean(ids=codec.decode_ids(current_ids_raw, current_layout.n), columns=columns, counts=counts)

    def _window_blocks(
        self, entity: Entity, tick: int | None
    ) -> list[tuple[StoredTick, tuple[str, list[str], np.ndarray, tuple[str, ...], bytes]]]:
        """Meta and decoded ``entity`` block of each held tick of the window ending at ``tick``, oldest first.

        A reader asks for the window every tick, and all but the newest tick were read the tick before: blocks
        are kept decoded by tick and write id, and only the ticks not held yet (or rewritten since) are read,
        with their meta in one MULTI so that a block and the meta it is checked against belong together. The
        metas of the whole window are read first (a few bytes each) to know which blocks are still current.
        """
        for _ in range(_READ_ATTEMPTS):
            n = self._latest_number() if tick is None else int(tick)
            ticks = list(range(n - self.window + 1, n + 1))
            pipe = self.redis.pipeline(transaction=False)
            for t in ticks:
                pipe.get(self.keys.tick_meta(t))
            stored = {
                t: codec.decode_meta(raw) for t, raw in zip(ticks, pipe.execute(), strict=True) if raw is not None
            }
            if n not in stored:
                if tick is not None:
                    raise self._unknown_tick(n)
                continue
            with self._blocks_lock:
                cached = {t: self._blocks.get((entity, t)) for t in stored}
            missing = [t for t in stored if cached[t] is None or cached[t][0] != stored[t].meta.write_id]
            if missing:
                pipe = self.redis.pipeline(transaction=True)
                for t in missing:
                    pipe.get(self.keys.tick_meta(t))
                    pipe.get(self.keys.block(t, entity, "ids"))
                    pipe.get(self.keys.block(t, entity, "num"))
                flat = pipe.execute()
                fresh = {}
                for i, t in enumerate(missing):
                    raw_meta, ids_raw, num_raw = flat[3 * i : 3 * i + 3]
                    if raw_meta is None:  # left the window meanwhile
                        continue
                    now = codec.decode_meta(raw_meta)
                    stored[t] = now
                    layout = now.layouts[entity]
                    fresh[t] = (
                        now.meta.write_id,
                        codec.decode_ids_bytes(ids_raw, layout.n),
                        codec.decode_num(num_raw, layout.n, len(layout.columns)),
                        layout.columns,
                        ids_raw,
                    )
                if n not in fresh and n in missing:
                    continue
                cached |= fresh
                for t in missing:
                    if t not in fresh:
                        del stored[t]
                with self._blocks_lock:
                    for t, entry in fresh.items():
                        self._blocks[(entity, t)] = entry
                    for key in [k for k in self._blocks if k[0] == entity and not n - self.window < k[1] <= n]:
                        del self._blocks[key]
            return [(stored[t], cached[t]) for t in sorted(stored)]  # type: ignore[misc]
        raise UnknownTickError(f"the latest tick kept leaving the window while being read ({self.prefix!r})")

    @_unavailable_as_error
    def servers_history(
        self, tick: int | None = None, columns: Sequence[str] = ("load_bits",), ticks: int | None = None
    ) -> tuple[list[str], dict[str, np.ndarray]]:
        """The edge servers' ``columns`` over the last ``ticks`` ticks of the window ending at ``tick``.

        Returns the servers of ``tick`` and, per column, a ``(T, M)`` array aligned with them, oldest tick
        first; T is at most ``ticks`` (fewer at a run's start). Only the recent ticks that hold every
        column for every server are kept (what the workload predictor reads).
        """

        def queue(pipe: Any, t: int) -> None:
            pipe.get(self.keys.block(t, "srv", "ids"))
            pipe.get(self.keys.block(t, "srv", "num"))

        held = self._read_window(tick, queue, per_tick=2, ticks_back=ticks)
        rows: list[dict[str, np.ndarray]] = []
        ids: list[str] = []
        for stored, (ids_raw, num_raw) in reversed(held):  # newest first: stop at the first incomplete tick
            layout = stored.layouts["srv"]
            tick_ids = codec.decode_ids(ids_raw, layout.n)
            if not ids:
                ids = tick_ids
            if any(c not in layout.columns for c in columns):
                break
            values = codec.decode_columns(num_raw, layout.n, layout.columns)
            if tick_ids != ids:
                where = {sid: k for k, sid in enumerate(tick_ids)}
                if any(sid not in where for sid in ids):
                    break
                order = np.array([where[sid] for sid in ids], dtype=np.int64)
                values = {c: v[order] for c, v in values.items()}
            rows.append({c: values[c] for c in columns})
        rows.reverse()
        return ids, {c: np.stack([r[c] for r in rows]) if rows else np.zeros((0, len(ids))) for c in columns}

    # ------------------------------------------------------------------------------------------
    # Readers: KPIs
    # ------------------------------------------------------------------------------------------

    @_unavailable_as_error
    def kpis(self, tick: int | None = None) -> dict[str, float]:
        """KPIs of ``tick`` (default latest)."""
        _, (raw,) = self._read_tick(tick, lambda pipe, n: pipe.hgetall(self.keys.tick_kpi(n)))
        return {name.decode(): float(v) for name, v in _hash_reply(raw).items()}

    @_unavailable_as_error
    def kpi_history(self, last_n: int | None = None) -> list[KpiSample]:
        """KPIs of the last ``last_n`` ticks written (all the log holds if None), oldest first.

        Reads the tick log, which outlives the window (``log_maxlen`` ticks).
        """
        if last_n is not None and last_n <= 0:
            return []
        # A retried tick is in the log twice; over-fetch a little and keep its last write.
        count = None if last_n is None else last_n + 8
        by_tick: dict[int, KpiSample] = {}
        for _id, fields in self.redis.xrevrange(self.keys.log, count=count):
            t = int(fields[b"tick"])
            if t not in by_tick:
                by_tick[t] = KpiSample(
                    tick=t,
                    sim_time_s=float(fields[b"sim_time_s"]),
                    wall_time=float(fields[b"wall_time"]),
                    kpis={name: float(v) for name, v in json.loads(fields[b"kpis"]).items()},
                )
        samples = sorted(by_tick.values(), key=lambda s: s.tick)
        return samples if last_n is None else samples[-last_n:]

    # ------------------------------------------------------------------------------------------
    # What-if events
    # ------------------------------------------------------------------------------------------

    @_unavailable_as_error
    def add_event(self, record: dict[str, Any]) -> str:
        """Store a new event (its JSON-ready ``record``, to which its id is added); return the id (``1``, ``2``...)."""
        event_id = str(int(self.redis.incr(self.keys.events_seq)))
        self.redis.hset(self.keys.events, event_id, json.dumps({"id": event_id, **record}, separators=(",", ":")))
        return event_id

    @_unavailable_as_error
    def request_event_end(self, event_id: str, record: dict[str, Any]) -> bool:
        """Ask the bridge to end event ``event_id`` at its next tick; False if it was asked already."""
        return bool(self.redis.hsetnx(self.keys.events_end, event_id, json.dumps(record, separators=(",", ":"))))

    @_unavailable_as_error
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
            return {k.decode(): v.decode() for k, v in _hash_reply(raw).items()}

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

    @_unavailable_as_error
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

    @_unavailable_as_error
    def decision_log(
        self, last: int = 10, from_tick: int | None = None, to_tick: int | None = None
    ) -> list[DecisionLogRecord]:
        """The ``last`` newest ticks of the decision log within ``[from_tick, to_tick]``, oldest first."""
        if last <= 0:
            return []
        raw = self.redis.xrevrange(self.keys.decisions, _tick_id(to_tick, "+"), _tick_id(from_tick, "-"), count=last)
        return [self._log_record(f) for _id, f in reversed(raw)]

    @_unavailable_as_error
    def decision_log_after(self, tick: int, count: int = 8) -> list[DecisionLogRecord]:
        """Up to ``count`` entries of ticks after ``tick``, oldest first (what a log follower has not seen)."""
        raw = self.redis.xrange(self.keys.decisions, f"({tick}-0", "+", count=count)
        return [self._log_record(f) for _id, f in raw]

    @_unavailable_as_error
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

    @_unavailable_as_error
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


def _hash_reply(raw: Any) -> dict[bytes, bytes]:
    """HGETALL's reply as a dict: a cluster's transaction pipeline gives it as it came, a flat list (redis-py 6.4)."""
    if isinstance(raw, list):
        return dict(zip(raw[::2], raw[1::2], strict=True))
    return raw


def _tick_id(tick: int | None, default: str) -> str:
    """The decision log's stream id of ``tick`` (entries are ``{tick}-0``), or ``default`` (``-`` / ``+``)."""
    return default if tick is None else f"{int(tick)}-0"


def _decode_row(meta: TickMeta, layout: BlockLayout, num_raw: bytes, text_raw: bytes) -> TwinState | None:
    """One twin's state from its GETRANGE'd rows; None if they came back short (tick deleted)."""
    if len(num_raw) != len(layout.columns) * codec.FLOAT.itemsize or len(text_raw) != sum(layout.text_widths):
        return None
    values: dict[str, Value] = dict(
        zip(layout.columns, np.frombuffer(num_raw, dtype=codec.FLOAT).tolist(), strict=True)
    )
    values.update(zip(layout.text_columns, codec.decode_text_row(text_raw, layout.text_widths), strict=True))
    return TwinState(tick=meta.tick, sim_time_s=meta.sim_time_s, values=values)


def _history_mean(history: Sequence[TwinState], numeric: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean of each numeric column over the history entries holding it (paper B Eq. 37)."""
    samples: dict[str, list[float]] = {}
    for state, cols in zip(history, numeric, strict=True):
        for col in cols:
            samples.setdefault(col, []).append(float(state.values[col]))
    return {col: float(np.mean(v)) for col, v in samples.items()}


def _decode_block(stored: StoredTick, entity: Entity, raw: list[Any]) -> Block:
    """One entity block of a tick from its ``ids``, ``num`` and ``text`` values."""
    ids_raw, num_raw, text_raw = raw
    layout = stored.layouts[entity]
    return Block(
        ids=codec.decode_ids(ids_raw, layout.n),
        columns=codec.decode_columns(num_raw, layout.n, layout.columns),
        text=codec.decode_text(text_raw, layout),
    )


@_unavailable_as_error
def run_names(client: RedisClient, limit: int = 10_000) -> list[str]:
    """The prefixes (cities, regions) of every run in this Redis or cluster, sorted; at most ``limit``.

    The one read that must fan out: SCAN for ``{*}:run`` on every node (on a cluster, every master).
    """
    names: set[str] = set()
    for key in client.scan_iter(match=RUN_KEY_PATTERN, count=1000, _type="HASH"):
        name = run_name(key)
        if name is not None:
            names.add(name)
            if len(names) >= limit:
                break
    return sorted(names)


@dataclass(frozen=True)
class RunOverview:
    """What a listing of runs shows of one: its name, scenario and latest tick."""

    name: str
    scenario: str | None
    latest: TickMeta | None


@_unavailable_as_error
def runs_overview(client: RedisClient, names: Sequence[str]) -> list[RunOverview]:
    """Scenario and latest tick of each named run, in one pipeline (on a cluster, one round trip per node)."""
    pipe = client.pipeline(transaction=False)
    for name in names:
        keys = TwinKeys(name)
        pipe.hget(keys.run, "scenario")
        pipe.get(keys.latest)
    raw = pipe.execute()
    out = []
    for i, name in enumerate(names):
        scenario, latest = raw[2 * i], raw[2 * i + 1]
        out.append(
            RunOverview(
                name,
                None if scenario is None else scenario.decode(errors="replace"),
                None if latest is None else codec.decode_meta(latest).meta,
            )
        )
    return out
