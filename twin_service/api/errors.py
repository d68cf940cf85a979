"""How errors become responses: 422 bad input, 404 unknown tick, twin or city, 409 data or model that cannot serve (a
model whose weights or outputs are not finite included: the message names it), 503 Redis down.

No handler lets a stack trace out: anything unexpected is logged with an id and answered with a JSON 500
naming that id (a last resort; the tests check that none occurs).

A 422 echoes the offending input, and Python's JSON parser accepts what JSON cannot carry back: ``NaN``,
``Infinity`` and lone surrogates (``"\\ud800"``). Every error body goes through :func:`json_safe` first, so
such input is answered with a 422 that names the field instead of a response that cannot be rendered.
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from twin_service.api.schemas import ErrorBody
from twin_service.api.whatif import EventConflict
from twin_service.events import EVENT_KINDS
from twin_service.policies import ModelError, PolicyError, UnknownPolicyError
from twin_service.policies.inputs import MissingTwinData
from twin_service.twins import TwinStoreUnavailable, UnknownRunError, UnknownTickError, UnknownTwinError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 2
"""Seconds a client should wait before retrying after a 503 (the bridge reconnects within that)."""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown tick, twin id or city."},
    503: {
        "model": ErrorBody,
        "description": "Redis is not configured or unreachable; retry after the `Retry-After` seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
    },
}
AUTH_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong X-API-Key (when the service has a key)."},
}
DECISION_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    **AUTH_ERROR_RESPONSES,
    409: {"model": ErrorBody, "description": "The stored twins or the named model cannot serve this decision."},
    413: {"model": ErrorBody, "description": "Request body too large."},
}


def policy_not_found(field: str, exc: UnknownPolicyError, name: str | None) -> RequestValidationError:
    """A 422 naming the request field that named an unknown policy."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": str(exc), "input": name}])


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that JSON can carry: non-finite floats as the strings ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"``, text that has no UTF-8 form (lone surrogates) with those characters as ``\\uXXXX`` escapes."""
    if isinstance(value, float):
        return (
            value if math.isfinite(value) else ("NaN" if math.isnan(value) else f"{'-' if value < 0 else ''}Infinity")
        )
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _detail(code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": json_safe(message)}, status_code=code, headers=headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 with pydantic's errors (``loc`` names the field), the echoed input made safe to render."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": json_safe(jsonable_encoder([_name_the_tag(e) for e in exc.errors()]))},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _name_the_tag(error: Any) -> Any:
    """``loc`` names the field of a body that is one of several kinds (an event): pydantic's own puts the kind's
    tag in the path (``body.server_outage.duration_s``, dropped here) and, when the tag itself (``kind``) is
    missing or unknown, stops at the body (the field is added)."""
    if not isinstance(error, dict):
        return error
    loc = tuple(error.get("loc", ()))
    if len(loc) > 2 and loc[0] == "body" and loc[1] in EVENT_KINDS:
        return {**error, "loc": (loc[0], *loc[2:])}
    if error.get("type") not in ("union_tag_invalid", "union_tag_not_found"):
        return error
    field = str((error.get("ctx") or {}).get("discriminator", "")).strip("'\"")
    if not field:
        return error
    return {**error, "loc": (*tuple(error.get("loc", ())), field)}


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), {"Retry-After": str(RETRY_AFTER_S)})


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_404_NOT_FOUND, str(exc))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_409_CONFLICT, str(exc))


async def _unknown_policy(request: Request, exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    error_id = secrets.token_hex(6)
    log.error("unhandled error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    return _detail(status.HTTP_500_INTERNAL_SERVER_ERROR, f"internal error {error_id}; see the service log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(TwinStoreUnavailable, _unavailable)
    app.add_exception_handler(UnknownTickError, _not_found)
    app.add_exception_handler(UnknownTwinError, _not_found)
    app.add_exception_handler(UnknownRunError, _not_found)
    app.add_exception_handler(ModelError, _conflict)
    app.add_exception_handler(PolicyError, _conflict)  # a model that produced NaN, or a policy that cannot serve
    app.add_exception_handler(MissingTwinData, _conflict)
    app.add_exception_handler(EventConflict, _conflict)
    app.add_exception_handler(UnknownPolicyError, _unknown_policy)
    app.add_exception_handler(Exception, _unexpected)
