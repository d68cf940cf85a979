"""A Redis that is emptied (FLUSHALL) or restarted under a live run: the bridge puts the run's records back in
the next tick's own transaction, the decision service goes on deciding every tick, and no tick is torn or lost.

Each test has a redis-server of its own (the real binary), on a short unix-socket path, so that emptying or
restarting it touches no other test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from twin_service.api import create_app
from twin_service.api.serve import ApiThread
from twin_service.bridge.decisions import HttpDecisions
from twin_service.bridge.runner import RunOptions, open_bridge, run_loop
from twin_service.config import Settings
from twin_service.twins import TwinStore
from twin_service.twins.server import RedisHandle, _redis_server_binary, connect

BREAK_AT = 8
"""Redis is emptied or restarted after this many ticks."""
TICKS = 20


class PrivateRedis:
    """A redis-server on ``folder/r.sock`` that a test may stop, start again and empty."""

    def __init__(self, folder: Path) -> None:
        self.sock = folder / "r.sock"
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"unix://{self.sock}"

    def start(self) -> None:
        cmd = [_redis_server_binary(), "--port", "0", "--unixsocket", str(self.sock), "--save", "", "--appendonly",
               "no", "--dir", str(self.folder)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(unix_socket_path=str(self.sock)).ping():
                    return
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    folder = Path(tempfile.mkdtemp(prefix="twin-heal-", dir="/tmp"))  # short: a unix socket path has a limit
    server = PrivateRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_and_break(small_scenario: Path, key_prefix: str, server: PrivateRedis, how: str, tmp_path: Path) -> dict:
    """A run whose decisions come from the decision API over HTTP; after ``BREAK_AT`` ticks Redis is emptied or
    restarted, between two ticks, so that the bridge sees no failed write."""
    handle = RedisHandle(client=connect(server.url), url=server.url, socket_path=str(server.sock), embedded=False)
    kpi_csv = tmp_path / "kpis.csv"
    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix, ticks=TICKS, kpi_csv=kpi_csv)
    notices: list[str] = []
    with open_bridge(options, redis=handle) as (engine, store, _):
        settings = Settings(redis_url=server.url, key_prefix=key_prefix)
        api = ApiThread(create_app(settings, scenario_params=engine.params), "127.0.0.1", _free_port()).start()
        engine.decisions = HttpDecisions(api.url, engine.decisions, retry_after_s=60.0)
        before = store.read_run_meta()
        broke = []

        def break_redis() -> bool:  # called before each tick
            if engine.tick_number == BREAK_AT and not broke:
                if how == "flushall":
                    redis.Redis(unix_socket_path=str(server.sock)).flushall()
                else:
                    server.restart()
                assert redis.Redis(unix_socket_path=str(server.sock)).dbsize() == 0
                broke.append(True)
            return False

        try:
            summary = run_loop(
                engine, store, options, url=server.url, should_stop=break_redis, on_notice=notices.append
            )
        finally:
            api.stop()
        decided = engine.decisions
    reader = TwinStore(connect(server.url), key_prefix)
    rows = kpi_csv.read_text().splitlines()
    return {
        "summary": summary,
        "notices": notices,
        "before": before,
        "after": reader.read_run_meta(),
        "layout": reader.read_layout(),
        "history": reader.kpi_history(),
        "latest": reader.latest_tick(),
        "restores": store.restores,
        "fallback_column": [float(r.split(",")[rows[0].split(",").index("fallback")]) for r in rows[1:]],
        "decisions": decided,
        "n_servers": len(engine.server_ids),
        "vehicles": reader.vehicles_frame(),
    }


@pytest.mark.parametrize("how", ["flushall", "restart"])
def test_an_emptied_or_restarted_redis_gets_the_run_back_with_the_next_tick(
    small_scenario: Path, key_prefix: str, private_redis: PrivateRedis, tmp_path: Path, how: str
):
    got = _run_and_break(small_scenario, key_prefix, private_redis, how, tmp_path)
    summary = got["summary"]
    assert summary["ticks"] == TICKS and summary["redis_retries"] == 0  # no write failed: nothing else told it
    # The records are back, as they were: the same run (the dashboard sees no new run), the same layout.
    assert got["restores"] == 1
    assert got["after"] == got["before"] and got["after"]["run_id"]
    assert len(got["layout"]) == got["n_servers"]
    # Every tick after the break is in the emptied server, whole, in order, none missing.
    assert [s.tick for s in got["history"]] == list(range(BREAK_AT + 1, TICKS + 1))
    assert got["latest"].tick == TICKS
    ids, columns, _ = got["vehicles"]
    assert len(ids) == got["latest"].n_vehicles and all(len(c) == len(ids) for c in columns.values())
    # The decision service decided every tick, the tick right after the break included: never a fallback.
    assert got["fallback_column"] == [0.0] * TICKS and got["decisions"].fallback_ticks == 0
    assert summary["fallback_ticks"] == 0
    assert got["notices"] == [
        f"Redis at {private_redis.url} had lost the run's records (restarted or emptied): "
        f"put them back with tick {BREAK_AT + 1}"
    ]
