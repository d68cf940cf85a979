"""Where the bridge gets each tick's decisions: the policies in-process, or the decision service over HTTP.

``PolicyDecisions`` (in-process) lives in :mod:`twin_service.engine.decisions`; it is re-exported here.

Either way one batch call per tick returns every vehicle's next host and offloaded fraction. Over HTTP the
service reads the tick's twins from Redis (so the run loop stores the tick first). The request has a
deadline: a tick never waits longer than ``deadline_s`` for the service. If the service cannot be reached,
misses the deadline or answers with an error, the bridge decides with the same policies locally and marks
the tick as a fallback tick. A service that answered (with an error) is asked again on the next tick; one
that could not be reached or was too slow, after ``retry_after_s``. The bridge says in one line when it
starts deciding locally and in one when it goes back to the service.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import httpx
import numpy as np

from twin_service.engine import Decisions, PolicyDecisions, TickContext

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S = 1.0
"""Longest a tick waits for the decision service before deciding locally."""
DEFAULT_RETRY_AFTER_S = 2.0
"""After the service could not be reached or missed the deadline, decide locally this long before asking again."""


def check_service_url(url: str) -> str:
    """``url`` without a trailing slash; ``ValueError`` unless it is an http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"{url!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{url!r} is not an http(s) URL of a decision service, such as http://127.0.0.1:8000")
    return url.rstrip("/")


class _Unreachable(Exception):
    """The service could not be reached or did not answer within the deadline: back off before asking again."""


class HttpDecisions:
    """Ask the decision service (``POST /v1/decisions/batch``) for every decision of a tick, within a deadline."""

    reads_twins = True

    def __init__(
        self,
        url: str,
        fallback: PolicyDecisions,
        *,
        api_key: str | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
        migration: str | None = None,
        offload: str | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.explain = False
        """Ask the service for the decision log's record of its decisions too (``"log": true``); set with the
        fallback's ``explain`` by the bridge when its decision log is on."""
        if not deadline_s > 0:
            raise ValueError(f"the decision deadline must be > 0 s, got {deadline_s}")
        headers = {"X-API-Key": api_key} if api_key else {}
        self.url = check_service_url(url)
        self.deadline_s = deadline_s
        # Every phase of a request is bounded by the deadline too, so that one given up on also ends in its thread.
        self.client = httpx.Client(base_url=self.url, headers=headers)
        self.fallback = fallback
        self.retry_after_s = retry_after_s
        self.notify = notify or log.warning
        self._body_extra = {
            k: v for k, v in (("migration_policy", migration), ("offload_policy", offload)) if v is not None
        }
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-decisions")
        self._in_flight: Future[Decisions] | None = None
        self._down_until = 0.0
        self._streak = 0
        self._streak_started = 0.0
        self.fallback_ticks = 0
        self.last_error: str | None = None

    def decide(self, ctx: TickContext) -> Decisions:
        if time.monotonic() >= self._down_until:
            try:
                decisions = self._ask_within_deadline(ctx)
            except _Unreachable as exc:
                self._failed(f"decision service at {self.url} failed: {exc}", self.retry_after_s)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                self._failed(f"decision service at {self.url} failed: {_describe(exc)}", 0.0)
            else:
                if self._streak:
                    self.notify(
                        f"decision service at {self.url} answers again after {self._streak} fallback ticks "
                        f"({time.monotonic() - self._streak_started:.1f} s): deciding from it"
                    )
                self._streak = 0
                self.last_error = None
                return decisions
        self.fallback_ticks += 1
        self._streak += 1
        local = self.fallback.decide(ctx)
        return Decisions(local.target, local.rho, source=f"fallback:{local.source}", fallback=True, log=local.log)

    def _failed(self, message: str, back_off_s: float) -> None:
        if message != self.last_error:
            when = f"asking again in {back_off_s:.0f} s" if back_off_s else "asking again next tick"
            self.notify(f"{message}; deciding locally ({when})")
        self.last_error = message
        if not self._streak:
            self._streak_started = time.monotonic()
        self._down_until = time.monotonic() + back_off_s

    def _ask_within_deadline(self, ctx: TickContext) -> Decisions:
        late = f"no answer within the {self.deadline_s:g} s deadline"
        if self._in_flight is not None and not self._in_flight.done():
            raise _Unreachable(late)  # still busy with an earlier tick's request
        future = self._pool.submit(self._ask, ctx)
        try:
            return future.result(timeout=self.deadline_s)
        except FutureTimeout:
            self._in_flight = future  # ends by itself: every phase of the request has the same timeout
            raise _Unreachable(late) from None
        except httpx.TimeoutException as exc:
            raise _Unreachable(late) from exc
        except httpx.TransportError as exc:
            raise _Unreachable(_describe(exc)) from exc

    def _ask(self, ctx: TickContext) -> Decisions:
        body = {"tick": ctx.tick, **self._body_extra, **({"log": True} if self.explain else {})}
        response = self.client.post("/v1/decisions/batch", json=body, timeout=self.deadline_s)
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
        packed = data.get("decision_log") if self.explain else None
        log = base64.b64decode(packed, validate=True) if isinstance(packed, str) else None
        return Decisions(target, rho, source=source, log=log)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def _describe(exc: BaseException) -> str:
    """One line about a failed request: an HTTP error with the service's own ``detail``."""
    if isinstance(exc, httpx.HTTPStatusError):
        detail = ""
        try:
            body = exc.response.json()
            detail = body.get("detail", "") if isinstance(body, dict) else ""
        except ValueError:
            pass
        text = detail if isinstance(detail, str) else str(detail)
        return f"HTTP {exc.response.status_code}" + (f": {text[:200]}" if text else "")
    return str(exc) or type(exc).__name__


__all__ = ["HttpDecisions", "PolicyDecisions"]
