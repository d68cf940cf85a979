"""Paper B's part of a tick: each vehicle's pending task is processed with the fraction decided for it, offloaded
to the twin's host (delay, energy, cost and deadline success, Eq. 5-22), the vehicle's energy E_n falls, then the
next task (D, C, T) arrives. Called by :meth:`twin_service.engine.core.Engine.compute` when paper B is on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from twin_service.config import ScenarioParams
from twin_service.engine.vehicles import VehicleTable, sample_tasks
from twin_service.physics import edge_cpu_share_hz, offload_outcome, offload_rate_bps
from twin_service.physics.offload import OffloadOutcome


@dataclass(frozen=True, slots=True)
class OffloadTick:
    """Paper B's part of a tick: what each vehicle's processed task cost and the features of the next one."""

    rho: NDArray[np.float64]
    outcome: OffloadOutcome
    energy_j: NDArray[np.float64]
    offloaders: NDArray[np.float64]
    """``(M,)`` vehicles offloading (rho > 0) to each server."""
    now: dict[str, NDArray[np.float64]]
    """``observe.OFFLOAD_FEATURES`` per vehicle, for the pending task."""

    def columns(self) -> dict[str, NDArray[np.float64]]:
        """The vehicle columns the twin store keeps of paper B (every offload feature among them)."""
        out = self.outcome
        return {
            **self.now,
            "energy_j": self.energy_j,
            "rho": self.rho,
            "offload_delay_s": out.delay_s,
            "offload_energy_j": out.energy_j,
            "offload_cost": out.cost,
            "task_success": out.success.astype(np.float64),
        }


def offload_tick(
    params: ScenarioParams,
    vehicles: VehicleTable,
    task_rng: np.random.Generator,
    edge_f_hz: NDArray[np.float64],
    slots: NDArray[np.int64],
    host: NDArray[np.int64],
    host_sat: NDArray[np.bool_],
    d_host: NDArray[np.float64],
    speed_mps: NDArray[np.float64],
    link_host: NDArray[np.float64] | None = None,
) -> OffloadTick:
    """Paper B for this tick: the pending tasks are processed, energy falls, the next tasks arrive.

    ``edge_f_hz`` is each server's CPU (paper B's f_m); the vehicles' task, energy and rho columns are updated in place
    and the next tasks drawn from ``task_rng``.
    """
    o = params.offload
    vt = vehicles
    n = len(slots)
    exec_bits = vt.f["task_bits"][slots]
    exec_cycles = vt.f["task_cycles"][slots]
    exec_deadline = vt.f["task_deadline_s"][slots]
    first = np.isnan(exec_bits)
    if first.any():
        exec_bits[first], exec_cycles[first], exec_deadline[first] = sample_tasks(task_rng, int(first.sum()), o)
    rho = vt.f["rho"][slots]
    r_bps = offload_rate_bps(
        d_host,
        o.bandwidth_hz,
        o.tx_power_w,
        o.path_loss_exponent,
        o.channel_gain,
        o.noise_dbm_per_hz,
        o.interference_w,
        o.max_rate_bps,
    )
    r_bps = np.where(host_sat, params.channel.satellite_rate_bps, r_bps)
    if link_host is not None:
        r_bps = r_bps * link_host
    edge_share = edge_cpu_share_hz(host, rho, edge_f_hz)
    f_hz = vt.f["f_hz"][slots]
    out = offload_outcome(
        rho,
        exec_bits,
        exec_cycles,
        exec_deadline,
        f_hz,
        r_bps,
        edge_share,
        kappa_local=o.kappa_local,
        kappa_edge=o.kappa_edge,
        tx_power_w=o.tx_power_w,
        output_ratio=o.output_ratio,
        twin_sync_energy_j=o.twin_sync_energy_j,
        twin_sync_delay_s=o.twin_sync_delay_s,
        price_per_task=o.price_per_task,
        energy_max_j=o.energy_max_j,
        price_max=o.price_max,
    )
    # The vehicle pays the radio energy and its local share; the edge's compute energy is the edge's.
    vehicle_energy = out.tx_energy_j + out.download_energy_j + out.local_part_energy_j
    energy = np.maximum(vt.f["energy_j"][slots] - vehicle_energy, 0.0)
    vt.f["energy_j"][slots] = energy
    offloaders = np.bincount(host, weights=(rho > 0).astype(np.float64), minlength=len(edge_f_hz))

    energy_frac = energy / np.maximum(vt.f["energy_capacity_j"][slots], 1e-9)
    data_bits, cycles, deadline_s = sample_tasks(task_rng, n, o)  # the next task arrives
    vt.f["task_bits"][slots], vt.f["task_cycles"][slots], vt.f["task_deadline_s"][slots] = (
        data_bits,
        cycles,
        deadline_s,
    )
    now = {
        "f_hz": f_hz,
        "r_bps": r_bps,
        "energy_frac": energy_frac,
        "speed_mps": speed_mps,
        "data_bits": data_bits,
        "cycles": cycles,
        "deadline_s": deadline_s,
        "host_cpu_hz": edge_f_hz[host],
        "host_offloaders": offloaders[host],
        "host_is_satellite": host_sat.astype(np.float64),
    }
    return OffloadTick(rho, out, energy, offloaders, now)
