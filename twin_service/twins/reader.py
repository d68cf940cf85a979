"""Reading the twins: a consistent snapshot of one tick, one twin's window, whole blocks, window means, KPIs.

Readers resolve the latest tick once, then read only keys of that tick number, which do not change until they
leave the window (see :mod:`twin_service.twins.keys`); a tick that left the window or was rewritten between
two round trips is read again. :class:`TwinReader` is the read side of :class:`twin_service.twins.store.TwinStore`
(which adds the writer); readers may be many, in other processes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from redis.cluster import RedisCluster

from twin_service.twins import codec
from twin_service.twins.codec import BlockLayout, StoredTick
from twin_service.twins.errors import UnknownTickError, UnknownTwinError, unavailable_as_error
from twin_service.twins.frames import (
    Block,
    KpiSample,
    Page,
    ServerTwin,
    TickMeta,
    Twin,
    TwinState,
    Value,
    VehicleTwin,
    WindowMean,
)
from twin_service.twins.keys import Entity, TwinKeys
from twin_service.twins.server import RedisClient, hash_reply
from twin_service.twins.window import window_mean_aligned

_READ_ATTEMPTS = 5
"""A reader that resolved the latest tick resolves again when that tick left the window before it
was read (the reader fell ``window`` writes behind) or was rewritten meanwhile; at most this often."""

_KIND = {"veh": "vehicle", "srv": "server"}


class TwinReader:
    """Twins of vehicles and edge servers as stored under ``prefix``, read with a window of ``window`` ticks.

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
    """

    def __init__(self, redis_client: RedisClient, prefix: str = "twin", window: int = 10) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if redis_client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("TwinStore needs a Redis client with decode_responses=False")
        self.redis = redis_client
        self.keys = TwinKeys(prefix)
        self.window = window
        self._blocks: dict[tuple[str, int], tuple[str, list[str], np.ndarray, tuple[str, ...], bytes]] = {}
        """Decoded entity blocks of recent ticks by (entity, tick): (write_id, ids, table, columns, raw ids)."""
        self._blocks_lock = threading.Lock()

    @property
    def prefix(self) -> str:
        """The run's name (``Settings.key_prefix``); its keys carry it as the hash tag ``{prefix}``."""
        return self.keys.name

    @property
    def cluster(self) -> bool:
        """Whether the store talks to a Redis Cluster."""
        return isinstance(self.redis, RedisCluster)

    @unavailable_as_error
    def ping(self) -> None:
        """Raise :class:`TwinStoreUnavailable` unless Redis answers."""
        self.redis.ping()

    # ------------------------------------------------------------------------------------------
    # Readers: tick resolution
    # ------------------------------------------------------------------------------------------

    @unavailable_as_error
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

    @unavailable_as_error
    def vehicle(self, vid: str, tick: int | None = None) -> VehicleTwin:
        """One vehicle at ``tick`` (default latest), with its window history and window mean."""
        return self._twin("veh", vid, tick, VehicleTwin)

    @unavailable_as_error
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

    @unavailable_as_error
    def vehicle_ids(self, tick: int | None = None) -> list[str]:
        """Ids of the vehicles present at ``tick`` (default latest), in row order."""
        return self._ids("veh", tick)

    @unavailable_as_error
    def server_ids(self, tick: int | None = None) -> list[str]:
        """Ids of the edge servers at ``tick`` (default latest), in row order."""
        return self._ids("srv", tick)

    def _ids(self, entity: Entity, tick: int | None) -> list[str]:
        stored, (ids_raw,) = self._read_tick(tick, lambda pipe, n: pipe.get(self.keys.block(n, entity, "ids")))
        return codec.decode_ids(ids_raw, stored.layouts[entity].n)

    @unavailable_as_error
    def list_vehicles(self, tick: int | None = None, offset: int = 0, limit: int = 100) -> Page:
        """A page of vehicle ids (row order) and the number of vehicles at ``tick``."""
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must be >= 0, got {offset}, {limit}")
        ids = self._ids("veh", tick)
        return Page(ids=ids[offset : offset + limit], total=len(ids))

    @unavailable_as_error
    def vehicles_frame(self, tick: int | None = None) -> Block:
        """All vehicles of one tick: ``(ids, numeric columns, text columns)``."""
        return self._frame("veh", tick)

    @unavailable_as_error
    def servers_frame(self, tick: int | None = None) -> Block:
        """All edge servers of one tick: ``(ids, numeric columns, text columns)``."""
        return self._frame("srv", tick)

    @unavailable_as_error
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

    @unavailable_as_error
    def vehicles_window_mean(self, tick: int | None = None) -> WindowMean:
        """Paper B Eq. 37 for every vehicle present at ``tick``, aligned with its ids."""
        return self._window_mean("veh", tick)

    @unavailable_as_error
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

    @unavailable_as_error
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

    @unavailable_as_error
    def kpis(self, tick: int | None = None) -> dict[str, float]:
        """KPIs of ``tick`` (default latest)."""
        _, (raw,) = self._read_tick(tick, lambda pipe, n: pipe.hgetall(self.keys.tick_kpi(n)))
        return {name.decode(): float(v) for name, v in hash_reply(raw).items()}

    @unavailable_as_error
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
