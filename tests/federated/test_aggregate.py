"""AdFL aggregation maths against values computed by hand (paper B, Eq. 31, 34, 42-45)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin_service.federated.aggregate import (
    Thresholds,
    adapt,
    admitted,
    apply_update,
    async_mix,
    contribution_score,
    layer_norms,
    staleness_weight,
    trigger,
    weighted_average,
)


def test_weighted_average_eq31_by_hand() -> None:
    # alpha = |D_n| = 1 and 3: (1 * 2 + 3 * 6) / 4 = 5 ; (1 * [0, 4] + 3 * [4, 0]) / 4 = [3, 1]
    u1 = [np.array(2.0), np.array([0.0, 4.0])]
    u2 = [np.array(6.0), np.array([4.0, 0.0])]
    out = weighted_average([u1, u2], [1, 3])
    assert out[0] == pytest.approx(5.0)
    np.testing.assert_allclose(out[1], [3.0, 1.0])


def test_equal_weights_is_eq44_plain_mean_and_apply_update() -> None:
    w = [np.array([1.0, 1.0])]
    deltas = [[np.array([0.2, -0.4])], [np.array([0.4, 0.0])]]
    mean = weighted_average(deltas, [7, 7])
    np.testing.assert_allclose(mean[0], [0.3, -0.2])
    np.testing.assert_allclose(apply_update(w, mean)[0], [1.3, 0.8])


def test_weighted_average_rejects_bad_weights() -> None:
    with pytest.raises(ValueError):
        weighted_average([[np.zeros(1)]], [0.0])
    with pytest.raises(ValueError):
        weighted_average([[np.zeros(1)], [np.zeros(1)]], [1.0])
    with pytest.raises(ValueError):
        weighted_average([], [])


@given(st.lists(st.floats(0.1, 100.0), min_size=1, max_size=6), st.floats(-5, 5))
def test_average_of_identical_updates_is_that_update(weights: list[float], value: float) -> None:
    updates = [[np.array([value, 2 * value])] for _ in weights]
    np.testing.assert_allclose(weighted_average(updates, weights)[0], [value, 2 * value], atol=1e-9)


def test_gradient_norm_score_eq42_43() -> None:
    grads = [np.array([3.0, 4.0]), np.array([[1.0, 2.0], [2.0, 4.0]])]  # norms 5 and 5
    norms = layer_norms(grads)
    np.testing.assert_allclose(norms, [5.0, 5.0])
    assert contribution_score(np.array([5.0, 1.0])) == pytest.approx(3.0)  # omega = 1/2 each
    assert contribution_score(np.array([5.0, 1.0]), np.array([0.8, 0.2])) == pytest.approx(4.2)


def test_admitted_keeps_the_best_when_all_fall_short() -> None:
    np.testing.assert_array_equal(admitted([0.1, 0.5, 0.3], 0.3), [False, True, True])
    np.testing.assert_array_equal(admitted([0.1, 0.2], 1.0), [False, True])


def test_semi_synchronous_trigger_whichever_first() -> None:
    assert trigger(1.0, 10, 5.0, 10) == "count"  # N_agg updates before tau_agg
    assert trigger(5.0, 3, 5.0, 10) == "time"  # tau_agg elapsed with 3 updates
    assert trigger(4.9, 9, 5.0, 10) is None
    assert trigger(60.0, 0, 5.0, 10) is None  # nothing to aggregate


def test_adapt_eq45() -> None:
    th = Thresholds(sigma_min=1.0, tau_agg_s=5.0, n_agg=10, sigma_quantile=0.5, sigma_rate=0.5, tau_step_s=0.5)
    fast = adapt(th, "count", [2.0, 3.0, 4.0], elapsed_s=1.0)  # median 3: sigma += 0.5 * (3 - 1) = 2
    assert fast.sigma_min == pytest.approx(2.0)
    assert fast.tau_agg_s == pytest.approx(4.5) and fast.n_agg == 11
    slow = adapt(th, "time", [1.0], elapsed_s=5.0)
    assert slow.sigma_min == pytest.approx(1.0)
    assert slow.tau_agg_s == pytest.approx(5.5) and slow.n_agg == 9
    unchanged = adapt(th, "count", [1.0], elapsed_s=4.0)  # a count trigger late in the interval
    assert (unchanged.tau_agg_s, unchanged.n_agg) == (5.0, 10)
    low = Thresholds(tau_agg_s=2.0, n_agg=20)
    bounded = adapt(low, "count", [1.0], elapsed_s=0.1)
    assert bounded.tau_agg_s == 2.0 and bounded.n_agg == 20


def test_async_mix_and_staleness() -> None:
    out = async_mix([np.array([0.0, 10.0])], [np.array([10.0, 0.0])], 0.25)
    np.testing.assert_allclose(out[0], [2.5, 7.5])
    assert staleness_weight(0.6, 3) == pytest.approx(0.3)  # 0.6 / sqrt(4)
    with pytest.raises(ValueError):
        async_mix([np.zeros(1)], [np.zeros(1)], 1.5)
