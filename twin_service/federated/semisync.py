"""The semi-synchronous AdFL server, in-process (paper B, Sec. V-E, Alg. 3-4): vehicles train, RSUs aggregate.

A round r starts from the global model w^(r). The selected vehicles compute their local updates from w^(r) and
upload them to the RSU whose range they are in. The round closes when its trigger fires: ``tau_agg`` seconds
after it opened or ``N_agg`` updates received, whichever first (:func:`aggregate.trigger`). Then each RSU keeps
the updates of its vehicles whose contribution score (Eq. 42-43) reaches ``sigma_min`` and averages them weighted
by ``|D_n|`` (Eq. 31); the global model combines the RSUs' aggregates weighted by their summed ``|D_n|`` (the same
Eq. 31 over every admitted vehicle) and moves to w^(r+1); ``sigma_min``, ``tau_agg`` and ``N_agg`` adapt (Eq. 45).
An update computed from an older model (a late reply over Flower) joins the round it reaches.

Why rounds and not each RSU on its own clock over one shared model: an RSU aggregating every 5 s while the others
move the global model in between applies updates several global steps stale, and the critic's value estimate then
oscillates (measured: it stops fitting the rewards at all with 5 s-stale updates). Within a round nothing is stale.

The class holds no network: updates are lists of numpy arrays, and the caller applies the aggregate. The same
class runs inside Flower's ServerApp (:mod:`twin_service.flower.app`).
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
    """Global model version the update was computed from."""


@dataclass
class Aggregation:
    """What one round's aggregation did (the AdFL curves of the trainer)."""

    time_s: float
    reason: TriggerReason
    received: int
    admitted: int
    rsus: int
    """RSUs that aggregated updates of their vehicles in this round."""
    delta: Layers
    thresholds: Thresholds
    """The thresholds the round ran with (before Eq. 45 adapted them)."""
    mean_score: float
    stale: int
    """Updates computed from an older global model than this round's."""


@dataclass
class SemiSyncServer:
    """Rounds of semi-synchronous aggregation over one global model (module docstring)."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    adaptive: bool = True
    version: int = 0
    round_start_s: float = 0.0
    pending: dict[int, list[ClientUpdate]] = field(default_factory=dict)

    @property
    def received(self) -> int:
        return sum(len(v) for v in self.pending.values())

    def receive(self, rsu: int, update: ClientUpdate) -> None:
        """An upload reached RSU ``rsu``."""
        self.pending.setdefault(rsu, []).append(update)

    def due(self, now_s: float) -> TriggerReason | None:
        th = self.thresholds
        return trigger(now_s - self.round_start_s, self.received, th.tau_agg_s, th.n_agg)

    def aggregate(self, reason: TriggerReason, now_s: float) -> Aggregation:
        """Close the round: every RSU's Eq. 31 over its admitted updates, then Eq. 31 over the RSUs; adapt (Eq. 45)."""
        th = self.thresholds
        everyone = [u for ups in self.pending.values() for u in ups]
        scores = [u.score for u in everyone]
        rsu_deltas, rsu_weights, n_admitted = [], [], 0
        for rsu in sorted(self.pending):
            ups = self.pending[rsu]
            keep = admitted([u.score for u in ups], th.sigma_min)
            chosen = [u for u, k in zip(ups, keep, strict=True) if k]
            n_admitted += len(chosen)
            rsu_deltas.append(weighted_average([u.delta for u in chosen], [max(u.n_samples, 1) for u in chosen]))
            rsu_weights.append(sum(max(u.n_samples, 1) for u in chosen))
        delta = weighted_average(rsu_deltas, rsu_weights)
        stale = sum(u.base_version < self.version for u in everyone)
        elapsed = now_s - self.round_start_s
        if self.adaptive:
            self.thresholds = adapt(th, reason, scores, elapsed)
        result = Aggregation(
            now_s, reason, len(everyone), n_admitted, len(rsu_deltas), delta, th, float(np.mean(scores)), stale
        )
        self.pending = {}
        self.version += 1
        self.round_start_s = now_s
        return result

    def step(self, now_s: float) -> Aggregation | None:
        """The round's aggregation if its trigger fires at ``now_s``."""
        reason = self.due(now_s)
        return None if reason is None else self.aggregate(reason, now_s)

    def restart_clock(self, now_s: float) -> None:
        """A new episode (another window of another day): the round's interval starts now."""
        self.round_start_s = now_s

    def flush(self, now_s: float) -> Aggregation | None:
        """Close the round with whatever is pending (the end of an episode)."""
        return self.aggregate("time", now_s) if self.received else None
