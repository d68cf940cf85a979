"""AdFL aggregation maths (paper B, Sec. V), pure functions apart from any orchestration.

As Flower keeps ``aggregate.py`` apart from its strategies, these functions take parameter updates as lists of
numpy arrays (one per layer) and return new arrays; who collects the updates, when and where lives in
:mod:`twin_service.federated.semisync` (in-process) and :mod:`twin_service.flower.app` (Flower).

* Eq. 31 / 34: weighted averaging of client updates with ``alpha_n = |D_n|``; Eq. 44 is the plain average
  (every ``alpha_n`` equal).
* Eq. 42-43: gradient-norm contribution score of a client's update.
* Semi-synchronous trigger (Sec. V-E): aggregate after ``tau_agg`` seconds or ``N_agg`` updates, whichever first.
* Eq. 45: the adaptive minimum score ``sigma_min``, interval ``tau_agg`` and count ``N_agg``.
* FedAsync mixing (the AFL-MADDPG baseline) and FedAvg (the SFL-PPO baseline) for the baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Layers = list[NDArray[np.floating]]
"""One model's parameters (or an update to them): one array per layer, in a fixed order."""


def weighted_average(updates: Sequence[Layers], weights: Sequence[float]) -> Layers:
    """``sum_n alpha_n u_n / sum_n alpha_n`` per layer (paper B, Eq. 31 and 34).

    With ``u_n`` the update ``Delta w_n`` this is the step of Eq. 31; with ``u_n`` the local model ``w_n`` it is
    Eq. 34. ``alpha_n = |D_n|``, the size of client n's local dataset; equal weights give Eq. 44.
    """
    if not updates:
        raise ValueError("no update to aggregate")
    alpha = np.asarray(weights, dtype=np.float64)
    if alpha.shape != (len(updates),):
        raise ValueError(f"need one weight per update: {len(updates)} updates, weights of shape {alpha.shape}")
    if np.any(alpha < 0) or not np.all(np.isfinite(alpha)) or alpha.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    n_layers = len(updates[0])
    if any(len(u) != n_layers for u in updates):
        raise ValueError("updates have different numbers of layers")
    share = alpha / alpha.sum()
    out = []
    for i in range(n_layers):
        layer = np.stack([np.asarray(u[i]) for u in updates])  # (N, ...) one layer of every update
        dtype = layer.dtype if np.issubdtype(layer.dtype, np.floating) else np.float64
        out.append(np.tensordot(share.astype(dtype), layer.astype(dtype, copy=False), axes=1))  # the updates' precision
    return out


def apply_update(weights: Layers, update: Layers, step: float = 1.0) -> Layers:
    """``w + step * Delta`` per layer (Eq. 31 and 44 with ``step = 1``)."""
    if len(weights) != len(update):
        raise ValueError("weights and update have different numbers of layers")
    return [
        np.asarray(w) + step * np.asarray(u, dtype=np.asarray(w).dtype) for w, u in zip(weights, update, strict=True)
    ]


def layer_norms(gradients: Layers) -> NDArray[np.float64]:
    """``sigma_{n,l} = ||dL_n / dw_{l,n}||_2`` for every layer l (paper B, Eq. 42)."""
    return np.array([float(np.linalg.norm(np.asarray(g, dtype=np.float64).ravel())) for g in gradients])


def contribution_score(norms: NDArray[np.floating], layer_weights: NDArray[np.floating] | None = None) -> float:
    """``sigma_n = sum_l omega_l sigma_{n,l}`` (paper B, Eq. 43); ``omega_l`` equal (1 / L) unless given."""
    norms = np.asarray(norms, dtype=np.float64)
    omega = np.full(norms.shape, 1.0 / max(len(norms), 1)) if layer_weights is None else np.asarray(layer_weights)
    if omega.shape != norms.shape:
        raise ValueError(f"{len(norms)} layer norms but {omega.size} layer weights")
    return float(np.dot(omega, norms))


