"""How a claim becomes a verdict: the comparisons and their combination, on measurements given by hand."""

from __future__ import annotations

import numpy as np
import pytest

from twin_service.report import claims
from twin_service.report.results import Missing


class GivenResults:
    """Per (figure, arm, KPI) a (seeds, episodes) matrix, as the report's Results returns them."""

    def __init__(self, arms: dict[tuple[str, str, str], np.ndarray]) -> None:
        self.arms = arms

    def arm(self, figure: str, label: str, kpi: str) -> np.ndarray:
        try:
            return self.arms[(figure, label, kpi)]
        except KeyError:
            raise Missing(f"{label} was not run") from None


EPISODES = np.array([0.60, 0.62, 0.58, 0.65, 0.61, 0.63, 0.59, 0.64, 0.60, 0.62])


def _latency(a_shift: float) -> GivenResults:
    return GivenResults({
        ("fig6", "DM-MAPPO", "latency_mean_s"): (EPISODES + a_shift)[None, :],
        ("fig6", "MASAC", "latency_mean_s"): EPISODES[None, :],
    })  # fmt: skip


@pytest.mark.parametrize(
    ("shift", "verdict"),
    [(-0.03, claims.REPRODUCED), (0.03, claims.OPPOSITE), (0.0, claims.NOT_REPRODUCED)],
)
def test_a_lower_is_better_claim(shift: float, verdict: str) -> None:
    judge = claims.better("fig6", "DM-MAPPO", ("MASAC",), ("latency_mean_s",))
    v = judge(_latency(shift))
    assert v.verdict == verdict
    assert "DM-MAPPO vs MASAC" in v.comparison and "paired t-test" in v.comparison


def test_higher_is_better_kpis_flip_the_direction() -> None:
    results = GivenResults({
        ("b-main", "AF-MARL", "task_success_rate"): (EPISODES + 0.05)[None, :],
        ("b-main", "DDQN", "task_success_rate"): EPISODES[None, :],
    })  # fmt: skip
    assert claims.better("b-main", "AF-MARL", ("DDQN",), ("task_success_rate",))(results).verdict == claims.REPRODUCED


def test_a_claim_with_one_comparison_against_it_and_one_for_it_is_not_reproduced() -> None:
    results = GivenResults({
        ("fig6", "DM-MAPPO", "latency_mean_s"): (EPISODES - 0.05)[None, :],
        ("fig6", "DM-MAPPO", "packet_loss"): (EPISODES + 0.05)[None, :],
        ("fig6", "MASAC", "latency_mean_s"): EPISODES[None, :],
        ("fig6", "MASAC", "packet_loss"): EPISODES[None, :],
    })  # fmt: skip
    v = claims.better("fig6", "DM-MAPPO", ("MASAC",), ("latency_mean_s", "packet_loss"))(results)
    assert v.verdict == claims.NOT_REPRODUCED
    assert "1 of 2 comparisons separate" in v.reason and "1 the other way" in v.reason


def test_a_trend_claim_reads_the_slope() -> None:
    arms = {("fig7", f"DM-MAPPO @ {x} MB", "reward_eq22"): (EPISODES * 0 - 0.01 * x + EPISODES)[None, :]
            for x in (40, 80, 120)}  # fmt: skip
    judge = claims.trend(
        "fig7", [("DM-MAPPO", [(x, f"DM-MAPPO @ {x} MB") for x in (40, 80, 120)])], "reward_eq22", -1, "MB"
    )
    v = judge(GivenResults(arms))
    assert v.verdict == claims.REPRODUCED
    assert "-0.010" in v.ours


def test_an_average_change_over_algorithms() -> None:
    arms = {}
    for algo, rise in (("DM-MAPPO", 0.2), ("MASAC", 0.4)):
        arms[("fig8", algo, "latency_mean_s")] = EPISODES[None, :]
        arms[("fig8", f"{algo} (no UAVs)", "latency_mean_s")] = (EPISODES * (1 + rise))[None, :]
    v = claims.average_change("fig8", [("DM-MAPPO (no UAVs)", "DM-MAPPO"), ("MASAC (no UAVs)", "MASAC")],
                              "latency_mean_s", +1)(GivenResults(arms))  # fmt: skip
    assert v.verdict == claims.REPRODUCED
    assert "30.0 %" in v.ours  # the average of +20 % and +40 %


def test_what_was_not_measured_is_not_comparable() -> None:
    claim = claims.Claim("X", "A", "fig6", "Fig. 6", "text", "paper", claims.better("fig6", "DM-MAPPO", ("MASAC",),
                                                                                   ("latency_mean_s",)))  # fmt: skip
    v = claim.judge(GivenResults({}))
    assert v.verdict == claims.NOT_COMPARABLE and "DM-MAPPO was not run" in v.reason


def test_every_claim_of_both_papers_has_an_id_once() -> None:
    every = claims.paper_a_claims((40, 120), (1.0, 3.0)) + claims.paper_b_claims((0.5, 2.0), (2.5, 3.5), (0.5, 1.5))
    ids = [c.id for c in every]
    assert len(ids) == len(set(ids))
    assert {c.paper for c in every} == {"A", "B"}
    assert sum(c.paper == "A" for c in every) >= 25 and sum(c.paper == "B" for c in every) >= 15
