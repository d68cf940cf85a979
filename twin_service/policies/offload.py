"""Heuristic offloading policies (paper B) and the expected outcome of any offloading fraction.

The offloaded part of a task goes to the server hosting the vehicle's twin (chosen by the migration
policy, paper A); vehicles offloading to the same host share its CPU (constraint C.6).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twin_service.config import OffloadParams
from twin_service.observe import OFFLOAD_FEATURES
from twin_service.physics import edge_cpu_share_hz, offload_outcome
from twin_service.physics.offload import OffloadOutcome
from twin_service.policies.base import HEURISTIC_VERSION, OffloadDecision, OffloadInputs


def check_offload_inputs(inputs: OffloadInputs) -> int:
    """Number of vehicles; raise ``ValueError`` if a feature is missing or misaligned."""
    missing = [k for k in OFFLOAD_FEATURES if k not in inputs.now]
    if missing:
        raise ValueError(f"offload inputs lack {missing}")
    n = inputs.size
    bad = [k for k in OFFLOAD_FEATURES if np.shape(inputs.now[k]) != (n,)]
    if bad:
        raise ValueError(f"offload inputs {bad} are not ({n},) arrays")
    if inputs.host_index is not None and np.shape(inputs.host_index) != (n,):
        raise ValueError(f"host_index must be ({n},), got {np.shape(inputs.host_index)}")
    return n


def _hosts(inputs: OffloadInputs) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Each vehicle's host index and a per-host CPU table (each vehicle alone when hosts are unknown)."""
    now = inputs.now
    n = inputs.size
    host_cpu = np.asarray(now["host_cpu_hz"], dtype=np.float64)
    if inputs.host_index is None:
        return np.arange(n, dtype=np.intp), host_cpu.copy()
    host = np.asarray(inputs.host_index, dtype=np.intp)
    cpu = np.zeros(max(int(host.max()) + 1 if n else 0, 1))  # never empty: the share indexes row 0
    attached = host >= 0
    cpu[host[attached]] = host_cpu[attached]
    return host, cpu


def _outcome(rho: ArrayLike, edge_cpu_hz: ArrayLike, inputs: OffloadInputs, p: OffloadParams) -> OffloadOutcome:
    return task_outcome(rho, inputs.now, edge_cpu_hz, p)


def task_outcome(rho: ArrayLike, now: dict[str, ArrayLike], edge_cpu_hz: ArrayLike, p: OffloadParams) -> OffloadOutcome:
    """Paper B's cost model for tasks described by ``now`` (``data_bits``, ``cycles``, ``deadline_s``, ``f_hz``,
    ``r_bps``; broadcastable arrays) with the host CPU share ``edge_cpu_hz`` and the scenario's constants."""
    return offload_outcome(
        rho,
        now["data_bits"],
        now["cycles"],
        now["deadline_s"],
        now["f_hz"],
        now["r_bps"],
        edge_cpu_hz,
        kappa_local=p.kappa_local,
        kappa_edge=p.kappa_edge,
        tx_power_w=p.tx_power_w,
        output_ratio=p.output_ratio,
        twin_sync_energy_j=p.twin_sync_energy_j,
        twin_sync_delay_s=p.twin_sync_delay_s,
        price_per_task=p.price_per_task,
        energy_max_j=p.energy_max_j,
        price_max=p.price_max,
    )


def expected_outcome(rho: ArrayLike, inputs: OffloadInputs, params: OffloadParams) -> OffloadDecision:
    """Paper B's cost model (Eq. 7-15, 22, C.1) for fractions ``rho`` of this batch of vehicles.

    Each host's CPU is shared by the batch's vehicles offloading to it: ``f'_m = f_m / max(sum rho, 1)``
    (C.6, :func:`twin_service.physics.edge_cpu_share_hz`).
    """
    check_offload_inputs(inputs)
    r = np.clip(np.asarray(rho, dtype=np.float64), 0.0, 1.0)
    host, cpu = _hosts(inputs)
    share = edge_cpu_share_hz(host, r, cpu)
    out = _outcome(r, share, inputs, params)
    return OffloadDecision(r, out.delay_s, out.energy_j, out.cost, out.success, share)


class LocalOnlyPolicy:
    """Every task runs on board (rho = 0): paper B's lower reference, and the bridge's own rule."""

    version = HEURISTIC_VERSION
    needs_window_mean = False

    def __init__(self, params: OffloadParams | None = None, name: str = "local-only") -> None:
        self.name = name
        self.params = params or OffloadParams()

    def decide(self, inputs: OffloadInputs) -> OffloadDecision:
        return expected_outcome(np.zeros(check_offload_inputs(inputs)), inputs, self.params)


