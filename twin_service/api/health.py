"""Whether the service can do its job now: decide for the latest tick from the twins in Redis.

``ok``: Redis answers and the default policies can decide for the latest tick (or no run has written a
tick yet: nothing to decide). ``degraded``: Redis answers, but a decision cannot be made (the run's
records are missing, the stored layout does not match the tick, a default model or the workload
predictor does not fit the run). ``unavailable``: Redis is not configured or does not answer.

It also counts the bridge's recent fallback ticks (the ``fallback`` KPI of each tick: the bridge decided
locally because it got no decision from a service), which the dashboard shows beside the service's own state.
Used by ``GET /v1/health`` and by the live stream (``twin_service.api.live``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from twin_service.api.service import snapshot_from_store
from twin_service.api.state import NO_REDIS_HINT, ApiState
from twin_service.policies import PolicyError
from twin_service.policies.inputs import MissingTwinData
from twin_service.twins import TwinStoreUnavailable, UnknownTickError
from twin_service.twins.health import FALLBACK_WINDOW_TICKS, MOSTLY, read_run_health

Status = Literal["ok", "degraded", "unavailable"]


@dataclass
class HealthReport:
    status: Status
    redis: Literal["ok", "unreachable", "not configured"]
    detail: str = ""
    reasons: list[str] = field(default_factory=list)
    """Why the service is not ``ok`` (one sentence each)."""
    latest_tick: int | None = None
    latest_tick_wall_time: float | None = None
    recent_ticks: int = 0
    recent_fallback_ticks: int = 0

    @property
    def mostly_fallback(self) -> bool:
        return self.recent_ticks > 0 and self.recent_fallback_ticks > MOSTLY * self.recent_ticks

    def fallback_reason(self) -> str | None:
        """A sentence when the bridge decided locally in most of its recent ticks."""
        if not self.mostly_fallback:
            return None
        return (
            f"the bridge decided locally (fallback) in {self.recent_fallback_ticks} of its last "
            f"{self.recent_ticks} ticks: it gets no decisions from a decision service"
        )

    def as_event(self) -> dict[str, Any]:
        """What the live stream's ``status`` event carries: the service's state and every reason, the bridge's
        fallback included (the dashboard shows a banner unless ``state`` is ``ok``)."""
        reasons = list(self.reasons)
        fallback = self.fallback_reason()
        if fallback:
            reasons.append(fallback)
        state = self.status if self.status != "ok" or not fallback else "degraded"
        return {
            "state": state,
            "redis": self.redis,
            "reasons": reasons or ([self.detail] if self.detail and state != "ok" else []),
            "recent_ticks": self.recent_ticks,
            "recent_fallback_ticks": self.recent_fallback_ticks,
        }


def assess(state: ApiState) -> HealthReport:
    """The service's health now (a few Redis reads; the decision inputs come from the per-tick cache)."""
    if not state.redis_configured:
        return HealthReport("unavailable", "not configured", NO_REDIS_HINT)
    try:
        store = state.store()
        run = read_run_health(store, FALLBACK_WINDOW_TICKS)
        meta = run.latest
        if meta is None:
            return HealthReport("ok", "ok", "no tick written yet")
        report = HealthReport("ok", "ok", latest_tick=meta.tick, latest_tick_wall_time=meta.wall_time)
        report.recent_ticks, report.recent_fallback_ticks = run.recent_ticks, run.recent_fallback_ticks
        report.reasons = _decision_blockers(state, store, meta.tick)
    except TwinStoreUnavailable as exc:
        return HealthReport("unavailable", "unreachable", str(exc))
    if report.reasons:
        report.status = "degraded"
        report.detail = "cannot decide: " + "; ".join(report.reasons)
    return report


def _decision_blockers(state: ApiState, store: Any, tick: int) -> list[str]:
    """Why the default policies cannot decide for ``tick`` (empty: they can)."""
    reasons = []
    run = store.read_run_meta()
    if not run:
        reasons.append("the run's metadata is missing in Redis (the bridge puts it back with its next tick)")
    try:
        snap = snapshot_from_store(state, tick)
        state.migration_policy(None, snap.run, snap.servers.size)
        state.offload_policy(None, snap.run)
    except UnknownTickError:
        pass  # the tick left the window meanwhile: a newer one is there
    except MissingTwinData as exc:
        reasons.append(str(exc))
    except PolicyError as exc:
        reasons.append(f"the service's models cannot serve this run: {exc}")
    return reasons
