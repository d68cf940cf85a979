"""Dependencies shared by the routes (``Annotated`` aliases), and the fast JSON response."""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.responses import Response
from fastapi.security import APIKeyHeader

from twin_service.api.state import ApiState
from twin_service.twins import TwinStore

API_KEY_HEADER = "X-API-Key"
_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Required by the decision endpoints when the service runs with TWIN_API_KEY set.",
)


def get_state(request: Request) -> ApiState:
    return request.app.state.twin


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


def require_api_key(state: StateDep, key: Annotated[str | None, Security(_api_key_header)] = None) -> None:
    """401 unless the request carries the configured API key (no key configured: open)."""
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
    """JSON written with the standard library straight from dicts and lists (no response-model pass).

    Used for the decision responses, which are built from numpy arrays with ``tolist()``; non-finite
    floats are replaced by null before this (``allow_nan=False`` turns any left into an error).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
