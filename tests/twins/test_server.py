"""The embedded Redis server: starts, is reachable by URL from another client, and goes away."""

from __future__ import annotations

import os

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
