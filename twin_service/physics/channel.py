"""Radio channels: free-space gain and Shannon rates (paper A, Eq. 3-5, 11; paper B, Eq. 8).

Powers are watts, bandwidths hertz, distances metres, rates bit/s. Logs are base 2 (NOTES.md).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twin_service.physics.geo import SPEED_OF_LIGHT_MPS

MIN_LINK_DISTANCE_M = 1.0
"""Distances are clamped up to this before a path-loss law is applied: both laws diverge at 0 m
(a vehicle right under an RSU, two co-located servers), and neither holds within a few
wavelengths (12.5 cm at 2.4 GHz)."""


def free_space_gain(
    distance_m: ArrayLike,
    carrier_hz: float,
    gain_coefficient: float = 1.0,
    min_distance_m: float = MIN_LINK_DISTANCE_M,
) -> NDArray[np.float64]:
    """Channel power gain ``h = A (c / (4 pi f D))^2`` (paper A, Eq. 3), dimensionless.

    ``A`` is the channel increment coefficient (paper: unspecified; NOTES.md: 1) and ``f`` the
    carrier (NOTES.md: 2.4 GHz). At 500 m and 2.4 GHz, ``h = 3.958e-10``.
    """
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), min_distance_m)
    return (gain_coefficient * (SPEED_OF_LIGHT_MPS / (4.0 * np.pi * carrier_hz)) ** 2) / (d * d)


def shannon_rate_bps(
    bandwidth_hz: ArrayLike, tx_power_w: ArrayLike, gain: ArrayLike, noise_w: ArrayLike
) -> NDArray[np.float64]:
    """Shannon rate ``B log2(1 + p h / sigma^2)`` (paper A, Eq. 4 up, Eq. 5 down, Eq. 11 migration), bit/s.

    ``noise_w`` is the noise power sigma^2 over the band (NOTES.md: 1e-13 W).
    """
    snr = np.asarray(tx_power_w, dtype=np.float64) * np.asarray(gain, dtype=np.float64) / noise_w
    return shannon_rate_from_snr_bps(bandwidth_hz, snr)


def shannon_rate_from_snr_bps(bandwidth_hz: ArrayLike, snr: ArrayLike) -> NDArray[np.float64]:
    """Shannon rate ``B log2(1 + SNR)`` of a known SNR, bit/s: :func:`shannon_rate_bps`'s last step, which the
    compiled pair pricing (:mod:`twin_service.physics.compiled`) shares so that its rates are these to the bit
    (numpy's ``log1p`` is vectorised and differs from the C library's in the last bit of about 1 % of values)."""
    # log1p keeps the rate accurate (and > 0) where the SNR is tiny, far from the server.
    return np.asarray(bandwidth_hz, dtype=np.float64) * np.log1p(np.asarray(snr, dtype=np.float64)) / np.log(2.0)


def free_space_rate_bps(
    distance_m: ArrayLike,
    bandwidth_hz: float,
    tx_power_w: float,
    noise_w: float,
    carrier_hz: float,
    gain_coefficient: float = 1.0,
) -> NDArray[np.float64]:
    """Paper A link rate over distance: Eq. 3 into Eq. 4 / 5 / 11, bit/s.

    With NOTES.md defaults (B = 300 MHz, p = 1 W, sigma^2 = 1e-13 W, f = 2.4 GHz) the rate at
    500 m is 3.585 Gbit/s, so 2 MB up plus 2 MB down take 8.93 ms (paper: 8.42 ms each).
    """
    gain = free_space_gain(distance_m, carrier_hz, gain_coefficient)
    return shannon_rate_bps(bandwidth_hz, tx_power_w, gain, noise_w)


def dbm_to_w(power_dbm: ArrayLike) -> NDArray[np.float64]:
    """Convert dBm to watts: ``10^(dBm / 10) mW``."""
    return 10.0 ** (np.asarray(power_dbm, dtype=np.float64) / 10.0) * 1e-3


def noise_power_w(noise_dbm_per_hz: float, bandwidth_hz: ArrayLike) -> NDArray[np.float64]:
    """Thermal noise power N0 over a band (paper B, Eq. 8 denominator), watts.

    Paper B gives N0 as a density (-174 dBm/Hz); over W = 10 MHz that is 3.981e-14 W.
    """
    return dbm_to_w(noise_dbm_per_hz) * np.asarray(bandwidth_hz, dtype=np.float64)


def offload_rate_bps(
    distance_m: ArrayLike,
    bandwidth_hz: float,
    tx_power_w: float,
    path_loss_exponent: float,
    channel_gain_sq: float,
    noise_dbm_per_hz: float,
    interference_w: ArrayLike = 0.0,
    max_rate_bps: float = np.inf,
    min_distance_m: float = MIN_LINK_DISTANCE_M,
) -> NDArray[np.float64]:
    """Vehicle-to-RSU rate ``min(W log2(1 + P d^-beta h^2 / (N0 W + I)), r_max)`` (paper B, Eq. 8), bit/s.

    ``channel_gain_sq`` is h_n^2 (a power gain); ``max_rate_bps`` truncates the Shannon bound
    at the radio's top modulation (3GPP TR 36.942 Annex A's "truncated Shannon"), our addition.

    Calibration (NOTES.md: with Table IV's h_n = 1e-7 the rate is ~0). No single h^2 can keep
    Eq. 8 inside Table IV's 20-50 Mbit/s over d = 50-1000 m with beta = 3: the SNR ratio between
    the ends is (1000/50)^3 = 8000, while 20 and 50 Mbit/s at W = 10 MHz need SNR 3 and 31,
    a ratio of about 10. So we pin the far end and cap the near end:

    * N0 W = 10^(-17.4) mW/Hz * 10^7 Hz = 3.981e-14 W.
    * r(1000 m) = 20 Mbit/s needs SNR = 2^(20/10) - 1 = 3, so
      h^2 = 3 * N0 W * 1000^3 / P = 3 * 3.981e-14 * 1e9 / 0.1 = 1.194e-3
      (:func:`calibrated_channel_gain_sq`); we round up to 1.2e-3 (r(1000 m) = 20.05 Mbit/s).
    * The uncapped rate reaches 50 Mbit/s (SNR 31) at d = 1000 (3.014 / 31)^(1/3) = 459.8 m and
      145.6 Mbit/s at 50 m; r_max = 50 Mbit/s (Table IV's upper end) caps d < 459.8 m.
    """
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), min_distance_m)
    noise = noise_power_w(noise_dbm_per_hz, bandwidth_hz) + np.asarray(interference_w, dtype=np.float64)
    snr = tx_power_w * d ** (-path_loss_exponent) * channel_gain_sq / noise
    return np.minimum(bandwidth_hz * np.log1p(snr) / np.log(2.0), max_rate_bps)


def calibrated_channel_gain_sq(
    target_rate_bps: float,
    distance_m: float,
    bandwidth_hz: float,
    tx_power_w: float,
    path_loss_exponent: float,
    noise_dbm_per_hz: float,
    interference_w: float = 0.0,
) -> float:
    """The h^2 at which paper B's Eq. 8 gives ``target_rate_bps`` at ``distance_m`` (Eq. 8 inverted).

    ``h^2 = (2^(r/W) - 1) (N0 W + I) d^beta / P``; with Table IV (W = 10 MHz, P = 0.1 W,
    beta = 3, N0 = -174 dBm/Hz) and r = 20 Mbit/s at 1000 m this is 1.194e-3.
    """
    snr = 2.0 ** (target_rate_bps / bandwidth_hz) - 1.0
    noise = float(noise_power_w(noise_dbm_per_hz, bandwidth_hz)) + interference_w
    return float(snr * noise * distance_m**path_loss_exponent / tx_power_w)
