"""Partial task offloading: delay, energy, price, cost and reward (paper B, Eq. 5-15, 21-22, 53).

A vehicle offloads a fraction ``rho`` in [0, 1] of its task to its RSU and runs the rest itself,
in parallel (NOTES.md, Eq. 14). Units: cycles, Hz, bits, bit/s, s, W, J. Every function is
elementwise over vehicles; the only coupling between vehicles is the RSU CPU share
(:func:`edge_cpu_share_hz`).

How the two parts split (our reading where the paper is silent):

* delay: the offloaded path (upload, RSU compute, download, twin sync) and the local part
  ``(1 - rho) C / f_n`` run in parallel, so the task takes the longer of the two (Eq. 14);
* energy: both parts are spent, so Eq. 15 adds the local part's ``(1 - rho) kappa C`` to the
  radio and RSU energy; the twin-sync energy E_DT is counted once (it appears in Eq. 11 and
  again as Eq. 15's fourth term);
* the twin-sync overheads t_DT, E_DT and the download (Eq. 12 scaled by rho: only the offloaded
  part returns a result) are charged only when something is offloaded, so ``rho = 0`` gives
  exactly the local delay C / f_n (Eq. 5) and energy kappa C (Eq. 6).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twin_service.physics.compiled import offload_outcome_compiled


def _f64(x: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64)


def _offloaded(rho: ArrayLike) -> NDArray[np.bool_]:
    return _f64(rho) > 0.0


def local_delay_s(cycles: ArrayLike, cpu_hz: ArrayLike) -> NDArray[np.float64]:
    """Local computing delay ``t_loc = C_n / f_n`` (paper B, Eq. 5), seconds."""
    return _f64(cycles) / _f64(cpu_hz)


def local_energy_j(cycles: ArrayLike, kappa_j_per_cycle: ArrayLike) -> NDArray[np.float64]:
    """Local computing energy ``E_loc = kappa_n C_n`` (paper B, Eq. 6), joules.

    Table IV's kappa = 1e-6 is read as J/cycle: a 1 Gcycle task costs 1000 J.
    """
    return _f64(kappa_j_per_cycle) * _f64(cycles)


def upload_delay_s(rho: ArrayLike, data_bits: ArrayLike, rate_bps: ArrayLike) -> NDArray[np.float64]:
    """Upload delay ``t_up = rho D_n / r_n`` (paper B, Eq. 7), seconds; 0 when nothing is offloaded."""
    with np.errstate(divide="ignore", invalid="ignore"):
        delay = _f64(rho) * _f64(data_bits) / _f64(rate_bps)
    return np.where(_offloaded(rho), delay, 0.0)


def radio_energy_j(tx_power_w: ArrayLike, duration_s: ArrayLike) -> NDArray[np.float64]:
    """Radio energy ``P_n t`` (paper B, Eq. 9 for the upload, Eq. 13 for the download), joules."""
    return _f64(tx_power_w) * _f64(duration_s)


def edge_cpu_share_hz(rsu_index: ArrayLike, rho: ArrayLike, rsu_cpu_hz: ArrayLike) -> NDArray[np.float64]:
    """CPU f'_m an RSU gives each of its offloaders (paper B, Eq. 10 with constraints C.4, C.6), Hz.

    C.6 (``sum_i rho_i f'_m <= f_m``) at equality gives ``f'_m = f_m / sum_i rho_i`` over the
    vehicles offloading to RSU m in the same tick; C.4 caps it at f_m when that sum is below 1.
    So two vehicles offloading their whole task share the RSU half-half. Vehicles with no RSU
    (``rsu_index < 0``) get 0 Hz.
    """
    rsu = np.asarray(rsu_index, dtype=np.intp).reshape(-1)
    frac = np.broadcast_to(_f64(rho), rsu.shape)
    cpu = _f64(rsu_cpu_hz).reshape(-1)
    attached = rsu >= 0
    demand = np.bincount(rsu[attached], weights=frac[attached], minlength=cpu.size)[: cpu.size]
    per_rsu = cpu / np.maximum(demand, 1.0)
    return np.where(attached, per_rsu[np.where(attached, rsu, 0)], 0.0)


def edge_compute_delay_s(rho: ArrayLike, cycles: ArrayLike, cpu_share_hz: ArrayLike) -> NDArray[np.float64]:
    """RSU computing delay ``t_comp = rho C_n / f'_m`` (paper B, Eq. 10), seconds; 0 when rho = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        delay = _f64(rho) * _f64(cycles) / _f64(cpu_share_hz)
    return np.where(_offloaded(rho), delay, 0.0)


def edge_compute_energy_j(
    rho: ArrayLike, cycles: ArrayLike, kappa_edge_j_per_cycle: ArrayLike, twin_sync_energy_j: ArrayLike
) -> NDArray[np.float64]:
    """RSU computing energy ``E_comp = rho kappa'_m C_n + E_DT`` (paper B, Eq. 11), joules.

    E_DT (the twin framework's own energy) is charged only when something is offloaded.
    """
    return _f64(rho) * _f64(kappa_edge_j_per_cycle) * _f64(cycles) + np.where(
        _offloaded(rho), _f64(twin_sync_energy_j), 0.0
    )


def download_delay_s(
    rho: ArrayLike, data_bits: ArrayLike, output_ratio: ArrayLike, rate_bps: ArrayLike
) -> NDArray[np.float64]:
    """Result download delay ``t_down = delta rho D_n / r_n`` (paper B, Eq. 12), seconds.

    The paper writes ``delta D_n / r_n``; only the offloaded part produces a result at the RSU,
    so we scale by rho (otherwise a purely local task would pay a download). delta = 0.1.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        delay = _f64(output_ratio) * _f64(rho) * _f64(data_bits) / _f64(rate_bps)
    return np.where(_offloaded(rho), delay, 0.0)


def local_part_delay_s(rho: ArrayLike, cycles: ArrayLike, cpu_hz: ArrayLike) -> NDArray[np.float64]:
    """Delay of the part kept on board ``(1 - rho) C_n / f_n`` (paper B, Eq. 14's t_loc, NOTES.md), s."""
    return (1.0 - _f64(rho)) * _f64(cycles) / _f64(cpu_hz)


def local_part_energy_j(rho: ArrayLike, cycles: ArrayLike, kappa_j_per_cycle: ArrayLike) -> NDArray[np.float64]:
    """Energy of the part kept on board ``(1 - rho) kappa_n C_n`` (Eq. 6 on the local share), joules."""
    return (1.0 - _f64(rho)) * _f64(kappa_j_per_cycle) * _f64(cycles)


def offload_delay_s(
    rho: ArrayLike,
    upload_s: ArrayLike,
    compute_s: ArrayLike,
    download_s: ArrayLike,
    local_part_s: ArrayLike,
    twin_sync_delay_s: ArrayLike,
) -> NDArray[np.float64]:
    """Task delay ``t_off = max(t_up + t_comp + t_down + t_DT, (1 - rho) C_n / f_n)`` (paper B, Eq. 14), s.

    t_DT is charged only when ``rho > 0``.
    """
    remote = (
        _f64(upload_s) + _f64(compute_s) + _f64(download_s) + np.where(_offloaded(rho), _f64(twin_sync_delay_s), 0.0)
    )
    return np.maximum(remote, _f64(local_part_s))


def offload_energy_j(
    tx_energy_j: ArrayLike, compute_energy_j: ArrayLike, download_energy_j: ArrayLike, local_part_j: ArrayLike
) -> NDArray[np.float64]:
    """Task energy ``E_off = E_tx + E_comp + E_down + (1 - rho) kappa C`` (paper B, Eq. 15), joules.

    This is the E_total of Eq. 22 for the chosen rho. Eq. 16's ``min(E_loc, E_off)`` compares
    "all local" with "offload"; charging the minimum would credit a vehicle with energy its
    chosen rho did not save, so we charge the energy of the chosen split (rho = 0 is E_loc).
    """
    return _f64(tx_energy_j) + _f64(compute_energy_j) + _f64(download_energy_j) + _f64(local_part_j)


def service_price(rho: ArrayLike, price_per_task: ArrayLike) -> NDArray[np.float64]:
    """Offloading price ``P_n = rho p_n`` (paper B, Eq. 21), in price units."""
    return _f64(rho) * _f64(price_per_task)


def offload_cost(
    delay_s: ArrayLike,
    energy_j: ArrayLike,
    price: ArrayLike,
    deadline_s: ArrayLike,
    energy_max_j: float,
    price_max: float,
) -> NDArray[np.float64]:
    """Per-vehicle cost ``Omega_n = t_off / T_n + E_total / E_max + P_n / P_max`` (paper B, Eq. 22 summand).

    Dimensionless; Eq. 22's Omega is the sum of this over vehicles.
    """
    return _f64(delay_s) / _f64(deadline_s) + _f64(energy_j) / energy_max_j + _f64(price) / price_max


MIN_COST = 1e-9
"""The floor of the cost in the reward ``1 / Omega_n`` (Eq. 53), so that it stays finite."""


def offload_reward(cost: ArrayLike, min_cost: float = MIN_COST) -> NDArray[np.float64]:
    """Reward ``R_n = 1 / Omega_n`` (paper B, Eq. 53); the cost is floored at ``min_cost`` to stay finite."""
    return 1.0 / np.maximum(_f64(cost), min_cost)


def task_success(delay_s: ArrayLike, deadline_s: ArrayLike) -> NDArray[np.bool_]:
    """Task success ``t_off <= T_n`` (paper B, constraint C.1 and Sec. VII's success rate)."""
    return _f64(delay_s) <= _f64(deadline_s)


class OffloadOutcome(NamedTuple):
    """Every term of paper B's cost model for one tick, per vehicle (units in the names)."""

    upload_s: NDArray[np.float64]
    compute_s: NDArray[np.float64]
    download_s: NDArray[np.float64]
    local_part_s: NDArray[np.float64]
    delay_s: NDArray[np.float64]
    tx_energy_j: NDArray[np.float64]
    compute_energy_j: NDArray[np.float64]
    download_energy_j: NDArray[np.float64]
    local_part_energy_j: NDArray[np.float64]
    energy_j: NDArray[np.float64]
    price: NDArray[np.float64]
    cost: NDArray[np.float64]
    reward: NDArray[np.float64]
    success: NDArray[np.bool_]


def offload_outcome(
    rho: ArrayLike,
    data_bits: ArrayLike,
    cycles: ArrayLike,
    deadline_s: ArrayLike,
    vehicle_cpu_hz: ArrayLike,
    rate_bps: ArrayLike,
    edge_cpu_hz: ArrayLike,
    *,
    kappa_local: float,
    kappa_edge: float,
    tx_power_w: float,
    output_ratio: float,
    twin_sync_energy_j: float,
    twin_sync_delay_s: float,
    price_per_task: float,
    energy_max_j: float,
    price_max: float,
) -> OffloadOutcome:
    """Paper B's whole cost model (Eq. 7-15, 21-22, 53) for offloading fractions ``rho``.

    ``rate_bps`` is r_n from :func:`~twin_service.physics.channel.offload_rate_bps` and
    ``edge_cpu_hz`` is each vehicle's RSU CPU share f'_m from :func:`edge_cpu_share_hz`.

    For one column per vehicle (1-D arrays of one length, scalar constants) it runs compiled with numba
    (:func:`twin_service.physics.compiled.offload_outcome_compiled`: one pass instead of some thirty array
    operations, the same numbers to the bit, tested); :func:`offload_outcome_numpy` is the reference and the
    fallback, and serves every other shape (broadcasting).
    """
    columns = tuple(_f64(x) for x in (rho, data_bits, cycles, deadline_s, vehicle_cpu_hz, rate_bps, edge_cpu_hz))
    consts = (
        kappa_local, kappa_edge, tx_power_w, output_ratio, twin_sync_energy_j, twin_sync_delay_s, price_per_task,
        energy_max_j, price_max, MIN_COST,
    )  # fmt: skip
    shape = columns[0].shape
    if (
        len(shape) == 1
        and all(c.shape == shape and c.flags.c_contiguous for c in columns)
        and all(np.ndim(k) == 0 for k in consts)
    ):
        fast = offload_outcome_compiled(columns, tuple(float(k) for k in consts))
        if fast is not None:
            terms, success = fast
            return OffloadOutcome(*terms, success=success)
    return offload_outcome_numpy(
        *columns,
        kappa_local=kappa_local,
        kappa_edge=kappa_edge,
        tx_power_w=tx_power_w,
        output_ratio=output_ratio,
        twin_sync_energy_j=twin_sync_energy_j,
        twin_sync_delay_s=twin_sync_delay_s,
        price_per_task=price_per_task,
        energy_max_j=energy_max_j,
        price_max=price_max,
    )


def offload_outcome_numpy(
    rho: ArrayLike,
    data_bits: ArrayLike,
    cycles: ArrayLike,
    deadline_s: ArrayLike,
    vehicle_cpu_hz: ArrayLike,
    rate_bps: ArrayLike,
    edge_cpu_hz: ArrayLike,
    *,
    kappa_local: float,
    kappa_edge: float,
    tx_power_w: float,
    output_ratio: float,
    twin_sync_energy_j: float,
    twin_sync_delay_s: float,
    price_per_task: float,
    energy_max_j: float,
    price_max: float,
) -> OffloadOutcome:
    """:func:`offload_outcome` as array expressions (any broadcastable shapes): the compiled form's reference."""
    up = upload_delay_s(rho, data_bits, rate_bps)
    comp = edge_compute_delay_s(rho, cycles, edge_cpu_hz)
    down = download_delay_s(rho, data_bits, output_ratio, rate_bps)
    local_s = local_part_delay_s(rho, cycles, vehicle_cpu_hz)
    delay = offload_delay_s(rho, up, comp, down, local_s, twin_sync_delay_s)
    e_tx = radio_energy_j(tx_power_w, up)
    e_comp = edge_compute_energy_j(rho, cycles, kappa_edge, twin_sync_energy_j)
    e_down = radio_energy_j(tx_power_w, down)
    e_local = local_part_energy_j(rho, cycles, kappa_local)
    energy = offload_energy_j(e_tx, e_comp, e_down, e_local)
    price = service_price(rho, price_per_task)
    cost = offload_cost(delay, energy, price, deadline_s, energy_max_j, price_max)
    return OffloadOutcome(
        upload_s=up,
        compute_s=comp,
        download_s=down,
        local_part_s=local_s,
        delay_s=delay,
        tx_energy_j=e_tx,
        compute_energy_j=e_comp,
        download_energy_j=e_down,
        local_part_energy_j=e_local,
        energy_j=energy,
        price=price,
        cost=cost,
        reward=offload_reward(cost),
        success=task_success(delay, deadline_s),
    )
