"""The report's statistics: two-way bootstrap intervals, the paired test, slopes (hand-checkable cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from twin_service.report import stats


def test_a_constant_difference_has_a_zero_width_interval() -> None:
    a = np.array([[1.0, 2.0, 3.0, 4.0]])
    est = stats.difference(a + 0.5, a)
    assert est.value == pytest.approx(0.5)
    assert est.low == pytest.approx(0.5) and est.high == pytest.approx(0.5)
    assert est.excludes(0.0) == 1


def test_pairing_removes_the_episodes_own_spread() -> None:
    rng = np.random.default_rng(3)
    episode = rng.normal(0.0, 10.0, size=12)  # traffic differs a lot between episodes
    a = (episode + 1.0 + rng.normal(0.0, 0.1, size=12))[None, :]
    b = (episode + rng.normal(0.0, 0.1, size=12))[None, :]
    paired = stats.bootstrap(lambda m: m["a"] - m["b"], {"a": a, "b": b}, paired=True)
    unpaired = stats.bootstrap(lambda m: m["a"] - m["b"], {"a": a, "b": b}, paired=False)
    assert paired.excludes(0.0) == 1  # a is better in every episode: the paired interval separates
    assert unpaired.excludes(0.0) == 0  # the same numbers, ignoring the pairing, do not
    assert (paired.high - paired.low) < (unpaired.high - unpaired.low) / 10


def test_seeds_widen_the_interval() -> None:
    episodes = np.linspace(0.0, 1.0, 10)
    one_seed = episodes[None, :]
    spread_seeds = np.stack([episodes - 1.0, episodes, episodes + 1.0])  # the seeds disagree by +-1
    narrow, wide = stats.mean_ci(one_seed), stats.mean_ci(spread_seeds)
    assert narrow.value == pytest.approx(wide.value)
    assert (wide.high - wide.low) > 2 * (narrow.high - narrow.low)


def test_the_interval_covers_the_mean_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(100):
        x = rng.normal(5.0, 1.0, size=(1, 30))
        est = stats.mean_ci(x, seed=trial)
        covered += est.low <= 5.0 <= est.high
    assert 0.86 <= covered / 100 <= 1.0


def test_paired_test_matches_scipy_and_counts_the_episodes_won() -> None:
    a = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    b = np.array([[1.5, 2.2, 2.9, 4.8, 5.5]])
    t = stats.paired_test(a, b)
    ref = scipy_stats.ttest_rel(a[0], b[0])
    assert t.t == pytest.approx(ref.statistic) and t.p == pytest.approx(ref.pvalue)
    assert (t.a_lower, t.b_lower, t.episodes) == (4, 1, 5)


def test_paired_test_on_seeds_uses_the_seed_means() -> None:
    a = np.array([[1.0, 3.0], [3.0, 5.0]])  # seed means per episode: 2, 4
    b = np.array([[2.5, 4.5]])
    t = stats.paired_test(a, b)
    assert t.a_lower == 2 and math.isinf(t.t) and t.p == 0.0  # a constant difference of -0.5


def test_slope_of_exactly_linear_means() -> None:
    arms = {str(i): np.full((1, 5), 2.0 * x + 1.0) for i, x in enumerate((40, 60, 80, 100, 120))}
    est = stats.bootstrap(stats.slope([40, 60, 80, 100, 120]), arms)
    assert est.value == pytest.approx(2.0) and est.low == pytest.approx(2.0) and est.high == pytest.approx(2.0)


def test_arms_on_different_episodes_cannot_be_paired() -> None:
    with pytest.raises(ValueError, match="same episodes"):
        stats.difference(np.zeros((1, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="matrix"):
        stats.as_matrix(np.zeros((2, 2, 2)))
