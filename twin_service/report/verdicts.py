"""How a claim of the papers is judged on our measurements: the KPIs, the comparisons and the verdicts.

Every claim (:mod:`twin_service.report.claims` lists them) names the comparison it rests on (arms of a figure,
paired over the same held-out episodes) and is given a verdict:

* **reproduced**: every comparison the claim makes separates in the paper's direction (the 95 % interval of the
  difference excludes zero on the paper's side);
* **opposite**: no comparison separates in the paper's direction and at least one separates the other way;
* **not reproduced**: the rest (intervals that overlap zero, or a mix of both);
* **not comparable**: the claim cannot be tested here (what it needs was not measured, or our setting cannot
  express it); the reason says which.

Magnitudes (the paper's percentages) are shown beside ours; the verdict is about direction. Where the paper's
figure is an absolute number on its own data (PeMS flow, its city), only its direction is testable here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from twin_service.report import stats
from twin_service.report.results import Missing, Results

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
OPPOSITE = "opposite"
NOT_COMPARABLE = "not comparable"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, OPPOSITE, NOT_COMPARABLE)


@dataclass(frozen=True)
class Kpi:
    label: str
    better: str
    """``lower`` or ``higher``."""
    scale: float = 1.0
    unit: str = ""
    digits: int = 3


KPIS = {
    "latency_mean_s": Kpi("latency", "lower", 1.0, " s", 3),
    "packet_loss": Kpi("packet loss", "lower", 100.0, " %", 2),
    "load_variance_mb2": Kpi("load variance", "lower", 1.0, " MB²", 1),
    "reward_eq22": Kpi("test reward (Eq. 22)", "higher", 1.0, "", 3),
    "objective_eq21": Kpi("objective (Eq. 21)", "higher", 1.0, "", 2),
    "migrations_per_vehicle_tick": Kpi("migrations per vehicle-tick", "lower", 1.0, "", 4),
    "offload_cost_mean": Kpi("cost (Eq. 22 of paper B)", "lower", 1.0, "", 3),
    "task_success_rate": Kpi("task success", "higher", 100.0, " %", 1),
    "offload_delay_mean_s": Kpi("delay per task", "lower", 1.0, " s", 3),
    "offload_energy_mean_j": Kpi("energy per task", "lower", 1.0, " J", 1),
    "rmse": Kpi("RMSE", "lower", 1 / 8e6, " MB", 3),
    "mae": Kpi("MAE", "lower", 1 / 8e6, " MB", 3),
    "wape": Kpi("error rate (WAPE)", "lower", 100.0, " %", 2),
    "r2": Kpi("R²", "higher", 1.0, "", 4),
}


@dataclass
class Verdict:
    verdict: str
    ours: str
    comparison: str
    reason: str


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    part: str
    """The report part (figure) whose section the claim sits in."""
    figure: str
    """The paper's figure or table."""
    text: str
    paper_says: str
    assess: Callable[[Results], Verdict]

    def judge(self, results: Results) -> Verdict:
        try:
            return self.assess(results)
        except Missing as exc:
            return Verdict(NOT_COMPARABLE, "—", "—", f"not measured: {exc}")
        except Exception as exc:  # a bug must not cost the whole document: it shows in the row
            return Verdict(NOT_COMPARABLE, "—", "—", f"error while judging: {exc.__class__.__name__}: {exc}")


# --------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------


def value(arm: np.ndarray, kpi: str) -> str:
    k = KPIS[kpi]
    return stats.mean_ci(arm).fmt(k.digits, k.scale, k.unit)


@dataclass
class Cmp:
    """a against b on one KPI, paired over episodes (or not, across different days)."""

    a: str
    b: str
    kpi: str
    diff: stats.Estimate
    rel: stats.Estimate
    test: stats.PairedTest | None
    sign: int
    """+1: a is better, its interval clear of zero; -1: a is worse, clear of zero; 0: they overlap."""

    def text(self) -> str:
        k = KPIS[self.kpi]
        rel = self.rel.fmt(1, 100.0, " %") if math.isfinite(self.rel.value) else "n/a"
        test = f"; {self.test.fmt()}, {self.a} lower in {self.test.a_lower}" if self.test else " (unpaired)"
        return f"{self.a} vs {self.b}, {k.label}: {rel}{test}"


def compare(a: np.ndarray, b: np.ndarray, kpi: str, a_name: str, b_name: str, paired: bool = True) -> Cmp:
    if paired and a.shape[1] != b.shape[1]:
        raise Missing(f"{a_name} and {b_name} were evaluated on different episodes")
    diff = stats.difference(a, b, paired=paired)
    rel = stats.relative_change(a, b, paired=paired)
    test = stats.paired_test(a, b) if paired else None
    sense = -1 if KPIS[kpi].better == "lower" else 1
    return Cmp(a_name, b_name, kpi, diff, rel, test, diff.excludes(0.0) * sense)


def verdict_of(signs: Sequence[int]) -> str:
    if signs and all(s > 0 for s in signs):
        return REPRODUCED
    if signs and not any(s > 0 for s in signs) and any(s < 0 for s in signs):
        return OPPOSITE
    return NOT_REPRODUCED


def summarise(cmps: Sequence[Cmp]) -> str:
    up = sum(c.sign > 0 for c in cmps)
    down = [c for c in cmps if c.sign < 0]
    flat = [c for c in cmps if c.sign == 0]
    parts = [f"{up} of {len(cmps)} comparisons separate in the paper's direction"]
    if down:
        parts.append(
            f"{len(down)} the other way ({'; '.join(_short(c) for c in down[:3])}{'…' if len(down) > 3 else ''})"
        )
    if flat:
        parts.append(f"{len(flat)} overlap ({'; '.join(_short(c) for c in flat[:3])}{'…' if len(flat) > 3 else ''})")
    return ", ".join(parts)


