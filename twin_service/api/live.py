"""The live view of a run for the dashboard: one producer per process, many viewers.

:class:`LiveHub` reads each new tick once, however many clients watch: it turns the tick into a delta
against the previous one (:class:`DeltaEncoder`: vehicles that appeared, moved (0.1 m), changed host or
failed; ids that left; servers whose position, load, hosting or forecast changed; host changes
(migrations); the KPI samples written since), encodes it once as a Server-Sent Event and hands the same
bytes to every client's bounded queue. A new client first gets a snapshot of the current tick (built once
per tick however many clients join), then the shared deltas. A client whose queue fills (it reads slower
than the bridge ticks) gets a fresh snapshot in place of what it missed; one that has taken nothing since
(it does not read at all) is dropped and its connection closed. Connections beyond ``max_clients`` are
refused with 503 (``routes/live.py``).

The hub's Redis reads and JSON encoding run on a worker thread, one call per tick; the event loop only moves
bytes, so a decision request never queues behind viewers. Every few seconds the hub also checks the
service's health (:mod:`twin_service.api.health`) and sends a ``status`` event when it changes, which the
dashboard shows as a banner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
from numpy.typing import NDArray

from twin_service.api.health import assess
from twin_service.api.service import snapshot_from_store
from twin_service.api.state import ApiState
from twin_service.policies import PolicyError
from twin_service.twins import TwinStoreUnavailable, UnknownTickError

log = logging.getLogger(__name__)

VEHICLE_FIELDS = ("x_m", "y_m", "host_index", "failed")
"""A vehicle row of a delta: ``[id, x_m, y_m, host_index, failed]``."""
SERVER_FIELDS = ("x_m", "y_m", "load_bits", "hosted", "overloaded", "predicted_load_bits")
"""A server row of a delta: ``[index, x_m, y_m, load_bits, hosted, overloaded, predicted_load_bits]``."""
KPI_BACKFILL = 300
"""KPI samples a new client gets with its snapshot (the charts' history)."""


@dataclass
class LiveTick:
    """What the dashboard shows of one tick, already rounded to what is worth sending."""

    tick: int
    sim_time_s: float
    wall_time: float
    vehicle_ids: list[str]
    vehicles: NDArray[np.float64]
    """(n, 4): x_m, y_m (0.1 m), host_index, failed."""
    server_ids: list[str]
    servers: NDArray[np.float64]
    """(m, 6): x_m, y_m (0.1 m), load_bits, hosted, overloaded, predicted_load_bits (whole bits)."""

    @classmethod
    def from_columns(
        cls,
        tick: int,
        sim_time_s: float,
        wall_time: float,
        vehicle_ids: list[str],
        vehicle_columns: dict[str, NDArray[np.float64]],
        server_ids: list[str],
        server_columns: dict[str, NDArray[np.float64]],
        predicted_load_bits: NDArray[np.float64],
    ) -> LiveTick:
        n, m = len(vehicle_ids), len(server_ids)
        veh = np.zeros((n, len(VEHICLE_FIELDS)))
        for j, name in enumerate(VEHICLE_FIELDS):
            if name in vehicle_columns:
                veh[:, j] = vehicle_columns[name]
        srv = np.zeros((m, len(SERVER_FIELDS)))
        for j, name in enumerate(SERVER_FIELDS[:-1]):
            if name in server_columns:
                srv[:, j] = server_columns[name]
        srv[:, -1] = predicted_load_bits
        veh[:, :2] = np.round(veh[:, :2], 1)
        srv[:, :2] = np.round(srv[:, :2], 1)
        srv[:, 2:] = np.round(srv[:, 2:])
        return cls(tick, sim_time_s, wall_time, list(vehicle_ids), veh, list(server_ids), np.nan_to_num(srv))


def _vehicle_rows(ids: list[str], table: NDArray[np.float64], rows: NDArray[np.intp]) -> list[list[Any]]:
    x, y, host, failed = (table[rows, j].tolist() for j in range(4))
    return [[ids[r], x[k], y[k], int(host[k]), int(failed[k])] for k, r in enumerate(rows.tolist())]


def _server_rows(table: NDArray[np.float64], rows: NDArray[np.intp]) -> list[list[Any]]:
    cols = [table[rows, j].tolist() for j in range(table.shape[1])]
    return [[r, cols[0][k], cols[1][k], *(int(c[k]) for c in cols[2:])] for k, r in enumerate(rows.tolist())]


@dataclass
class DeltaEncoder:
    """What a client holds, and the delta that brings it to a new tick."""

    _row_of: dict[str, int] = field(default_factory=dict)
    _vehicles: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, len(VEHICLE_FIELDS))))
    _ids: list[str] = field(default_factory=list)
    _server_ids: list[str] | None = None
    _servers: NDArray[np.float64] | None = None

    def reset(self) -> None:
        """Forget what the client holds: the next :meth:`encode` sends everything."""
        self.__init__()  # type: ignore[misc]

    def encode(self, live: LiveTick) -> dict[str, Any]:
        """The delta from what the client holds to ``live``; the client then holds ``live``."""
        ids, table = live.vehicle_ids, live.vehicles
        prev = np.fromiter((self._row_of.get(v, -1) for v in ids), np.intp, len(ids))
        known = prev >= 0
        changed = ~known
        if known.any():
            changed[known] = (self._vehicles[prev[known]] != table[known]).any(axis=1)
        host_col = VEHICLE_FIELDS.index("host_index")
        moved_host = np.zeros(len(ids), dtype=bool)
        if known.any():
            moved_host[known] = self._vehicles[prev[known], host_col] != table[known, host_col]
        now = set(ids)
        left = [v for v in self._ids if v not in now]
        migrations = [
            [ids[k], int(self._vehicles[prev[k], host_col]), int(table[k, host_col])]
            for k in np.flatnonzero(moved_host).tolist()
        ]

        if self._servers is None or self._server_ids != live.server_ids:
            srv_rows = np.arange(len(live.server_ids))
        else:
            srv_rows = np.flatnonzero((self._servers != live.servers).any(axis=1))

        delta = {
            "tick": live.tick,
            "sim_time_s": live.sim_time_s,
            "wall_time": live.wall_time,
            "n_vehicles": len(ids),
            "vehicles": _vehicle_rows(ids, table, np.flatnonzero(changed)),
            "left": left,
            "migrations": migrations,
            "servers": _server_rows(live.servers, srv_rows),
        }
        self._row_of = {v: k for k, v in enumerate(ids)}
        self._vehicles = table
        self._ids = ids
        self._server_ids = live.server_ids
        self._servers = live.servers
        return delta


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One Server-Sent Event (``data`` as compact JSON, non-finite floats as null)."""
    try:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # a NaN or infinity somewhere (rare): walk the data and replace them
        body = json.dumps(_finite(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {body}\n\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# One producer, many viewers
# --------------------------------------------------------------------------------------------

KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing a quiet stream (the bridge may be paused)."""
HEALTH_EVERY_S = 2.0
"""How often the hub checks the service's health for the ``status`` events."""
RETRY_MS = 2000
"""The SSE ``retry`` a client waits before reconnecting."""
BRIDGE_ASKS_WITHIN_S = 3.0
"""A bridge asks this process for its decisions when it answered a batch request this recently."""
DECISION_FIRST_MAX_S = 0.5
"""The longest the stream holds a new tick back for the bridge's decision request to be answered first."""


