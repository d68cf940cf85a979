"""The Redis key schema of the twin store: every key this service reads or writes is named here.

All keys of a run live under one configurable prefix (``Settings.key_prefix``, default ``twin``), so
several runs (cities, or regions of a city) share one Redis server or one Redis Cluster. Every key
starts with the prefix as a Redis Cluster *hash tag*, ``{NAME}``: only the part between the braces
decides a key's hash slot, so all keys of a run sit in one slot and each tick's MULTI/EXEC (and every
read of one run) stays on one node of a cluster, while different runs spread over the cluster's
nodes. On a single server the braces are just characters. :attr:`TwinKeys.prefix` holds the tag
itself: build every new key from it (``f"{self.prefix}:..."``) and it lands in the run's slot
(``tests/twins/test_keys.py`` checks every key this class names, and every key of a tick's
transaction). Prefixes may share a beginning (``twin`` and ``twin:a`` are separate runs:
:meth:`TwinKeys.pattern` matches ``{twin}:*`` only) but not contain braces.

Below, ``P`` is the tag ``{NAME}``. Per-tick keys hold one tick of the simulation, written once by the
bridge in a single MULTI/EXEC transaction and never modified afterwards (a retried tick is deleted and
rewritten whole in one transaction). Readers resolve the latest tick once, then read only keys of that
tick number. ``E`` is the entity block: ``veh`` (vehicles) or ``srv`` (edge servers: RSUs, UAVs, the satellite).

========================  ========  ============================================  ========================
Key                       Type      Content                                       Lifetime
========================  ========  ============================================  ========================
``P:run``                 HASH      run metadata: scenario, param_hash, window,   until ``clear()``
                                    started_wall_time, free-form extras
``P:layout``              STRING    JSON list of edge-server dicts (static)       until ``clear()``
``P:latest``              STRING    JSON meta of the latest tick (as              rewritten every tick;
                                    ``P:tick:{n}:meta``); flipped in the same     TTL safety net
                                    transaction as the tick's blocks
``P:ticks``               ZSET      tick numbers whose per-tick keys exist        rewritten every tick;
                                    (member = score = tick)                       TTL safety net
``P:log``                 STREAM    one entry per written tick: tick,             capped (MAXLEN ~);
                                    sim_time_s, wall_time, kpis (JSON); read      TTL safety net
                                    for KPI history, XREAD for new-tick events
``P:events``              HASH      what-if event id -> the event as posted       until ``clear()``
                                    (JSON: kind and fields, posted_wall_time,
                                    source); written by the API or the bridge
``P:events:seq``          STRING    counter of event ids (INCR)                   until ``clear()``
``P:events:end``          HASH      event id -> JSON of a request to end it       until ``clear()``
                                    early (``DELETE /v1/events/{id}``)
``P:events:state``        HASH      event id -> JSON of its course, written by    until ``clear()``
                                    the bridge in the tick it changed: status,
                                    start and end tick and sim time, reason
``P:decisions``           STREAM    the decision log: one entry per tick, id      capped (MAXLEN ~,
                                    ``{tick}-0`` (the tick decided on): source,   ``decision_log_ticks``);
                                    fallback, every vehicle's packed decision     TTL safety net
                                    (``twins.declog``)
``P:tick:{n}:meta``       STRING    JSON: tick, sim_time_s, wall_time, write_id   deleted when tick
                                    (new on every write) and per entity ``E``:    n + window is written;
                                    rows, numeric and text column names, text     TTL safety net
                                    widths, id width
``P:tick:{n}:kpi``        HASH      KPI name -> float (repr)                      as ``meta``
``P:tick:{n}:E:ids``      STRING    ids joined by ``\\n``, in row order           as ``meta``
``P:tick:{n}:E:num``      STRING    numeric columns as one little-endian          as ``meta``
                                    float64 row-major (rows x columns) array
``P:tick:{n}:E:text``     STRING    text columns as row-major fixed-width         as ``meta``
                                    records: each value UTF-8, NUL-padded to its
                                    column's width
``P:tick:{n}:E:idx``      HASH      id -> row, bucketed: field = bucket number    as ``meta``
                                    ``fnv1a_32(utf8(id)) % INDEX_BUCKETS``,
                                    value = records of (id NUL-padded to the id
                                    width, row as little-endian uint32)
========================  ========  ============================================  ========================

One twin is read with a bounded number of round trips whatever the tick's size: HGET of its index
bucket in each tick of the window, then GETRANGE of its row of ``num`` and ``text``. The index is
bucketed because a hash field per twin costs a Python-packed argument pair and a Redis allocation
per twin per tick: with 1000 vehicles that was 0.6 ms of a 1.9 ms write; 32 buckets cost 0.1 ms.

The window is in ticks: writing tick ``n`` deletes the per-tick keys of every tick ``<= n - window``,
so at most ``window`` ticks are held. Every per-tick key also carries an EXPIRE (default one day),
so an abandoned run's keys vanish even if nobody calls ``clear()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Entity = Literal["veh", "srv"]
"""Entity block of a tick: vehicles or edge servers."""

ENTITIES: tuple[Entity, ...] = ("veh", "srv")
INDEX_BUCKETS = 32
"""Fields of each index hash: few enough that the HSET is cheap to send (two arguments per field,
packed in Python), many enough that a bucket stays small (160 ids, 2.2 kB, with 5000 vehicles)."""
BLOCK_PARTS: tuple[str, ...] = ("ids", "num", "text", "idx")

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "\\*?[]^"})


@dataclass(frozen=True)
class TwinKeys:
    """Names of every key of one run.

    ``TwinKeys("twin").prefix`` is ``"{twin}"``, the run's hash tag, and :attr:`name` is ``"twin"``; the tag
    itself is accepted too (``TwinKeys("{twin}") == TwinKeys("twin")``).
    """

    prefix: str = "twin"

    def __post_init__(self) -> None:
        name = self.prefix
        if name.startswith("{") and name.endswith("}"):
            name = name[1:-1]
        if not name or any(c.isspace() or c in "{}" for c in name):
            raise ValueError(f"key prefix must be non-empty, without whitespace or braces, got {self.prefix!r}")
        object.__setattr__(self, "prefix", "{" + name + "}")

    @property
    def name(self) -> str:
        """The prefix as given (``Settings.key_prefix``): the run's or city's name."""
        return self.prefix[1:-1]

    # ---- run-wide keys
    @property
    def run(self) -> str:
        return f"{self.prefix}:run"

    @property
    def layout(self) -> str:
        return f"{self.prefix}:layout"

    @property
    def latest(self) -> str:
        return f"{self.prefix}:latest"

    @property
    def ticks(self) -> str:
        return f"{self.prefix}:ticks"

    @property
    def log(self) -> str:
        return f"{self.prefix}:log"

    # ---- what-if events and the decision log
    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def events_seq(self) -> str:
        return f"{self.prefix}:events:seq"

    @property
    def events_end(self) -> str:
        return f"{self.prefix}:events:end"

    @property
    def events_state(self) -> str:
        return f"{self.prefix}:events:state"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}:decisions"

    # ---- per-tick keys
    def tick_meta(self, tick: int) -> str:
        return f"{self.prefix}:tick:{tick}:meta"

    def tick_kpi(self, tick: int) -> str:
        return f"{self.prefix}:tick:{tick}:kpi"

    def block(self, tick: int, entity: Entity, part: str) -> str:
        """``P:tick:{n}:{entity}:{part}`` with part one of ids, num, text, idx."""
        return f"{self.prefix}:tick:{tick}:{entity}:{part}"

    def tick_keys(self, tick: int) -> list[str]:
        """Every per-tick key of ``tick`` (the set is the same for every tick, whatever its columns)."""
        keys = [self.tick_meta(tick), self.tick_kpi(tick)]
        keys += [self.block(tick, e, p) for e in ENTITIES for p in BLOCK_PARTS]
        return keys

    def pattern(self) -> str:
        """SCAN MATCH pattern of every key of the run (glob characters in the prefix escaped)."""
        return self.prefix.translate(_GLOB_SPECIAL) + ":*"


RUN_KEY_PATTERN = "{*}:run"
"""SCAN MATCH pattern of every run's ``P:run``: how the runs (cities) sharing a server or cluster are found."""


def run_name(run_key: bytes | str) -> str | None:
    """The prefix (city) whose ``P:run`` key this is, or None for a key of another shape."""
    key = run_key.decode(errors="replace") if isinstance(run_key, bytes) else run_key
    if not (key.startswith("{") and key.endswith("}:run")):
        return None
    name = key[1:-5]
    return name if name and "{" not in name and "}" not in name else None