def _short(c: Cmp) -> str:
    rel = c.rel.fmt(1, 100.0, " %") if math.isfinite(c.rel.value) else c.diff.fmt(3)
    return f"{c.a} vs {c.b} {KPIS[c.kpi].label} {rel}"


def better(fig: str, a: str, others: Sequence[str], kpis: Sequence[str]) -> Callable[[Results], Verdict]:
    """The claim: ``a`` is better than each of ``others`` on each KPI (paired over the figure's episodes)."""

    def assess(r: Results) -> Verdict:
        cmps = [compare(r.arm(fig, a, k), r.arm(fig, o, k), k, a, o) for k in kpis for o in others]
        ours = "; ".join(f"{KPIS[k].label} {value(r.arm(fig, a, k), k)}" for k in kpis)
        if len(cmps) <= 3:
            comparison = " | ".join(c.text() for c in cmps)
        else:
            shape = r.arm(fig, a, kpis[0]).shape
            comparison = (
                f"{a} against {', '.join(others)} on {', '.join(KPIS[k].label for k in kpis)}: "
                f"{len(cmps)} paired differences over {shape[1]} episodes"
            )
        return Verdict(verdict_of([c.sign for c in cmps]), f"{a}: {ours}", comparison, summarise(cmps))

    return assess


def best_at_every(
    fig: str, points: Sequence[tuple[str, str, Sequence[str]]], kpis: Sequence[str]
) -> Callable[[Results], Verdict]:
    """``a`` better than each competitor at every point of a sweep: [(point label, a, competitors)]."""

    def assess(r: Results) -> Verdict:
        cmps, ours = [], []
        for point, a, others in points:
            for k in kpis:
                cmps += [compare(r.arm(fig, a, k), r.arm(fig, o, k), k, a, o) for o in others]
            ours.append(f"{point}: " + ", ".join(f"{value(r.arm(fig, a, k), k)}" for k in kpis))
        lost = sorted({c.a.split(" @ ")[-1] for c in cmps if c.sign <= 0})
        reason = summarise(cmps) + (f"; not best at {', '.join(lost)}" if lost else "")
        comparison = (
            f"at each of {len(points)} settings, {points[0][1].split(' @ ')[0]} against "
            f"{', '.join(o.split(' @ ')[0] for o in points[0][2])} on {', '.join(KPIS[k].label for k in kpis)}: "
            f"{len(cmps)} paired differences"
        )
        return Verdict(verdict_of([c.sign for c in cmps]), "; ".join(ours), comparison, reason)

    return assess


def trend(
    fig: str, series: Sequence[tuple[str, Sequence[tuple[float, str]]]], kpi: str, sign: int, unit_x: str
) -> Callable[[Results], Verdict]:
    """Each series' KPI falls (sign -1) or rises (+1) along x: the slope of its means, with its interval."""

    def assess(r: Results) -> Verdict:
        signs, texts = [], []
        k = KPIS[kpi]
        for name, points in series:
            xs = [x for x, _ in points]
            arms = {str(i): r.arm(fig, label, kpi) for i, (_, label) in enumerate(points)}
            est = stats.bootstrap(stats.slope(xs), arms)
            s = est.excludes(0.0)
            signs.append(s * sign)
            texts.append(f"{name} {est.fmt(k.digits, k.scale)}{k.unit} per {unit_x}")
        ours = "slope: " + "; ".join(texts)
        up = sum(s > 0 for s in signs)
        down = sum(s < 0 for s in signs)
        reason = f"{up} of {len(signs)} series {'fall' if sign < 0 else 'rise'} with intervals clear of zero" + (
            f", {down} go the other way" if down else ""
        )
        return Verdict(verdict_of(signs), ours, f"least-squares slope of the means over {unit_x}", reason)

    return assess


def average_change(
    fig: str, pairs: Sequence[tuple[str, str]], kpi: str, sign: int, *, relative: bool = True
) -> Callable[[Results], Verdict]:
    """The average over algorithms of (variant - base) [/ |base|]: [(variant label, base label)]."""

    def assess(r: Results) -> Verdict:
        arms = {}
        for i, (variant, base) in enumerate(pairs):
            arms[f"v{i}"] = r.arm(fig, variant, kpi)
            arms[f"b{i}"] = r.arm(fig, base, kpi)
        widths = {a.shape[1] for a in arms.values()}
        if len(widths) != 1:
            raise Missing("the arms were evaluated on different episodes")

        def stat(m: stats.Means) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = [
                    (m[f"v{i}"] - m[f"b{i}"]) / (np.abs(m[f"b{i}"]) if relative else 1.0) for i in range(len(pairs))
                ]
            return np.mean(terms, axis=0)

        est = stats.bootstrap(stat, arms)
        k = KPIS[kpi]
        each = []
        for i, (variant, base) in enumerate(pairs):
            c = compare(arms[f"v{i}"], arms[f"b{i}"], kpi, variant, base)
            each.append(_short(c))
        shown = est.fmt(1, 100.0, " %") if relative else est.fmt(k.digits, k.scale, k.unit)
        s = est.excludes(0.0) * sign
        return Verdict(
            verdict_of([s]),
            f"average {'change' if relative else 'difference'} of {k.label}: {shown}",
            "; ".join(each),
            f"the average over {len(pairs)} algorithms' changes {'separates from zero' if s else 'overlaps zero'}"
            + (" in the paper's direction" if s > 0 else " the other way" if s < 0 else ""),
        )

    return assess
