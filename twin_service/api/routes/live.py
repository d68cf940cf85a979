"""``GET /v1/map`` and ``GET /v1/stream``: the run's road map, and its ticks as a live delta stream.

Both feed the dashboard (``/dashboard``) and suit any other live client: the map once per run, then
Server-Sent Events with one small delta per tick (``twin_service.api.live``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import socket
import struct
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from twin_service.api.deps import API_KEY_HEADER, StateDep, StoreDep, require_api_key
from twin_service.api.errors import ERROR_RESPONSES, RETRY_AFTER_S
from twin_service.api.live import (
    HEALTH_EVERY_S,
    KEEPALIVE_S,
    RETRY_MS,
    SERVER_FIELDS,
    VEHICLE_FIELDS,
    LiveClient,
    LiveHub,
    StreamFull,
)
from twin_service.api.schemas import ErrorBody
from twin_service.config import BITS_PER_MB, ScenarioError, load_params, resolve_scenario
from twin_service.scenario.netmap import RoadMap, read_road_map

router = APIRouter(tags=["live"])

GZIP_MIN_BYTES = 32 * 1024
SEND_BUFFER_BYTES = 256 * 1024
"""The kernel's send buffer of a stream connection (SO_SNDBUF; Linux doubles it): with the server's own 64 KiB
and the hub's queue, all that a client that does not read can hold before it is dropped."""
TRANSPORT_SCOPE_KEY = "twin.transport"
"""Where the app puts the connection's transport, when the server exposes it (``app.TwinApi``): a dropped
stream client's connection is aborted with it."""


class RoadOut(BaseModel):
    id: str = Field(description="SUMO edge id (one of the road's two directions).")
    lanes: int = Field(description="Lanes in the wider direction.")
    xy: list[float] = Field(description="Polyline in net metres, flat: x0, y0, x1, y1, ...", examples=[[0, 0, 250, 0]])


class MapServerOut(BaseModel):
    id: str
    tier: str = Field(examples=["rsu"])
    x_m: float
    y_m: float
    range_m: float | None = Field(description="Coverage radius (null: unlimited, the satellite).")
    cache_bits: float | None = Field(description="L_max, the load at which it is overloaded (null: unlimited).")
    patrol_xy: list[list[float]] = Field(description="A UAV's patrol polyline in net metres (empty otherwise).")


class RunMap(BaseModel):
    scenario: str | None = Field(description="The run's scenario name (null before a run has started).")
    started_wall_time: str | None = Field(description="Identifies the run: it changes when a new run starts.")
    boundary: list[float] = Field(description="xmin, ymin, xmax, ymax in net metres.")
    roads: list[RoadOut]
    roads_detail: str = Field(description="Why ``roads`` is empty, when it is.")
    servers: list[MapServerOut]


@lru_cache(maxsize=4)
def _road_map(path: str, mtime_ns: int) -> RoadMap:  # mtime in the key: a rebuilt net is read again
    return read_road_map(path)


def _roads_of(run: dict[str, str]) -> tuple[RoadMap | None, str]:
    """The road map of the run's scenario, looked up as the decision service finds its parameters."""
    reasons = []
    for candidate in (run.get("scenario_dir", ""), run.get("scenario", "")):
        if not candidate:
            continue
        try:
            folder = resolve_scenario(candidate)
            net = Path(load_params(folder).scenario.net_file)
            net = net if net.is_absolute() else folder / net
            return _road_map(str(net), net.stat().st_mtime_ns), ""
        except (ScenarioError, OSError) as exc:
            reasons.append(str(exc))
    if not run:
        return None, "no run in Redis yet"
    return None, "the run's scenario is not readable here: " + "; ".join(reasons or ["the run names none"])


def _finite_or_none(value: Any, limit: float = math.inf) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v < limit else None


@router.get(
    "/v1/map",
    response_model=RunMap,
    summary="Road map and edge servers of the run",
    responses={
        200: {"description": "The map; gzip-encoded when large and the client accepts it."},
        503: ERROR_RESPONSES[503],
    },
)
def run_map(request: Request, store: StoreDep) -> Response:
    """The roads of the run's SUMO net (centre lines, simplified to 1 m) and the edge servers with their
    coverage radius, load limit and UAV patrols, in net metres: what a map of the live run draws under
    the vehicles. Fetch it again when ``started_wall_time`` changes (a new run)."""
    run = store.read_run_meta()
    layout = store.read_layout()
    road_map, detail = _roads_of(run)
    servers = [
        {
            "id": str(s.get("id")),
            "tier": str(s.get("tier")),
            "x_m": float(s.get("x_m", 0.0)),
            "y_m": float(s.get("y_m", 0.0)),
            "range_m": None if s.get("tier") == "satellite" else _finite_or_none(s.get("range_m"), 1e11),
            "cache_bits": None
            if s.get("tier") == "satellite"
            else _finite_or_none(float(s.get("cache_mb", math.inf)) * BITS_PER_MB),
            "patrol_xy": [[float(v) for v in p] for p in s.get("patrol_xy", [])],
        }
        for s in layout
    ]
    if road_map is not None:
        boundary = list(road_map.boundary)
    else:
        xs = [s["x_m"] for s in servers if s["tier"] != "satellite"] or [0.0]
        ys = [s["y_m"] for s in servers if s["tier"] != "satellite"] or [0.0]
        boundary = [min(xs), min(ys), max(xs), max(ys)]
    body = {
        "scenario": run.get("scenario"),
        "started_wall_time": run.get("started_wall_time"),
        "boundary": boundary,
        "roads": [{"id": r.edge_id, "lanes": r.lanes, "xy": list(r.xy)} for r in road_map.roads] if road_map else [],
        "roads_detail": detail,
        "servers": servers,
    }
    raw = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    if len(raw) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(
            gzip.compress(raw, 5),
            media_type="application/json",
            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )
    return Response(raw, media_type="application/json", headers={"Vary": "Accept-Encoding"})


