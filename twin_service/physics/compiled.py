"""Physics compiled with numba, the same numbers to the bit as the array expressions they stand for (kept as the
references they are tested against), in one pass instead of numpy's temporaries for each of a dozen or more steps:

* :func:`twin_service.observe.pair_latency_s`'s access and migration latency of (vehicle, server) pairs;
* :func:`twin_service.physics.offload.offload_outcome`, paper B's cost model (only + - * / and comparisons).

The pair loops build each link's SNR and each latency; the rates between them are numpy's own
(:func:`~twin_service.physics.channel.shannon_rate_from_snr_bps`): its vectorised ``log1p`` differs from the C
library's, which a compiled loop would call, in the last bit of about 1 % of values on a machine with AVX-512.

Compiled on first use and cached on disk beside this module (``cache=True``). Where numba cannot be imported, or
compiling fails, or ``TWIN_NO_JIT`` is set, the ``*_compiled`` functions return None and the callers keep numpy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from twin_service.physics.channel import shannon_rate_from_snr_bps

log = logging.getLogger(__name__)

DISABLE_VAR = "TWIN_NO_JIT"
"""Set (to anything but empty or 0) to keep numpy and the Python loops: to compare, or where numba misbehaves."""

_FAILED: set[str] = set()
"""Kernels that failed at their first call in this process (their callers stay on numpy)."""


def jit_disabled() -> bool:
    """Whether ``TWIN_NO_JIT`` turns the compiled kernels off."""
    return os.environ.get(DISABLE_VAR, "") not in ("", "0")


def njit_or_none(
    what: str, *kernels: Callable[..., Any], error_model: str = "numpy"
) -> tuple[Callable[..., Any], ...] | None:
    """``kernels`` compiled by numba (``cache=True``, ``nogil``, fastmath off: IEEE operations as written), or None
    where ``TWIN_NO_JIT`` is set, numba cannot be imported or compiling fails (said once, naming ``what``).

    ``error_model="numpy"``: a division by zero gives inf or NaN, as in numpy, instead of raising."""
    if jit_disabled():
        return None
    try:
        import numba
    except ImportError:  # pragma: no cover - a dependency (the Docker image leaves it out and sets TWIN_NO_JIT)
        log.warning("numba is not importable: %s runs with numpy", what)
        return None
    try:
        jit = numba.njit(cache=True, nogil=True, error_model=error_model)
        return tuple(jit(kernel) for kernel in kernels)
    except Exception as exc:  # noqa: BLE001 - any failure to compile keeps numpy, said once
        log.warning("numba could not compile %s (%s): using numpy", what, exc)
        return None


def _pair_snr_kernel(
    dist: NDArray[np.floating],
    host: NDArray[np.int64],
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    gain_at_1m: float,
    min_distance_m: float,
    noise_w: float,
    tx_up_w: float,
    tx_down_w: float,
    tx_mig_w: float,
    symmetric: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:  # pragma: no cover
    # Compiled (its reference is observe.pair_latency_s_numpy): the SNR of each pair's access link (up and down)
    # and of the migration legs of the pairs that move (host >= 0 and not the pair's server), Eq. 3 into Eq. 4-5, 11.
    # A symmetric link's downlink is its uplink: not computed.
    p = rows.shape[0]
    snr_up = np.empty(p, dtype=np.float64)
    snr_down = np.empty(0 if symmetric else p, dtype=np.float64)
    moving = np.empty(p, dtype=np.int64)
    snr_mig = np.empty(p, dtype=np.float64)
    k = 0
    for i in range(p):
        r = rows[i]
        c = cols[i]
        d = np.float64(dist[r, c])
        dd = d if (d >= min_distance_m or d != d) else min_distance_m  # np.maximum: NaN stays NaN
        gain = gain_at_1m / (dd * dd)
        snr_up[i] = tx_up_w * gain / noise_w
        if not symmetric:
            snr_down[i] = tx_down_w * gain / noise_w
        h = host[r]
        if h >= 0 and h != c:
            legs = np.float64(dist[r, h]) + d
            ll = legs if (legs >= min_distance_m or legs != legs) else min_distance_m
            snr_mig[k] = tx_mig_w * (gain_at_1m / (ll * ll)) / noise_w
            moving[k] = i
            k += 1
    return snr_up, snr_down, moving[:k], snr_mig[:k]


def _pair_latency_kernel(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    host: NDArray[np.int64],
    sat: NDArray[np.bool_],
    rate_up: NDArray[np.float64],
    rate_down: NDArray[np.float64],
    moving: NDArray[np.int64],
    rate_mig: NDArray[np.float64],
    data_bits: float,
    satellite_access_s: float,
    migration_bits: float,
    satellite_rate_bps: float,
    propagation_s: float,
    symmetric: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:  # pragma: no cover - runs compiled
    # Access latency up + down (Eq. 6-7; the satellite at R_SAT plus its propagation) and migration latency
    # (Eq. 12 over the leg's rate, R_SAT with the satellite at either end, plus one propagation on a hop to it).
    p = rows.shape[0]
    access = np.empty(p, dtype=np.float64)
    migration = np.zeros(p, dtype=np.float64)
    for i in range(p):
        if sat[cols[i]]:
            up = satellite_access_s
            down = satellite_access_s
        else:
            up = data_bits / rate_up[i]
            down = up if symmetric else data_bits / rate_down[i]
        access[i] = up + down
    for j in range(moving.shape[0]):
        i = moving[j]
        c = cols[i]
        h = host[rows[i]]
        rate = satellite_rate_bps if (sat[h] or sat[c]) else rate_mig[j]
        migration[i] = migration_bits / rate + (propagation_s if sat[h] != sat[c] else 0.0)
    return access, migration


@cache
def _compiled_pair_kernels() -> tuple[Callable[..., Any], ...] | None:
    return njit_or_none("the pair pricing", _pair_snr_kernel, _pair_latency_kernel)


def pair_latency_compiled(
    distances_m: NDArray[np.floating],
    host: NDArray[np.int64],
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    is_satellite: NDArray[np.bool_],
    *,
    gain_at_1m: float,
    min_distance_m: float,
    noise_w: float,
    up: tuple[float, float],
    down: tuple[float, float],
    mig: tuple[float, float],
    data_bits: float,
    migration_bits: float,
    satellite_rate_bps: float,
    propagation_s: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """:func:`twin_service.observe.pair_latency_s` compiled: the access and migration latency of the pairs
    ``(rows, cols)``, the same numbers to the bit; None where it cannot run compiled (the caller uses numpy).

    ``up``, ``down`` and ``mig`` are each link's (bandwidth Hz, transmit power W); ``gain_at_1m`` is Eq. 3's gain
    at 1 m (:func:`~twin_service.physics.free_space_gain` of 1). The loops build the SNRs and the latencies; the
    rates between them are numpy's (:func:`~twin_service.physics.channel.shannon_rate_from_snr_bps`), whose
    vectorised ``log1p`` the C library's does not equal to the bit."""
    kernels = None if "pairs" in _FAILED else _compiled_pair_kernels()
    if kernels is None:
        return None
    snr_kernel, latency_kernel = kernels
    dist = np.asarray(distances_m)
    if dist.ndim != 2:
        return None
    if dist.dtype not in (np.float32, np.float64) or not (dist.flags.c_contiguous or dist.flags.f_contiguous):
        dist = np.ascontiguousarray(dist, dtype=np.float64)
    host_ = np.ascontiguousarray(host, dtype=np.int64).reshape(-1)
    rows_ = np.ascontiguousarray(rows, dtype=np.int64)
    cols_ = np.ascontiguousarray(cols, dtype=np.int64)
    sat = np.ascontiguousarray(is_satellite, dtype=np.bool_).reshape(-1)
    n, m = dist.shape[0], min(dist.shape[1], sat.size)
    if rows_.ndim != 1 or rows_.shape != cols_.shape or host_.size < n:
        return None
    # The compiled loops do not check bounds: anything out of range goes to numpy, whose indexing says how.
    if rows_.size and (rows_.min() < 0 or rows_.max() >= n or cols_.min() < 0 or cols_.max() >= m):
        return None
    if host_.size and host_[:n].max() >= m:
        return None
    symmetric = up == down
    try:
        snr_up, snr_down, moving, snr_mig = snr_kernel(
            dist, host_, rows_, cols_, float(gain_at_1m), float(min_distance_m), float(noise_w),
            float(up[1]), float(down[1]), float(mig[1]), bool(symmetric),
        )  # fmt: skip
        rate_up = shannon_rate_from_snr_bps(up[0], snr_up)
        rate_down = rate_up if symmetric else shannon_rate_from_snr_bps(down[0], snr_down)
        rate_mig = shannon_rate_from_snr_bps(mig[0], snr_mig)
        satellite_access_s = data_bits / satellite_rate_bps + propagation_s
        return latency_kernel(
            rows_, cols_, host_, sat, rate_up, rate_down, moving, rate_mig, float(data_bits),
            float(satellite_access_s), float(migration_bits), float(satellite_rate_bps), float(propagation_s),
            bool(symmetric),
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a compile error surfaces at the first call: keep numpy
        log.warning("numba could not run the pair pricing (%s): using numpy", exc)
        _FAILED.add("pairs")
        return None


@cache
def warm_up() -> bool:
    """Compile (or load from the disk cache) the kernels now (the pair pricing for both distance types, the offloading
    cost model), rather than in the first decision. True where they run compiled."""
    priced = [
        pair_latency_compiled(
            np.ones((1, 2), dtype=dtype), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.intp),
            np.ones(1, dtype=np.intp), np.array([False, True]), gain_at_1m=1.0, min_distance_m=1.0, noise_w=1.0,
            up=(1.0, 1.0), down=(1.0, 1.0), mig=(1.0, 1.0), data_bits=1.0, migration_bits=1.0,
            satellite_rate_bps=1.0, propagation_s=0.0,
        )
        for dtype in (np.float32, np.float64)  # the distance matrices' two types
    ]  # fmt: skip
    ones = np.ones(1)
    outcome = offload_outcome_compiled((ones,) * 7, (1.0,) * 10)
    return outcome is not None and all(p is not None for p in priced)


