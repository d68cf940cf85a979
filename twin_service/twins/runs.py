"""Every run (city, region) a Redis or a cluster holds: the listing behind ``GET /v1/cities``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twin_service.twins import codec
from twin_service.twins.errors import unavailable_as_error
from twin_service.twins.frames import TickMeta
from twin_service.twins.keys import RUN_KEY_PATTERN, TwinKeys, run_name
from twin_service.twins.server import RedisClient


@unavailable_as_error
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


@unavailable_as_error
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
