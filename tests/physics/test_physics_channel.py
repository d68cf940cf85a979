"""Paper A Eq. 3-5 (free-space gain, Shannon rate) and paper B Eq. 8 (calibrated rate)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin_service.config import BITS_PER_MB, OffloadParams
from twin_service.physics import (
    calibrated_channel_gain_sq,
    dbm_to_w,
    free_space_gain,
    free_space_rate_bps,
    noise_power_w,
    offload_rate_bps,
    shannon_rate_bps,
)

# NOTES.md defaults for paper A
CARRIER_HZ = 2.4e9
NOISE_W = 1e-13
BANDWIDTH_HZ = 300e6
TX_POWER_W = 1.0

# Table IV for paper B
B_W_HZ = 10e6
B_P_W = 0.1
B_BETA = 3.0
B_N0_DBM_HZ = -174.0


def test_free_space_gain_at_500m() -> None:
    # c / (4 pi f D) = 3e8 / (4 pi * 2.4e9 * 500) = 3e8 / 1.50796e13 = 1.98944e-5; squared: 3.95786e-10
    assert free_space_gain(500.0, CARRIER_HZ) == pytest.approx(3.95786e-10, rel=1e-5)


def test_free_space_gain_scales_with_coefficient_and_inverse_square() -> None:
    # A = 2 at twice the distance: 2 * 3.95786e-10 / 4 = 1.97893e-10
    assert free_space_gain(1000.0, CARRIER_HZ, gain_coefficient=2.0) == pytest.approx(1.97893e-10, rel=1e-5)


def test_free_space_gain_is_finite_at_zero_distance() -> None:
    # clamped to 1 m: (3e8 / (4 pi * 2.4e9))^2 = (9.94718e-3)^2 = 9.89464e-5
    assert free_space_gain(0.0, CARRIER_HZ) == pytest.approx(9.89464e-5, rel=1e-5)


def test_shannon_rate_at_500m() -> None:
    # SNR = 1 W * 3.95786e-10 / 1e-13 = 3957.86; log2(3958.86) = 11.9508; * 300 MHz = 3.58526 Gbit/s
    gain = free_space_gain(500.0, CARRIER_HZ)
    assert shannon_rate_bps(BANDWIDTH_HZ, TX_POWER_W, gain, NOISE_W) == pytest.approx(3.58526e9, rel=1e-5)


def test_two_mb_up_and_down_at_500m_is_about_9ms() -> None:
    # NOTES.md: 2 MB = 16e6 bit; 16e6 / 3.58526e9 = 4.4627 ms each way, 8.925 ms both (paper: 8.42 ms each)
    rate = free_space_rate_bps(500.0, BANDWIDTH_HZ, TX_POWER_W, NOISE_W, CARRIER_HZ)
    both_ways_s = 2 * 2.0 * BITS_PER_MB / rate
    assert both_ways_s == pytest.approx(8.925e-3, rel=1e-3)


def test_dbm_and_noise_conversion() -> None:
    assert dbm_to_w(30.0) == pytest.approx(1.0)
    assert dbm_to_w(0.0) == pytest.approx(1e-3)
    # -174 dBm/Hz = 10^-17.4 mW/Hz = 3.98107e-21 W/Hz; over 10 MHz: 3.98107e-14 W
    assert noise_power_w(B_N0_DBM_HZ, B_W_HZ) == pytest.approx(3.98107e-14, rel=1e-5)


def test_calibrated_gain_inverts_eq8_at_1000m() -> None:
    # SNR(20 Mbit/s over 10 MHz) = 2^2 - 1 = 3; h^2 = 3 * 3.98107e-14 * 1000^3 / 0.1 = 1.19432e-3
    h2 = calibrated_channel_gain_sq(20e6, 1000.0, B_W_HZ, B_P_W, B_BETA, B_N0_DBM_HZ)
    assert h2 == pytest.approx(1.19432e-3, rel=1e-5)
    back = offload_rate_bps(1000.0, B_W_HZ, B_P_W, B_BETA, h2, B_N0_DBM_HZ)
    assert back == pytest.approx(20e6, rel=1e-12)


def test_offload_rate_hand_values_with_default_gain() -> None:
    # h^2 = 1.2e-3. 1000 m: SNR = 0.1 * 1e-9 * 1.2e-3 / 3.98107e-14 = 3.01426, r = 10 MHz * log2(4.01426)
    # = 20.0514 Mbit/s. 500 m: SNR * 8 = 24.1141, r = 46.5043 Mbit/s. 50 m uncapped: SNR 24114.1,
    # r = 145.576 Mbit/s; capped at 50 Mbit/s.
    d = np.array([1000.0, 500.0, 50.0])
    uncapped = offload_rate_bps(d, B_W_HZ, B_P_W, B_BETA, 1.2e-3, B_N0_DBM_HZ)
    np.testing.assert_allclose(uncapped, [20.0514e6, 46.5043e6, 145.576e6], rtol=1e-5)
    capped = offload_rate_bps(d, B_W_HZ, B_P_W, B_BETA, 1.2e-3, B_N0_DBM_HZ, max_rate_bps=50e6)
    np.testing.assert_allclose(capped, [20.0514e6, 46.5043e6, 50e6], rtol=1e-5)


def test_interference_lowers_the_rate() -> None:
    # I equal to the noise power halves the SNR at 1000 m: 1.50713 -> 10 MHz * log2(2.50713) = 13.2601 Mbit/s
    noise = float(noise_power_w(B_N0_DBM_HZ, B_W_HZ))
    r = offload_rate_bps(1000.0, B_W_HZ, B_P_W, B_BETA, 1.2e-3, B_N0_DBM_HZ, interference_w=noise)
    assert r == pytest.approx(13.2601e6, rel=1e-4)


def test_config_defaults_keep_offload_rate_in_table_iv_range() -> None:
    """Table IV: r_n in 20-50 Mbit/s for d in 50-1000 m, with the scenario defaults of config.py."""
    p = OffloadParams()
    d = np.linspace(50.0, 1000.0, 20_001)
    r = offload_rate_bps(
        d,
        p.bandwidth_hz,
        p.tx_power_w,
        p.path_loss_exponent,
        p.channel_gain,
        p.noise_dbm_per_hz,
        p.interference_w,
        p.max_rate_bps,
    )
    assert r.min() >= 20e6
    assert r.max() <= 50e6
    # the range is used, not just respected: the far end sits near 20, the near end at the cap
    assert r[-1] < 20.1e6
    assert r[0] == pytest.approx(50e6)
    # and the default gain is the calibrated one, rounded up by < 1 %
    h2 = calibrated_channel_gain_sq(
        20e6, 1000.0, p.bandwidth_hz, p.tx_power_w, p.path_loss_exponent, p.noise_dbm_per_hz, p.interference_w
    )
    assert h2 <= p.channel_gain < 1.01 * h2


@given(st.floats(1.0, 1e6), st.floats(1.0001, 100.0))
def test_free_space_rate_falls_with_distance(d: float, factor: float) -> None:
    near = free_space_rate_bps(d, BANDWIDTH_HZ, TX_POWER_W, NOISE_W, CARRIER_HZ)
    far = free_space_rate_bps(d * factor, BANDWIDTH_HZ, TX_POWER_W, NOISE_W, CARRIER_HZ)
    assert 0.0 < far < near


@given(st.floats(1.0, 1e5), st.floats(1.0001, 100.0), st.floats(0.0, 1e-12))
def test_offload_rate_never_rises_with_distance(d: float, factor: float, interference_w: float) -> None:
    kwargs = dict(interference_w=interference_w, max_rate_bps=50e6)
    near = offload_rate_bps(d, B_W_HZ, B_P_W, B_BETA, 1.2e-3, B_N0_DBM_HZ, **kwargs)
    far = offload_rate_bps(d * factor, B_W_HZ, B_P_W, B_BETA, 1.2e-3, B_N0_DBM_HZ, **kwargs)
    assert 0.0 < far <= near <= 50e6
