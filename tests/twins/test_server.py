"""The embedded Redis server: starts, is reachable by URL from another client, and goes away."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from twin_service.twins import open_redis


def test_embedded_server_is_shared_through_its_url_and_stops_on_exit():
    with open_redis(None) as handle:
        assert handle.embedded
        assert handle.url == f"unix://{handle.socket_path}"
        assert os.path.exists(handle.socket_path)
        other = redis.Redis.from_url(handle.url, socket_timeout=2, socket_connect_timeout=2)
        handle.client.set("k", b"from the first client")
        assert other.get("k") == b"from the first client"
        assert handle.client.config_get("save") == {"save": ""}  # no snapshots of live twins
        socket_dir = os.path.dirname(handle.socket_path)
    assert not os.path.exists(socket_dir)
    with pytest.raises(redis.ConnectionError):
        other.ping()
    other.close()


def test_url_mode_connects_to_the_given_server(redis_server):
    with open_redis(redis_server.url) as handle:
        assert not handle.embedded
        assert handle.socket_path is None
        assert handle.client.ping()


@pytest.fixture
def short_tmp(monkeypatch) -> Iterator[Path]:
    """A temporary directory short enough for a unix socket path (108 bytes), made the default tempdir."""
    folder = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_new_embedded_server_removes_what_killed_runs_left(short_tmp: Path):
    """A killed run leaves its server's directory behind; the next run removes it, and only it."""
    hour_ago = time.time() - 3600

    def leftover(name: str, pid: int | None) -> Path:
        folder = short_tmp / name
        folder.mkdir()
        (folder / "redis.log").write_text("...")
        if pid is not None:
            (folder / "redis.pid").write_text(f"{pid}\n")
        os.utime(folder, (hour_ago, hour_ago))
        return folder

    exited = subprocess.Popen(["true"])
    exited.wait()
    stale = [leftover("twin-redis-killed", exited.pid), leftover("twin-redis-nopid", None)]
    live = leftover("twin-redis-live", os.getpid())  # its server is still running
    starting = short_tmp / "twin-redis-starting"  # too new to judge: a server may be starting in it
    starting.mkdir()
    other = leftover("not-ours", None)
    with open_redis(None) as handle:
        folder = Path(handle.socket_path).parent
        assert folder.parent == short_tmp
        server_pid = int((folder / "redis.pid").read_text())  # for later runs to check
        assert b"redis-server" in Path(f"/proc/{server_pid}/cmdline").read_bytes()
        assert [p.exists() for p in stale] == [False, False]
        assert live.exists() and starting.exists() and other.exists()
