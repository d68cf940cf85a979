"""Where the bridge gets each tick's decisions: the policies in-process, or the decision service over HTTP.

``PolicyDecisions`` (in-process) lives in :mod:`twin_service.engine.decisions`; it is re-exported here.

Either way one batch call per tick returns every vehicle's next host and offloaded fraction. Over HTTP the
service reads the tick's twins from Redis (so the run loop stores the tick first); if the service cannot
be reached or answers with an error, the bridge decides with the same policies locally and marks the tick
as a fallback tick, then tries the service again after a pause.
"""

from __future__ import annotations

import logging
import time

import httpx
import numpy as np

from twin_service.engine import Decisions, PolicyDecisions, TickContext

log = logging.getLogger(__name__)


def check_service_url(url: str) -> str:
    """``url`` without a trailing slash; ``ValueError`` unless it is an http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"{url!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{url!r} is not an http(s) URL of a decision service, such as http://127.0.0.1:8000")
    return url.rstrip("/")


class HttpDecisions:
    """Ask the decision service (``POST /v1/decisions/batch``) for every decision of a tick."""

    reads_twins = True

    def __init__(
        self,
        url: str,
        fallback: PolicyDecisions,
        *,
        api_key: str | None = None,
        timeout_s: float = 2.0,
        retry_after_s: float = 5.0,
        migration: str | None = None,
        offload: str | None = None,
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.url = check_service_url(url)
        self.client = httpx.Client(base_url=self.url, timeout=timeout_s, headers=headers)
        self.fallback = fallback
        self.retry_after_s = retry_after_s
        self._body_extra = {
            k: v for k, v in (("migration_policy", migration), ("offload_policy", offload)) if v is not None
        }
        self._down_until = 0.0
        self.fallback_ticks = 0
        self.last_error: str | None = None

    def decide(self, ctx: TickContext) -> Decisions:
        if time.monotonic() >= self._down_until:
            try:
                return self._ask(ctx)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                message = f"decision service at {self.url} failed: {exc}"
                if message != self.last_error:
                    log.warning("%s; deciding locally (retry in %.0f s)", message, self.retry_after_s)
                self.last_error = message
                self._down_until = time.monotonic() + self.retry_after_s
        self.fallback_ticks += 1
        local = self.fallback.decide(ctx)
        return Decisions(local.target, local.rho, source=f"fallback:{local.source}", fallback=True)

    def _ask(self, ctx: TickContext) -> Decisions:
        response = self.client.post("/v1/decisions/batch", json={"tick": ctx.tick, **self._body_extra})
        response.raise_for_status()
        data = response.json()
        if int(data["tick"]) != ctx.tick:
            raise ValueError(f"asked for tick {ctx.tick}, got tick {data['tick']}")
        target = np.asarray(data["target_index"], dtype=np.int64)
        rho = np.asarray(data["rho"], dtype=np.float64)
        ids = data["vehicle_ids"]
        if ids != ctx.vehicle_ids:
            # Same tick, so the same vehicles: only the order could differ.
            row = {vid: k for k, vid in enumerate(ids)}
            order = np.fromiter((row[v] for v in ctx.vehicle_ids), np.int64, len(ctx.vehicle_ids))
            target, rho = target[order], rho[order]
        if list(data["server_ids"]) != list(ctx.servers.ids):
            raise ValueError("the decision service serves a different server layout")
        mig, off = data.get("migration_policy", {}), data.get("offload_policy", {})
        source = f"api:{mig.get('name')}@{mig.get('version')}+{off.get('name')}@{off.get('version')}"
        return Decisions(target, rho, source=source)

    def close(self) -> None:
        self.client.close()


__all__ = ["HttpDecisions", "PolicyDecisions"]