_OK: dict[str, Any] = {"state": "ok", "reasons": []}


class StreamFull(Exception):
    """The process serves as many live-stream clients as it may (``Settings.stream_max_clients``)."""


@dataclass(frozen=True)
class _Event:
    data: bytes
    seq: int | None = None
    """Position in the chain of deltas (each one applies to the state of ``seq - 1``); None: outside it."""
    full: bool = False
    """A snapshot: needs no earlier state."""


@dataclass(frozen=True)
class _Current:
    """The latest tick the hub produced, as a new client's snapshot is built from it (never changed)."""

    seq: int
    live: LiveTick
    run: dict[str, Any]
    server_tiers: list[str]
    load_source: str
    kpis: tuple[dict[str, Any], ...]


class LiveClient:
    """One viewer: a bounded queue of events and what it holds; fed on the event loop, read by its response."""

    def __init__(self, buffer_ticks: int) -> None:
        self.buffer_ticks = buffer_ticks
        self.queue: deque[_Event] = deque()
        self.wake = asyncio.Event()
        self.held: int | None = None
        """The ``seq`` of the state the client holds (None: it needs a snapshot)."""
        self.sent = 0
        self._sent_at_overflow = -1
        self.resyncs = 0
        self.dropped = False
        self.cancel: Callable[[], None] | None = None
        """Stops the client's response (set by it); called when the client is dropped."""

    def offer(self, event: _Event) -> None:
        """Queue an event; on a full queue resync with a snapshot, or drop a client that took nothing since."""
        if self.dropped:
            return
        if len(self.queue) >= self.buffer_ticks:
            if self.sent == self._sent_at_overflow:
                self.drop()
                return
            self._sent_at_overflow = self.sent
            self.queue.clear()
            self.held = None
            self.resyncs += 1
        self.queue.append(event)
        self.wake.set()

    def drop(self) -> None:
        self.dropped = True
        self.queue.clear()
        self.wake.set()
        if self.cancel is not None:
            self.cancel()


