"""Intervals and paired tests for the report: pure numpy and scipy, no I/O.

Every arm of a comparison (a policy under a condition) is a matrix ``(S, E)``: one row per training seed, one
column per evaluation episode. Episodes are the same for every arm of a figure (the same recorded days and
windows), so comparisons are *paired*: column ``e`` of one arm is the same piece of traffic as column ``e`` of
another.

Intervals come from a two-way bootstrap (episodes and seeds are both drawn with replacement, Owen's "pigeonhole"
bootstrap for crossed factors): each replicate draws one set of episodes, shared by every arm (the pairing), and
for each arm its own set of seeds. A statistic of the arms' means (a difference, a relative change, an average of
changes, a slope over a sweep) is computed per replicate; its 2.5 and 97.5 percentiles are the 95 % interval. With
one seed this is the ordinary paired bootstrap over episodes.

The paired test of two arms is Student's paired t-test on the per-episode differences of the seed means, with the
number of episodes each arm wins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

LEVEL = 0.95
REPLICATES = 4000

Means = Mapping[str, NDArray[np.float64]]
"""Each arm's mean: an array over bootstrap replicates (or a one-element array for the point estimate)."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95 % interval."""

    value: float
    low: float
    high: float

    def excludes(self, x: float = 0.0) -> int:
        """+1 when the interval lies above ``x``, -1 when below, 0 when it contains it."""
        if self.low > x:
            return 1
        if self.high < x:
            return -1
        return 0

    def fmt(self, digits: int = 3, scale: float = 1.0, unit: str = "") -> str:
        v, lo, hi = (self.value * scale, self.low * scale, self.high * scale)
        if not all(math.isfinite(x) for x in (v, lo, hi)):
            return f"{_num(v, digits)}{unit}"
        return f"{_num(v, digits)}{unit} [{_num(lo, digits)}, {_num(hi, digits)}]"


def _num(x: float, digits: int) -> str:
    if not math.isfinite(x):
        return "n/a"
    if x != 0 and (abs(x) >= 10 ** (digits + 2) or abs(x) < 10 ** (-digits)):
        return f"{x:.{digits}g}"
    return f"{x:.{digits}f}" if abs(x) < 10 else f"{x:.{max(digits - 2, 1)}f}"


def as_matrix(values: NDArray[np.floating] | list) -> NDArray[np.float64]:
    """An arm as ``(S, E)``: a vector is one seed."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"an arm is a (seeds, episodes) matrix with at least one of each, got shape {a.shape}")
    return a


def _weights(rng: np.random.Generator, n: int, replicates: int) -> NDArray[np.float64]:
    """Multinomial counts of a draw with replacement of ``n`` from ``n``, per replicate: ``(B, n)``."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)


def bootstrap(
    stat: Callable[[Means], NDArray[np.float64]],
    arms: Mapping[str, NDArray[np.floating]],
    *,
    paired: bool = True,
    replicates: int = REPLICATES,
    seed: int = 0,
    level: float = LEVEL,
) -> Estimate:
    """``stat`` of the arms' means, with its percentile interval over a two-way bootstrap (module docstring).

    ``paired``: every arm has the same episodes and one draw of them serves all (else each arm draws its own).
    """
    mats = {k: as_matrix(v) for k, v in arms.items()}
    if paired:
        widths = {m.shape[1] for m in mats.values()}
        if len(widths) != 1:
            raise ValueError(f"paired arms need the same episodes, got {sorted(widths)} episodes")
    point = float(np.asarray(stat({k: np.array([m.mean()]) for k, m in mats.items()}))[0])
    rng = np.random.default_rng(seed)
    first = next(iter(mats.values()))
    shared = _weights(rng, first.shape[1], replicates) if paired else None
    means: dict[str, NDArray[np.float64]] = {}
    for name, m in mats.items():
        s, e = m.shape
        we = shared if shared is not None else _weights(rng, e, replicates)
        ws = _weights(rng, s, replicates)
        means[name] = np.einsum("bs,se,be->b", ws, m, we) / (s * e)
    values = np.asarray(stat(means), dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < replicates // 2:
        return Estimate(point, math.nan, math.nan)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return Estimate(point, float(low), float(high))


def mean_ci(arm: NDArray[np.floating], *, seed: int = 0) -> Estimate:
    """An arm's mean over seeds and episodes, with its bootstrap interval."""
    return bootstrap(lambda m: m["a"], {"a": arm}, seed=seed)


def difference(a: NDArray[np.floating], b: NDArray[np.floating], *, paired: bool = True, seed: int = 0) -> Estimate:
    """mean(a) - mean(b), paired over episodes (or not: ``paired=False``, each arm draws its own)."""
    return bootstrap(lambda m: m["a"] - m["b"], {"a": a, "b": b}, paired=paired, seed=seed)


def relative_change(
    a: NDArray[np.floating], b: NDArray[np.floating], *, paired: bool = True, seed: int = 0
) -> Estimate:
    """(mean(a) - mean(b)) / |mean(b)|, paired over episodes or not, as :func:`difference` (NaN where b's mean is
    0)."""

    def stat(m: Means) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (m["a"] - m["b"]) / np.abs(m["b"])

    return bootstrap(stat, {"a": a, "b": b}, paired=paired, seed=seed)


@dataclass(frozen=True)
class PairedTest:
    """Student's paired t-test on per-episode differences of seed means, and who wins each episode."""

    t: float
    p: float
    episodes: int
    a_lower: int
    """Episodes where a's value is below b's."""
    b_lower: int

    def fmt(self) -> str:
        p = "n/a" if not math.isfinite(self.p) else (f"{self.p:.2g}" if self.p >= 1e-4 else "<1e-4")
        return f"paired t-test p = {p} over {self.episodes} episodes"


def paired_test(a: NDArray[np.floating], b: NDArray[np.floating]) -> PairedTest:
    from scipy import stats

    x, y = as_matrix(a).mean(axis=0), as_matrix(b).mean(axis=0)
    if x.shape != y.shape:
        raise ValueError(f"paired arms need the same episodes: {x.shape[0]} against {y.shape[0]}")
    d = x - y
    n = len(d)
    if n < 2 or not np.any(d != d[0]):
        t, p = (math.nan, math.nan) if not np.any(d) or n < 2 else (math.copysign(math.inf, d[0]), 0.0)
    else:
        res = stats.ttest_rel(x, y)
        t, p = float(res.statistic), float(res.pvalue)
    return PairedTest(t, p, n, int((d < 0).sum()), int((d > 0).sum()))


def slope(xs: list[float]) -> Callable[[Means], NDArray[np.float64]]:
    """A statistic: the least-squares slope of the arms' means (arms named "0", "1", ...) against ``xs``."""
    x = np.asarray(xs, dtype=np.float64)
    xc = x - x.mean()
    denom = float((xc**2).sum())

    def stat(m: Means) -> NDArray[np.float64]:
        ys = np.stack([m[str(i)] for i in range(len(x))])  # (points, B)
        return (xc[:, None] * ys).sum(axis=0) / denom

    return stat
