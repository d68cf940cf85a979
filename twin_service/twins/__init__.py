"""Twins in Redis: the only package that talks to Redis.

``keys`` names every key; ``frames`` is the data model; ``codec`` packs blocks; ``store`` writes a
tick and reads current state, history and window means; ``server`` connects or starts Redis.
"""

from twin_service.twins.errors import (
    TwinStoreError,
    TwinStoreUnavailable,
    UnknownRunError,
    UnknownTickError,
    UnknownTwinError,
)
from twin_service.twins.frames import (
    Block,
    KpiSample,
    Page,
    ServerTwin,
    TickFrame,
    TickMeta,
    Twin,
    TwinState,
    VehicleTwin,
    WindowMean,
)
from twin_service.twins.keys import TwinKeys
from twin_service.twins.runs import RunOverview, run_names, runs_overview
from twin_service.twins.server import RedisHandle, check_redis_url, connect, open_redis
from twin_service.twins.store import TwinStore

__all__ = [
    "Block",
    "KpiSample",
    "Page",
    "RedisHandle",
    "RunOverview",
    "ServerTwin",
    "TickFrame",
    "TickMeta",
    "Twin",
    "TwinKeys",
    "TwinState",
    "TwinStore",
    "TwinStoreError",
    "TwinStoreUnavailable",
    "UnknownRunError",
    "UnknownTickError",
    "UnknownTwinError",
    "VehicleTwin",
    "WindowMean",
    "check_redis_url",
    "connect",
    "open_redis",
    "run_names",
    "runs_overview",
]