@dataclass
class HubStats:
    """Counters of one hub (``/metrics`` and the benchmark read them)."""

    ticks_read: int = 0
    snapshots_built: int = 0
    clients_refused: int = 0
    clients_dropped: int = 0
    resyncs: int = 0
    produce_s: float = 0.0
    """Worker-thread seconds spent reading and encoding ticks (all clients together)."""


class LiveHub:
    """Reads each tick once and fans it out to every client of this process (see the module's docstring)."""

    def __init__(
        self,
        state: ApiState,
        *,
        max_clients: int,
        buffer_ticks: int,
        poll_s: float,
        room: set[LiveClient] | None = None,
    ) -> None:
        self.state = state
        self.max_clients = max_clients
        self.buffer_ticks = buffer_ticks
        self.poll_s = poll_s
        self.clients: set[LiveClient] = set()
        self.room: set[LiveClient] = self.clients if room is None else room
        """The clients counted against ``max_clients``: this hub's, or those of every city's hub of the process."""
        self.stats = HubStats()
        self._task: asyncio.Task[None] | None = None
        self._encoder = DeltaEncoder()
        self._seen: tuple[int, str] | None = None
        self._seq = 0
        self._current: _Current | None = None
        self._snapshot: tuple[int, bytes] | None = None
        self._snapshot_lock = asyncio.Lock()
        self._status: dict[str, Any] = _OK
        self._status_event: _Event | None = None
        self._health_at = 0.0
        self._last_load_source = ""

    # ---- clients ----------------------------------------------------------------------------
    def check_room(self) -> None:
        """:class:`StreamFull` when the process serves ``max_clients`` already."""
        if len(self.room) >= self.max_clients:
            self.stats.clients_refused += 1
            self.state.metrics.stream_refused.inc()
            raise StreamFull(
                f"this service streams to {self.max_clients} clients at most (TWIN_STREAM_MAX_CLIENTS); retry later"
            )

    def subscribe(self) -> LiveClient:
        """A new client, or :class:`StreamFull` when the process serves ``max_clients`` already."""
        self.check_room()
        client = LiveClient(self.buffer_ticks)
        self.clients.add(client)
        self.room.add(client)
        self.state.metrics.stream_clients.set(len(self.room))
        if self._status_event is not None and self._status["state"] != "ok":
            client.offer(self._status_event)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run(), name="twin-live-hub")
        return client

    def unsubscribe(self, client: LiveClient) -> None:
        self.clients.discard(client)
        self.room.discard(client)
        metrics = self.state.metrics
        metrics.stream_clients.set(len(self.room))
        if client.dropped:
            self.stats.clients_dropped += 1
            metrics.stream_dropped.inc()
        self.stats.resyncs += client.resyncs
        metrics.stream_resyncs.inc(client.resyncs)
        client.resyncs = 0

    async def next_event(self, client: LiveClient) -> bytes | None:
        """The next bytes to send to ``client``: a snapshot when it holds nothing, else its next delta or
        status, or a keep-alive comment after a quiet while; None once it was dropped."""
        while True:
            if client.dropped:
                return None
            if client.held is None and self._current is not None:
                seq, data = await self._snapshot_bytes()
                client.held = seq
                # Deltas queued meanwhile up to that tick are in the snapshot already.
                while client.queue and client.queue[0].seq is not None and client.queue[0].seq <= seq:
                    client.queue.popleft()
                return data
            if client.queue:
                event = client.queue.popleft()
                if event.seq is None:
                    return event.data
                if event.full:
                    client.held = event.seq
                    return event.data
                if client.held is None or event.seq <= client.held:
                    continue
                if event.seq == client.held + 1:
                    client.held = event.seq
                    return event.data
                client.held = None  # a gap: a snapshot brings it up to date
                continue
            client.wake.clear()
            with anyio.move_on_after(KEEPALIVE_S) as quiet:
                await client.wake.wait()
            if quiet.cancelled_caught:
                return b": keep-alive\n\n"

    async def _snapshot_bytes(self) -> tuple[int, bytes]:
        """The snapshot event of the current tick, built once however many clients ask."""
        async with self._snapshot_lock:
            current = self._current
            assert current is not None
            if self._snapshot is None or self._snapshot[0] != current.seq:
                data = await anyio.to_thread.run_sync(_snapshot_event, current)
                self._snapshot = (current.seq, data)
                self.stats.snapshots_built += 1
                self.state.metrics.stream_snapshots.inc()
            return self._snapshot

    # ---- the producer -----------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while self.clients:
                started = time.monotonic()
                try:
                    events = await anyio.to_thread.run_sync(self._produce)
                except Exception:  # noqa: BLE001 - a viewer's feed must never take the service down
                    log.exception("the live stream could not read the latest tick")
                    events = []
                for event in events:
                    for client in list(self.clients):
                        client.offer(event)
                await anyio.sleep(max(0.0, self.poll_s - (time.monotonic() - started)))
        finally:
            if not self.clients:  # nobody watches: forget, and read afresh for the next viewer
                self._current = self._seen = self._snapshot = self._status_event = None
                self._status, self._health_at = _OK, 0.0
                self._encoder.reset()

    def _produce(self) -> list[_Event]:
        """On a worker thread: the events of the latest tick if it is new (one read for all clients), and a
        ``status`` event when the service's health changed."""
        events: list[_Event] = []
        started = time.perf_counter()
        try:
            tick_event = self._read_tick()
        except TwinStoreUnavailable:
            tick_event = None
            self._health_at = 0.0  # say so now
        except (UnknownTickError, PolicyError):
            tick_event = None  # left the window meanwhile, or cannot be read as decision inputs: health says why
        if tick_event is not None:
            events.append(tick_event)
            self.stats.ticks_read += 1
            self.state.metrics.stream_ticks_read.inc()
            self.stats.produce_s += time.perf_counter() - started
        now = time.monotonic()
        if now - self._health_at >= HEALTH_EVERY_S:
            self._health_at = now
            status = assess(self.state).as_event()
            if (status["state"], status["reasons"]) != (self._status["state"], self._status["reasons"]):
                self._status = status
                self._status_event = _Event(sse("status", status).encode())
                events.append(self._status_event)
        return events

    def _after_the_decision(self, tick_wall_time: float) -> None:
        _decision_first(self.state.metrics, tick_wall_time, 0.002)

    def _read_tick(self) -> _Event | None:
        store = self.state.store()
        meta = store.latest_tick()
        if meta is None or self._seen == (meta.tick, meta.write_id):
            return None
        self._after_the_decision(meta.wall_time)
        run = store.read_run_meta()
        current = self._current
        started = run.get("started_wall_time", "")
        new_run = current is None or started != current.run.get("started_wall_time") or meta.tick < current.live.tick
        snap = snapshot_from_store(self.state, meta.tick)
        live = LiveTick.from_columns(
            meta.tick,
            meta.sim_time_s,
            meta.wall_time,
            snap.vehicle_ids,
            snap.vehicle_columns,
            list(snap.servers.ids),
            snap.server_columns,
            snap.inputs.observation.predicted_load_bits,
        )
        if new_run:
            self._encoder.reset()
            kpis: tuple[dict[str, Any], ...] = ()
            since = None
        else:
            assert current is not None
            kpis, since = current.kpis, current.live.tick
        wanted = KPI_BACKFILL if since is None else max(1, min(meta.tick - since, KPI_BACKFILL))
        fresh = [
            {"tick": s.tick, "sim_time_s": s.sim_time_s, "kpis": s.kpis}
            for s in store.kpi_history(last_n=wanted)
            if (since is None or s.tick > since) and s.tick <= meta.tick
        ]
        delta = self._encoder.encode(live)
        delta["kpis"] = fresh
        self._seq += 1
        run_info = {
            "scenario": run.get("scenario"),
            "started_wall_time": started,
            "tick_s": _positive(run.get("tick_s"), 1.0),
            "window": int(run.get("window", "10") or 10),
        }
        self._current = _Current(
            self._seq,
            live,
            run_info,
            list(snap.servers.tiers),
            snap.load_source,
            (kpis + tuple(fresh))[-KPI_BACKFILL:],
        )
        self._seen = (meta.tick, meta.write_id)
        if new_run:  # everything changed: the first tick of a run is a snapshot for every client
            self._snapshot = None
            self._last_load_source = snap.load_source
            data = sse("snapshot", _snapshot_body(delta, self._current), live.tick).encode()
            return _Event(data, self._seq, full=True)
        if snap.load_source != self._last_load_source:  # e.g. the predictor has its window now
            delta["load_source"] = self._last_load_source = snap.load_source
        return _Event(sse("tick", delta, live.tick).encode(), self._seq)