def _offload_outcome_kernel(
    rho: NDArray[np.float64],
    data_bits: NDArray[np.float64],
    cycles: NDArray[np.float64],
    deadline_s: NDArray[np.float64],
    vehicle_cpu_hz: NDArray[np.float64],
    rate_bps: NDArray[np.float64],
    edge_cpu_hz: NDArray[np.float64],
    consts: NDArray[np.float64],
) -> tuple:  # pragma: no cover - runs compiled (its reference is physics.offload.offload_outcome_numpy)
    # Paper B's cost model per vehicle, each term as physics/offload.py writes it, in its operations' order.
    kappa_local, kappa_edge, tx_power_w, output_ratio = consts[0], consts[1], consts[2], consts[3]
    sync_energy_j, sync_delay_s, price_per_task = consts[4], consts[5], consts[6]
    energy_max_j, price_max, min_cost = consts[7], consts[8], consts[9]
    n = rho.shape[0]
    out = np.empty((13, n), dtype=np.float64)
    success = np.empty(n, dtype=np.bool_)
    for i in range(n):
        r = rho[i]
        off = r > 0.0
        up = r * data_bits[i] / rate_bps[i] if off else 0.0
        comp = r * cycles[i] / edge_cpu_hz[i] if off else 0.0
        down = output_ratio * r * data_bits[i] / rate_bps[i] if off else 0.0
        local_s = (1.0 - r) * cycles[i] / vehicle_cpu_hz[i]
        remote = up + comp + down + (sync_delay_s if off else 0.0)
        # np.maximum: NaN if either is NaN, else the larger.
        delay = remote if remote != remote else (local_s if local_s != local_s or local_s > remote else remote)
        e_tx = tx_power_w * up
        e_comp = r * kappa_edge * cycles[i] + (sync_energy_j if off else 0.0)
        e_down = tx_power_w * down
        e_local = (1.0 - r) * kappa_local * cycles[i]
        energy = e_tx + e_comp + e_down + e_local
        price = r * price_per_task
        cost = delay / deadline_s[i] + energy / energy_max_j + price / price_max
        out[0, i] = up
        out[1, i] = comp
        out[2, i] = down
        out[3, i] = local_s
        out[4, i] = delay
        out[5, i] = e_tx
        out[6, i] = e_comp
        out[7, i] = e_down
        out[8, i] = e_local
        out[9, i] = energy
        out[10, i] = price
        out[11, i] = cost
        out[12, i] = 1.0 / (cost if cost != cost or cost >= min_cost else min_cost)
        success[i] = delay <= deadline_s[i]
    return out, success


@cache
def _compiled_offload_kernel() -> Callable[..., Any] | None:
    kernels = njit_or_none("the offloading cost model", _offload_outcome_kernel)
    return None if kernels is None else kernels[0]


def offload_outcome_compiled(
    columns: tuple[NDArray[np.float64], ...], consts: tuple[float, ...]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]] | None:
    """:func:`twin_service.physics.offload.offload_outcome` compiled, for seven 1-D float64 columns of one length
    (rho, data, cycles, deadline, vehicle CPU, rate, edge CPU) and its ten constants (the keyword arguments in
    order, then the reward's floor): its thirteen float terms as rows of one ``(13, V)`` array and the success
    flags, the same numbers to the bit (only + - * / and comparisons). None where it cannot run compiled."""
    kernel = None if "offload" in _FAILED else _compiled_offload_kernel()
    if kernel is None:
        return None
    try:
        return kernel(*columns, np.array(consts, dtype=np.float64))
    except Exception as exc:  # noqa: BLE001 - a compile error surfaces at the first call: keep numpy
        log.warning("numba could not run the offloading cost model (%s): using numpy", exc)
        _FAILED.add("offload")
        return None
