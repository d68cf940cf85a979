"""Dependencies shared by the routes (``Annotated`` aliases), and the fast JSON response."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import anyio
import orjson
from fastapi import Depends, HTTPException, Query, Request, Security, status
from fastapi.responses import Response
from fastapi.security import APIKeyHeader

from twin_service.api.state import ApiState
from twin_service.config import KEY_PREFIX_PATTERN
from twin_service.twins import TwinStore

API_KEY_HEADER = "X-API-Key"
_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="The service's key (TWIN_API_KEY). Required by the decision endpoints whenever a key is set, and "
    "by the read endpoints (twins, ticks, KPIs, metrics) when TWIN_API_KEY_READS is set too; /v1/health and the "
    "docs are always open.",
)


CityQuery = Annotated[
    str | None,
    Query(
        pattern=KEY_PREFIX_PATTERN,
        max_length=64,
        description="The city (or region) to serve: the key prefix its bridge writes under, on the same Redis or "
        "Redis Cluster (`GET /v1/cities` lists them). Default: the service's own (`TWIN_KEY_PREFIX`). 404 for a "
        "city no bridge writes.",
        examples=["hamburg"],
    ),
]


async def get_state(request: Request, city: CityQuery = None) -> ApiState:
    # async, like every dependency that does no I/O: FastAPI runs a plain ``def`` dependency on a worker
    # thread, and that hop cost more CPU than the decision itself (profiled under bench_load.py). A city
    # asked for the first time is looked up in Redis on a worker thread.
    home: ApiState = request.app.state.twin
    state = home.known_city(city)
    if state is None:
        state = await anyio.to_thread.run_sync(home.city, city)
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def get_store(state: StateDep) -> TwinStore:
    """The twin store (raises ``TwinStoreUnavailable`` -> 503 when Redis is not configured or unreachable).

    The run context (reread every few seconds) gives the store the writer's window, so twin reads return
    as much history as the bridge keeps, not the reader's default.
    """
    store = state.store()
    state.run_context(store)
    return store


StoreDep = Annotated[TwinStore, Depends(get_store)]


async def require_api_key(state: StateDep, key: Annotated[str | None, Security(_api_key_header)] = None) -> None:
    """401 unless the request carries the configured API key (no key configured: open).

    The decision routes always depend on this; the read routes do when ``Settings.api_key_reads`` is set.
    """
    expected = state.settings.api_key
    if not expected:
        return
    if key is None or not secrets.compare_digest(key.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"missing or wrong {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": "ApiKey"},
        )


class JSONBody(Response):
    """JSON written by orjson straight from dicts and lists (no response-model pass).

    Used for the decision responses, which are built from numpy arrays with ``tolist()``: a 1,000-vehicle batch
    in 0.05 ms against 0.8 ms with the standard library (issue 20). Non-finite floats are replaced by null before
    this; orjson writes any left as null too (JSON has no NaN).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