class NearestLeastLoadedPolicy:
    """Paper B's non-DRL baseline, all or nothing: offload the whole task when that beats running it locally.

    Paper B's baseline offloads to "the closest RSU with the lowest load"; in this service the offloaded
    part goes to the twin's host, which the migration policy already chose near and not overloaded. The
    rule here is: rho = 1 when offloading meets the deadline (C.1) at a lower cost (Eq. 22) than computing
    locally, else rho = 0.

    Offloaders share their host's CPU (C.6), so whether offloading pays depends on how many do. With
    rho = 1 the edge compute delay ``C / (f_m / k)`` grows linearly in the number k of offloaders on the
    host and nothing else does, so each vehicle has a largest k at which offloading still pays; on each
    host the vehicles tolerating the most sharing are admitted first, as many as the rule allows. Every
    vehicle that offloads then meets its deadline at a lower cost than locally, with the CPU share it
    actually gets. Without host indices each vehicle is taken as alone on its host.

    Note: Eq. 22 charges an offloaded task the price ``P / P_max = rho`` and counts the host's compute
    energy like the local one, so a full offload pays only when it saves more than the deadline T_n in
    time while still meeting it. With the committed scenarios' parameters that never happens (0 of 25,694
    vehicle-ticks of the city from t = 1500 s); with ``price_per_task = 0`` about 11 % offload.
    """

    version = HEURISTIC_VERSION
    needs_window_mean = False

    def __init__(self, params: OffloadParams | None = None, name: str = "nearest-least-loaded") -> None:
        self.name = name
        self.params = params or OffloadParams()

    def decide(self, inputs: OffloadInputs) -> OffloadDecision:
        n = check_offload_inputs(inputs)
        deadline = np.asarray(inputs.now["deadline_s"], dtype=np.float64)
        host, host_cpu_table = _hosts(inputs)
        local = _outcome(np.zeros(n), np.zeros(n), inputs, self.params)
        attached = host >= 0
        host_cpu = np.asarray(inputs.now["host_cpu_hz"], dtype=np.float64)
        alone = _outcome(np.ones(n), np.where(attached, host_cpu, 0.0), inputs, self.params)
        # With k offloaders on the host: delay(k) = delay(1) + (k - 1) * compute(1), and the cost grows by
        # the same over the deadline (Eq. 10, 14, 22).
        step = alone.compute_s
        with np.errstate(divide="ignore", invalid="ignore"):
            slack_deadline = (deadline - alone.delay_s) / step
            slack_cost = (local.cost - alone.cost) * deadline / step
        k_deadline = np.where(alone.delay_s <= deadline, np.floor(slack_deadline) + 1.0, 0.0)
        k_cost = np.where(alone.cost < local.cost, np.ceil(slack_cost), 0.0)  # k - 1 < slack (strict)
        k_max = np.minimum(k_deadline, k_cost)
        k_max = np.where(np.isnan(k_max), 0.0, k_max)
        k_max = np.where(attached & np.isfinite(alone.delay_s), k_max, 0.0)

        # Per host, admit vehicles by decreasing tolerance while the j-th admitted tolerates j sharers.
        order = np.lexsort((-k_max, host))
        h, k = host[order], k_max[order]
        first = np.ones(n, dtype=bool)
        first[1:] = h[1:] != h[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, np.intp)
        rank = np.arange(n) - start + 1
        offload = np.zeros(n, dtype=bool)
        offload[order] = k >= rank
        if not offload.any():
            # Everyone computes locally (with the committed scenarios' prices, every tick): rho = 0 outcomes do not
            # depend on the host's CPU (Eq. 10's term is 0), so they are ``local``'s, which expected_outcome(0)
            # would compute again; only the CPU share each vehicle would get is new.
            zeros = np.zeros(n)
            share = edge_cpu_share_hz(host, zeros, host_cpu_table)
            return OffloadDecision(zeros, local.delay_s, local.energy_j, local.cost, local.success, share)
        # Guard against rounding at the boundaries of k: drop any offloader the actual sharing does not
        # serve (dropping one only frees CPU for the rest, so this ends, normally at once).
        while True:
            result = expected_outcome(offload.astype(np.float64), inputs, self.params)
            unserved = offload & ~(result.success & (result.cost < local.cost))
            if not unserved.any():
                return result
            offload &= ~unserved
