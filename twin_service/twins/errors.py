"""Errors of the twin store; callers never see a redis-py exception type."""

from __future__ import annotations


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