def admitted(scores: Sequence[float], sigma_min: float) -> NDArray[np.bool_]:
    """Which updates enter the aggregation: score ``>= sigma_min`` (Sec. V-D); the best one always does,
    so that a round never discards every update."""
    s = np.asarray(scores, dtype=np.float64)
    keep = s >= sigma_min
    if len(s) and not keep.any():
        keep[int(np.argmax(s))] = True
    return keep


TriggerReason = Literal["time", "count"]


def trigger(elapsed_s: float, pending: int, tau_agg_s: float, n_agg: int) -> TriggerReason | None:
    """The semi-synchronous aggregation trigger (paper B, Sec. V-E, Alg. 3 l. 33-38, Alg. 4 l. 19-24).

    ``"count"`` once ``N_agg`` updates are pending, else ``"time"`` once ``tau_agg`` seconds passed since the last
    aggregation with at least one update pending, else ``None`` (keep waiting).
    """
    if pending >= n_agg:
        return "count"
    if pending > 0 and elapsed_s >= tau_agg_s:
        return "time"
    return None


@dataclass(frozen=True)
class Thresholds:
    """The adaptive quantities of Eq. 45 and their bounds."""

    sigma_min: float = 0.0
    tau_agg_s: float = 5.0
    """Paper B Table V: 5 s."""
    n_agg: int = 10
    """Paper B Table V: 10."""
    sigma_quantile: float = 0.1
    """sigma_min tracks this quantile of the recent scores: the least informative updates are left out."""
    sigma_rate: float = 0.1
    """How far sigma_min moves towards that quantile per aggregation."""
    tau_step_s: float = 0.5
    tau_bounds_s: tuple[float, float] = (2.0, 10.0)
    n_bounds: tuple[int, int] = (4, 20)


def adapt(th: Thresholds, reason: TriggerReason, scores: Sequence[float], elapsed_s: float) -> Thresholds:
    """One step of Eq. 45: ``sigma_min += Delta sigma``, ``tau_agg += Delta tau``, ``N_agg += Delta N``.

    The paper does not give the Deltas; ours (NOTES.md):

    * ``Delta sigma = sigma_rate * (q-quantile of this round's scores - sigma_min)``: the bar follows the scores;
    * a count trigger that fired in under half of ``tau_agg`` means updates arrive fast (high traffic): wait for one
      more (``Delta N = +1``) and shorten the interval (``Delta tau = -tau_step``) so rounds stay timely;
    * a time trigger means updates arrive slowly (low traffic): ask for one fewer (``Delta N = -1``) and wait a
      little longer (``Delta tau = +tau_step``) so a round holds enough information;
    * otherwise nothing changes. Both stay within their bounds.
    """
    s = np.asarray(scores, dtype=np.float64)
    d_sigma = th.sigma_rate * (float(np.quantile(s, th.sigma_quantile)) - th.sigma_min) if len(s) else 0.0
    d_tau, d_n = 0.0, 0
    if reason == "count" and elapsed_s < 0.5 * th.tau_agg_s:
        d_tau, d_n = -th.tau_step_s, 1
    elif reason == "time":
        d_tau, d_n = th.tau_step_s, -1
    lo_t, hi_t = th.tau_bounds_s
    lo_n, hi_n = th.n_bounds
    return replace(
        th,
        sigma_min=max(th.sigma_min + d_sigma, 0.0),
        tau_agg_s=float(np.clip(th.tau_agg_s + d_tau, lo_t, hi_t)),
        n_agg=int(np.clip(th.n_agg + d_n, lo_n, hi_n)),
    )


def staleness_weight(alpha: float, staleness: int, exponent: float = 0.5) -> float:
    """FedAsync's mixing weight ``alpha (1 + staleness)^-a`` (Xie et al. 2019), for the AFL baseline."""
    if staleness < 0:
        raise ValueError("staleness must be >= 0")
    return float(alpha * (1.0 + staleness) ** -exponent)


def async_mix(weights: Layers, client: Layers, mix: float) -> Layers:
    """Asynchronous FL: ``w <- (1 - mix) w + mix w_n`` as soon as one client's model arrives."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError("mix must lie in [0, 1]")
    return [(1.0 - mix) * np.asarray(w) + mix * np.asarray(c) for w, c in zip(weights, client, strict=True)]
