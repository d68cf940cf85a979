"""Request body size and time limits, as pure ASGI middleware (checked before any parsing)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""8 MiB: a stateless request for 5,000 vehicles with their tasks is about 1.5 MB."""


DEFAULT_BODY_TIMEOUT_S = 10.0


class BodySizeLimitMiddleware:
    """Answer 413 to a request whose body exceeds ``max_bytes``, declared or streamed, and 408 to one whose
    body has not arrived whole within ``timeout_s`` (a client that declares 100 bytes and sends one would
    otherwise hold its connection, and a worker's attention, for as long as it likes). Both close the
    connection: the rest of such a body is not worth reading."""

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BODY_BYTES, timeout_s: float = DEFAULT_BODY_TIMEOUT_S):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def _reject(self, send: Any, status: int = 413, detail: str = "") -> None:
        body = json.dumps({"detail": detail or f"request body larger than {self.max_bytes} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        # Read the body here (bounded in size and time), then replay it: a streamed body without a length is
        # capped too.
        chunks: list[bytes] = []
        size = 0
        other: dict[str, Any] | None = None  # a disconnect before the body ended: the app sees it
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        other = message
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        await self._reject(send)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self._reject(send, 408, f"request body not received within {self.timeout_s:g} s")
            return
        if other is not None:
            await self.app(scope, _replay([other], receive), send)
            return
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[dict[str, Any]], receive: Any) -> Any:
    """A receive that gives ``messages`` first, then waits on the real one (for a disconnect)."""
    pending = list(messages)

    async def replayed() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