def _decision_first(metrics: Any, tick_wall_time: float, poll_s: float) -> None:
    """Wait until this process answered the bridge's decision request for the tick taken at ``tick_wall_time``
    (at most ``DECISION_FIRST_MAX_S``), when a bridge asks it at all (it answered one in the last few seconds).

    The bridge waits for that answer before it goes on; the stream's work on the same tick (and its sends to
    every client) then runs while the bridge steps SUMO, not while it waits. The snapshot is read from the
    decision's cache meanwhile, not again."""
    if time.time() - metrics.batch_answered_at > BRIDGE_ASKS_WITHIN_S:
        return
    deadline = time.monotonic() + DECISION_FIRST_MAX_S
    while metrics.batch_answered_at < tick_wall_time and time.monotonic() < deadline:
        time.sleep(poll_s)


def _positive(text: str | None, default: float) -> float:
    try:
        value = float(text or "")
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default


def _snapshot_body(delta: dict[str, Any], current: _Current) -> dict[str, Any]:
    body = dict(delta)
    body["kpis"] = list(current.kpis)
    body["run"] = current.run
    body["server_ids"] = current.live.server_ids
    body["server_tiers"] = current.server_tiers
    body["load_source"] = current.load_source
    return body


def _snapshot_event(current: _Current) -> bytes:
    """Everything a new client needs, as of the current tick."""
    delta = DeltaEncoder().encode(current.live)
    return sse("snapshot", _snapshot_body(delta, current), current.live.tick).encode()
