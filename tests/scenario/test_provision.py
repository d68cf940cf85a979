"""Provisioning an imported city: the demand pass's peak window, the count search, the UAV ratio."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin_service.config import load_params
from twin_service.scenario.calibrate import CITY_DROPPED_SHARE
from twin_service.scenario.importer import IMPORT_RULE
from twin_service.scenario.provision import PeakWindowRecorder, fewest_within, uavs_for


def _feed(recorder: PeakWindowRecorder, counts: list[int]) -> None:
    """Tick k at sim time k + 1 with ``counts[k]`` vehicles, each at x = tick index (to trace what is kept)."""
    for k, n in enumerate(counts):
        recorder.add(float(k + 1), np.full(n, float(k)), np.zeros(n))


def test_peak_is_the_middle_of_the_busiest_window_by_hand():
    """Half-width 1, warm-up 2, after 1. Three-tick sums around ticks 1..4: 8, 10, 9, 4: the peak is tick 2."""
    recorder = PeakWindowRecorder(tick_s=1.0, warmup_s=2.0, after_s=1.0, halfwidth_s=1.0)
    _feed(recorder, [1, 2, 5, 3, 1, 0, 0])
    demand = recorder.result(start_s=0.0)
    assert demand.peak_time_s == 3.0  # tick index 2 is at sim time 3
    np.testing.assert_array_equal(demand.vehicles, [1, 2, 5, 3, 1, 0, 0])
    np.testing.assert_array_equal(demand.positions.times_s, [1.0, 2.0, 3.0, 4.0])  # [peak - 2, peak + 1]
    assert [x[0] for x in demand.positions.x_m] == [0.0, 1.0, 2.0, 3.0]
    assert demand.vehicles_at_peak == pytest.approx((2 + 5 + 3) / 3)
    assert demand.positions.start_s == 0.0


def test_a_tie_keeps_the_earliest_peak_and_a_short_run_still_has_one():
    recorder = PeakWindowRecorder(tick_s=1.0, warmup_s=1.0, after_s=1.0, halfwidth_s=1.0)
    _feed(recorder, [0, 4, 0, 0, 4, 0])
    assert recorder.result(0.0).peak_time_s == 2.0
    short = PeakWindowRecorder(tick_s=1.0, warmup_s=600.0, after_s=300.0, halfwidth_s=60.0)
    _feed(short, [1, 3, 7, 2])  # shorter than one window: the tick with the most vehicles
    demand = short.result(0.0)
    assert demand.peak_time_s == 3.0 and len(demand.positions.times_s) == 4


@given(st.lists(st.integers(0, 30), min_size=1, max_size=120), st.integers(0, 6), st.integers(0, 8), st.integers(0, 5))
def test_the_kept_window_is_the_busiest_and_memory_stays_bounded(counts, halfwidth, warmup, after):
    recorder = PeakWindowRecorder(tick_s=1.0, warmup_s=warmup, after_s=after, halfwidth_s=halfwidth)
    most_kept = 0
    for k, n in enumerate(counts):
        recorder.add(float(k + 1), np.full(n, float(k)), np.zeros(n))
        most_kept = max(most_kept, len(recorder._recent) + len(recorder._best_window))
    demand = recorder.result(0.0)
    peak = int(demand.peak_time_s) - 1
    c = np.asarray(counts)
    if len(c) >= 2 * halfwidth + 1:  # whole windows exist: the peak's is the busiest, the earliest on a tie
        sums = np.convolve(c, np.ones(2 * halfwidth + 1), "valid")
        assert peak == halfwidth + int(np.argmax(sums))
    kept = [int(x[0]) for x in demand.positions.x_m if len(x)]
    expected = [k for k in range(max(0, peak - warmup), min(len(c), peak + after + 1)) if c[k]]
    assert kept == expected
    assert most_kept <= (max(warmup, halfwidth) + halfwidth + 1) + (warmup + after + 1)


def test_fewest_within_brackets_then_bisects():
    calls: list[int] = []

    def share(n: int) -> float:  # falls with n; 0.2 is first reached at n = 37
        calls.append(n)
        return 7.4 / n

    assert fewest_within(share, lo=6, hi=400, guess=10.0, target=0.2) == 37
    assert fewest_within(share, lo=6, hi=400, guess=300.0, target=0.2) == 37
    assert fewest_within(share, lo=6, hi=400, guess=1.0, target=2.0) == 6  # even the fewest qualify
    assert fewest_within(share, lo=6, hi=30, guess=10.0, target=0.2) == 30  # none qualifies: the most
    assert len(calls) < 40  # a search, not a scan


def test_uavs_follow_the_citys_ratio_within_bounds():
    assert uavs_for(76, IMPORT_RULE) == 10
    assert uavs_for(38, IMPORT_RULE) == 5
    assert uavs_for(6, IMPORT_RULE) == IMPORT_RULE.uav_min
    assert uavs_for(300, IMPORT_RULE) == IMPORT_RULE.uav_max


def test_the_import_target_is_the_committed_citys_dropped_share(city_dir):
    assert load_params(city_dir).calibration["dropped_data_share_at_peak"] == CITY_DROPPED_SHARE
