"""Cluster safety is a property of the key schema: every key of a run carries the run's hash tag, so a tick's
transaction (and every read of one run) stays in one Redis Cluster slot.

The first test asks the schema itself (every key-building member of :class:`TwinKeys`, so keys added later are
checked too); the second asks a real Redis which keys each command of a tick's transaction touches
(``COMMAND GETKEYS``), over every path a write can take.
"""

from __future__ import annotations

import fnmatch
import inspect
import itertools
from typing import Any

import numpy as np
import pytest
import redis
from redis.crc import key_slot

from twin_service.twins import TwinKeys, TwinStore
from twin_service.twins.keys import BLOCK_PARTS, ENTITIES, RUN_KEY_PATTERN, run_name


def _every_key(keys: TwinKeys) -> list[str]:
    """Every key the schema builds: each str property, and each method called with sample ticks, entities, parts."""
    samples: dict[str, list[Any]] = {"tick": [0, 7, 123456], "entity": list(ENTITIES), "part": list(BLOCK_PARTS)}
    out: list[str] = []
    for name, member in inspect.getmembers(type(keys)):
        if name.startswith("_") or name in ("name", "prefix", "pattern"):
            continue
        if isinstance(member, property):
            value = getattr(keys, name)
            out += [value] if isinstance(value, str) else list(value)
        elif inspect.isfunction(member):
            params = [p for p in inspect.signature(member).parameters if p != "self"]
            missing = [p for p in params if p not in samples]
            assert not missing, f"TwinKeys.{name}: teach this test sample values for {missing}"
            for combo in itertools.product(*(samples[p] for p in params)):
                value = member(keys, *combo)
                out += [value] if isinstance(value, str) else list(value)
    return out


@pytest.mark.parametrize("prefix", ["twin", "hamburg", "city:north", "a.b-c_1"])
def test_every_key_the_schema_names_carries_the_run_tag_and_so_one_slot(prefix):
    keys = TwinKeys(prefix)
    every = _every_key(keys)
    assert len(every) > 10
    assert all(k.startswith("{" + prefix + "}:") for k in every)
    assert {key_slot(k.encode()) for k in every} == {key_slot(keys.run.encode())}
    assert keys.name == prefix and keys.prefix == "{" + prefix + "}"
    assert TwinKeys(keys.prefix) == keys  # the tag itself names the same run


def test_runs_spread_over_slots_and_prefixes_that_share_a_beginning_stay_apart():
    slots = {key_slot(TwinKeys(f"city-{i}").run.encode()) for i in range(64)}
    assert len(slots) > 50  # cities land all over the cluster, not on one node
    assert TwinKeys("twin").pattern() == "{twin}:*"
    # 'twin' does not match the keys of 'twin:a' (a prefix without the tag cleared both)
    assert not fnmatch.fnmatchcase(TwinKeys("twin:a").run, TwinKeys("twin").pattern())


@pytest.mark.parametrize("bad", ["", "a b", "{x}y", "x}", "{", "{}"])
def test_a_prefix_with_braces_or_spaces_is_refused(bad):
    with pytest.raises(ValueError, match="key prefix"):
        TwinKeys(bad)


def test_run_keys_name_their_city():
    assert run_name(TwinKeys("hamburg").run) == "hamburg"
    assert run_name(TwinKeys("city:north").run.encode()) == "city:north"
    assert run_name("hamburg:run") is None and run_name("{a}:tick:1:run") is None
    assert fnmatch.fnmatchcase(TwinKeys("x").run, RUN_KEY_PATTERN)
    assert not fnmatch.fnmatchcase(TwinKeys("x").latest, RUN_KEY_PATTERN)


class _Recorder:
    """Every command queued in a transaction (MULTI/EXEC) of redis-py's single-server pipeline."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.transactions: list[list[tuple[Any, ...]]] = []
        original = redis.client.Pipeline.execute
        recorder = self

        def execute(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            if pipe.transaction and pipe.command_stack:
                recorder.transactions.append([tuple(args) for args, _options in pipe.command_stack])
            return original(pipe, *args, **kwargs)

        monkeypatch.setattr(redis.client.Pipeline, "execute", execute)


def _slots_of(client: redis.Redis, command: tuple[Any, ...]) -> set[int]:
    """The slots of the keys ``command`` touches, as the server reads the command (COMMAND GETKEYS)."""
    try:
        keys = client.command_getkeys(*command)
    except redis.ResponseError as exc:
        assert "no key" in str(exc).lower() or "not" in str(exc).lower(), exc
        return set()
    return {key_slot(k if isinstance(k, bytes) else str(k).encode()) for k in keys}


def test_every_key_of_every_tick_transaction_maps_to_one_slot(redis_client, key_prefix, make_frame, monkeypatch):
    """First write, steady writes, the window's deletions, a rewritten tick, records put back into an emptied
    server, and ticks put back after a server lost them: one slot, always."""
    recorder = _Recorder(monkeypatch)
    store = TwinStore(redis_client, key_prefix, window=3)
    store.begin_run("city", "hash", [{"id": "rsu_0"}], seed=1)
    rng = np.random.default_rng(0)
    frames = [make_frame(t, [f"v{i}" for i in range(t + 2)], rng) for t in range(8)]
    for frame in frames[:5]:
        store.write_tick(frame)
    store.write_tick(frames[4])  # rewritten
    redis_client.delete(store.keys.run, store.keys.layout)  # emptied: the records come back
    store.write_tick(frames[5])
    # A server that lost the last tick it acknowledged (as a replica behind its dead master would)
    redis_client.unlink(*store.keys.tick_keys(5))
    redis_client.zrem(store.keys.ticks, 5)
    redis_client.hset(store.keys.run, "last_tick", "4")
    store.write_tick(frames[6])
    assert store.restores == 1 and store.reasserted_ticks == 1
    assert len(recorder.transactions) >= 8
    commands = [c for tx in recorder.transactions for c in tx]
    assert {c[0] for c in commands} >= {"SET", "HSET", "UNLINK", "ZADD", "ZREM", "XADD", "EXPIRE", "DEL"}
    slots = set().union(*(_slots_of(redis_client, c) for c in commands))
    assert slots == {key_slot(store.keys.run.encode())}
