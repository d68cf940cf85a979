"""Errors of the twin store; callers never see a redis-py exception type."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    CrossSlotTransactionError,
    InvalidPipelineStack,
    RedisClusterException,
    TryAgainError,
)

P = ParamSpec("P")
R = TypeVar("R")


class TwinStoreError(Exception):
    """Base class of every error the twin store raises."""


class TwinStoreUnavailable(TwinStoreError):
    """Redis could not be reached or did not answer in time.

    The original redis ``ConnectionError`` / ``TimeoutError`` is the ``__cause__``. Writes are
    idempotent per tick, so the bridge may retry the same tick with backoff; the API answers 503.
    """


class UnknownTwinError(TwinStoreError, KeyError):
    """No vehicle or server with this id in the requested tick."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownTickError(TwinStoreError, LookupError):
    """The requested tick is not held (never written, or older than the window); or no tick yet."""


class UnknownRunError(TwinStoreError, LookupError):
    """No run (city) under this key prefix in Redis."""


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,  # a slot's master is down and not failed over yet (MasterDownError too)
    TryAgainError,
    ClusterError,  # redirections exhausted while the cluster reshapes
    RedisClusterException,  # no node reachable to learn the cluster's shape (see server._as_unavailable)
)
_PROGRAMMING_ERRORS = (CrossSlotTransactionError, InvalidPipelineStack)
"""Cluster client errors that are bugs here (keys in two slots), never an unreachable server."""


def unavailable_as_error(method: Callable[P, R]) -> Callable[P, R]:
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