STREAM_DESCRIPTION = f"""\
Server-Sent Events (`text/event-stream`), one event per tick the bridge writes. Each `data:` line is
JSON:

* `snapshot` (first, again when a new run starts, and when the client fell behind): everything the client
  needs. `vehicles` holds every vehicle, `servers` every server, `kpis` the recent KPI history, plus `run`,
  `server_ids`, `server_tiers` and `load_source` (where `predicted_load_bits` comes from: the served workload
  predictor, named, or each server's current load).
* `tick`: only what changed since the previous event of this stream. `vehicles` holds new or changed
  rows `[{", ".join(("id", *VEHICLE_FIELDS))}]` (positions to 0.1 m), `left` the ids that are gone,
  `migrations` `[id, from_server_index, to_server_index]`, `servers` changed rows
  `[{", ".join(("index", *SERVER_FIELDS))}]`, `kpis` the KPI samples written since (and `load_source` when
  it changed).
* `status`: the service's state changed (checked every {HEALTH_EVERY_S:g} s): `state` is `ok`, `degraded`
  (it cannot decide, or the bridge decides locally in most of its recent ticks; `reasons` says why) or
  `unavailable` (Redis unreachable; the stream goes on when it is back).

Every client gets the same events: the service reads each tick once for all of them. A client that falls a
whole buffer behind (`TWIN_STREAM_BUFFER_TICKS`) gets a fresh `snapshot` instead of what it missed; one that
reads nothing meanwhile is disconnected. At most `TWIN_STREAM_MAX_CLIENTS` clients per service process: beyond
that, 503 with `Retry-After`. With `TWIN_API_KEY` set the `{API_KEY_HEADER}` header is required (read the stream
with `fetch`, which can send headers; `EventSource` cannot).
"""


@router.get(
    "/v1/stream",
    summary="Live tick stream (Server-Sent Events, deltas)",
    description=STREAM_DESCRIPTION,
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={
        200: {
            "description": "An endless event stream (ends after `max_events` events when given).",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": 'id: 42\nevent: tick\ndata: {"tick":42,"sim_time_s":42.0,"n_vehicles":2,'
                    '"vehicles":[["veh7",812.4,1630.0,3,0]],"left":["veh2"],"migrations":[["veh7",1,3]],'
                    '"servers":[[3,1500.0,990.2,36000000,18,0,36000000]],"kpis":[...]}\n\n',
                }
            },
        },
        401: {"model": ErrorBody, "description": "Missing or wrong X-API-Key (when the service has a key)."},
        503: {
            "model": ErrorBody,
            "description": "Redis is not configured or unreachable, or the service streams to as many clients as "
            "it may; retry after the `Retry-After` seconds.",
            "headers": ERROR_RESPONSES[503]["headers"],
        },
    },
)
async def stream(
    request: Request,
    state: StateDep,
    max_events: Annotated[
        int | None,
        Query(
            ge=1, le=1_000_000, description="End the stream after this many snapshot and tick events (default: never)."
        ),
    ] = None,
) -> Response:
    hub: LiveHub = state.hub
    try:
        hub.check_room()  # refused first, at no cost: no Redis round trip for a connection that cannot stay
        store = state.store()  # 503 now, before the stream starts, when Redis is not configured or down
        await run_in_threadpool(store.ping)
        client = hub.subscribe()
    except StreamFull as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    return EventStream(hub, client, max_events)


class EventStream(Response):
    """The response of one live-stream client: the hub's events, sent as they come.

    While the client does not read, sending waits on it (the server's flow control) and its queue in the hub
    fills; when the hub drops it, this stops waiting and closes the connection outright, without the bytes
    still buffered for it.
    """

    media_type = "text/event-stream"

    def __init__(self, hub: LiveHub, client: LiveClient, max_events: int | None) -> None:
        self.hub, self.client, self.max_events = hub, client, max_events
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Mapping[str, Any], receive: Any, send: Any) -> None:  # type: ignore[override]
        client, completed = self.client, False
        transport = scope.get(TRANSPORT_SCOPE_KEY)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:  # what the kernel holds for a client that does not read: bounded too
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": f"retry: {RETRY_MS}\n\n".encode(), "more_body": True})
            async with anyio.create_task_group() as group:
                client.cancel = group.cancel_scope.cancel

                async def until_disconnected() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(until_disconnected)
                completed = await self._pump(send)
                group.cancel_scope.cancel()
        finally:
            self.hub.unsubscribe(client)
        if client.dropped:
            if transport is not None:
                _abort(transport)
                for _ in range(3):  # let the server see the connection go before the app returns
                    await anyio.sleep(0)
            return
        if completed:
            with anyio.move_on_after(KEEPALIVE_S):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send: Any) -> bool:
        """Send events until the client is dropped (False) or ``max_events`` were sent (True)."""
        sent = 0
        while True:
            data = await self.hub.next_event(self.client)
            if data is None:
                return False
            await send({"type": "http.response.body", "body": data, "more_body": True})
            self.client.sent += 1
            if data.startswith(b"id:"):  # a snapshot or a tick (status events and keep-alives carry no id)
                sent += 1
                if self.max_events is not None and sent >= self.max_events:
                    return True


def _abort(transport: Any) -> None:
    """Close a connection outright: a reset, dropping what is buffered for it here and in the kernel (a client
    that does not read would otherwise hold it)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
