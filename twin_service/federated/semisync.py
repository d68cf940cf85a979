"""The semi-synchronous AdFL server, in-process (paper B, Sec. V-E, Alg. 3-4): RSUs aggregate vehicles' updates.

Each RSU keeps the updates uploaded by the vehicles in its range. When its trigger fires (``tau_agg`` seconds
since its last aggregation, or ``N_agg`` updates pending, whichever first: :func:`aggregate.trigger`), it keeps
the updates whose contribution score (Eq. 42-43) reaches ``sigma_min``, averages them weighted by ``|D_n|``
(Eq. 31) and applies the result to the global model; then it adapts ``sigma_min``, ``tau_agg`` and ``N_agg``
(Eq. 45). RSUs share the one global model (they are connected by the backhaul), each on its own clock.

This class holds no network: updates are lists of numpy arrays, and the caller applies the aggregate. The same
class runs inside Flower's ServerApp (:mod:`twin_service.federated.flower_app`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twin_service.federated.aggregate import (
    Layers,
    Thresholds,
    TriggerReason,
    adapt,
    admitted,
    trigger,
    weighted_average,
)


@dataclass
class ClientUpdate:
    """One vehicle's upload: its model update, dataset size and contribution score."""

    client: int
    delta: Layers
    n_samples: int
    """|D_n|, the weight alpha_n of Eq. 31."""
    score: float
    """sigma_n of Eq. 43."""
    base_version: int = 0
    """Global model version the update was computed from (for staleness statistics)."""


@dataclass
class Aggregation:
    """What one RSU aggregation did (the AdFL curves of the trainer)."""

    rsu: int
    time_s: float
    reason: TriggerReason
    received: int
    admitted: int
    delta: Layers
    thresholds: Thresholds
    mean_score: float


@dataclass
class RsuAggregator:
    """One RSU's pending updates and trigger state."""

    thresholds: Thresholds
    last_s: float = 0.0
    pending: list[ClientUpdate] = field(default_factory=list)


class SemiSyncServer:
    """Every RSU's semi-synchronous aggregation over one global model (module docstring)."""

    def __init__(self, thresholds: Thresholds | None = None, *, adaptive: bool = True) -> None:
        self.initial = thresholds or Thresholds()
        self.adaptive = adaptive
        self.rsus: dict[int, RsuAggregator] = {}
        self.version = 0

    def receive(self, rsu: int, update: ClientUpdate, now_s: float) -> None:
        agg = self.rsus.get(rsu)
        if agg is None:
            agg = self.rsus[rsu] = RsuAggregator(self.initial, last_s=now_s)
        agg.pending.append(update)

    def due(self, now_s: float) -> list[tuple[int, TriggerReason]]:
        """RSUs whose trigger fires now, in RSU order."""
        fired = []
        for rsu in sorted(self.rsus):
            agg = self.rsus[rsu]
            reason = trigger(now_s - agg.last_s, len(agg.pending), agg.thresholds.tau_agg_s, agg.thresholds.n_agg)
            if reason is not None:
                fired.append((rsu, reason))
        return fired

    def aggregate(self, rsu: int, reason: TriggerReason, now_s: float) -> Aggregation:
        """Aggregate one RSU's pending updates (Eq. 31 over those scoring at least sigma_min); adapt (Eq. 45)."""
        agg = self.rsus[rsu]
        updates, agg.pending = agg.pending, []
        scores = [u.score for u in updates]
        keep = admitted(scores, agg.thresholds.sigma_min)
        chosen = [u for u, k in zip(updates, keep, strict=True) if k]
        delta = weighted_average([u.delta for u in chosen], [max(u.n_samples, 1) for u in chosen])
        elapsed = now_s - agg.last_s
        before = agg.thresholds
        if self.adaptive:
            agg.thresholds = adapt(before, reason, scores, elapsed)
        agg.last_s = now_s
        self.version += 1
        return Aggregation(rsu, now_s, reason, len(updates), len(chosen), delta, before, float(np.mean(scores)))

    def step(self, now_s: float) -> list[Aggregation]:
        """Every aggregation due at ``now_s``."""
        return [self.aggregate(rsu, reason, now_s) for rsu, reason in self.due(now_s)]

    def restart_clocks(self, now_s: float) -> None:
        """A new episode (another window of another day): every RSU's interval starts now."""
        for agg in self.rsus.values():
            agg.last_s = now_s

    def flush(self, now_s: float) -> list[Aggregation]:
        """Aggregate whatever is pending (the end of an episode)."""
        return [self.aggregate(rsu, "time", now_s) for rsu in sorted(self.rsus) if self.rsus[rsu].pending]
