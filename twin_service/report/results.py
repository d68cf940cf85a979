"""The report's measurements as matrices: one row per seed, one column per held-out episode.

Paper A's z-scored KPIs (the test reward, Eq. 22, and the objective, Eq. 21) are computed from the stored sums with
the moments of the figure's reference arm (least-loaded on the same episodes), as ``twin-service evaluate`` does,
so that every arm of a figure is on one scale.
"""

from __future__ import annotations

import csv
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from twin_service.config import REPO_ROOT
from twin_service.report.plan import AVAILABLE

if TYPE_CHECKING:
    from twin_service.report.state import Report


class Missing(LookupError):
    """What a claim needs was not measured (the message says why)."""


SUM_INT_FIELDS = ("ticks", "vehicle_ticks", "failures", "migrations", "on_satellite", "success")


class Results:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.plan = report.plan
        self._weights: dict[str, Any] = {}
        self._moments: dict[str, Any] = {}
        self._cache: dict[tuple[str, str, str], np.ndarray] = {}

    # ---- why something is missing ------------------------------------------------------------------------
    def _why_missing(self, part: str, names: tuple[str, ...]) -> str:
        if part in self.report.failures:
            return f"{part} failed: {self.report.failures[part]}"
        if part in self.report.skipped:
            return f"{part}: {self.report.skipped[part]}"
        for n in names:
            status = self.report.models.get(n)
            if status is not None and status.status not in AVAILABLE:
                return f"model {n} is not available ({status.status}: {status.note})"
        if part not in self.report.parts:
            return f"{part}: no stored run matches the current models and days (not run here, or not to the end)"
        return f"{part}: not measured in this budget"

    # ---- evaluation runs -----------------------------------------------------------------------------------
    def _sums(self, condition: str, migration: str, offload: str) -> list[Any]:
        from twin_service.envs.evaluate import EpisodeSums

        cond = self.plan.conditions[condition]
        out = []
        for path in cond.recordings:
            key = self.report.run_keys.get((condition, migration, offload, path))
            rows = self.report.runs.get(key) if key else None
            if not rows:
                raise Missing("")
            rows = sorted(rows, key=lambda r: int(r["episode"]))
            for r in rows:
                fields = {
                    k: (int(float(r[k])) if k in SUM_INT_FIELDS else float(r[k]))
                    for k in EpisodeSums.__dataclass_fields__
                }
                out.append(EpisodeSums(**fields))
        return out

    def _available(self, *names: str) -> bool:
        models = self.report.models
        return all(models[n].status in AVAILABLE for n in names if n in self.plan.models and n in models)

    def _weights_of(self, condition: str) -> Any:
        if condition not in self._weights:
            from twin_service.envs.sim import scenario_of

            first = self.plan.conditions[condition].recordings[0]
            self._weights[condition] = scenario_of([REPO_ROOT / first]).params.reward
        return self._weights[condition]

    def _moments_of(self, figure: str) -> Any:
        from twin_service.envs.evaluate import Moments

        if figure not in self._moments:
            fig = self.plan.figures[figure]
            ref = fig.arm(fig.reference) if fig.reference else fig.arms[0]
            m, o = ref.runs()[0]
            try:
                self._moments[figure] = Moments.of(self._sums(ref.condition, m, o))
            except Missing:
                raise Missing(self._why_missing(figure, ref.models)) from None
        return self._moments[figure]

    def arm(self, figure: str, label: str, kpi: str) -> np.ndarray:
        """``(seeds, episodes)`` of a KPI for an arm of a figure; :class:`Missing` if not measured."""
        from twin_service.envs.evaluate import Moments, episode_row

        key = (figure, label, kpi)
        if key in self._cache:
            return self._cache[key]
        if figure not in self.plan.figures:
            raise Missing(f"{figure} is not in the {self.plan.budget.name} budget")
        fig = self.plan.figures[figure]
        arm = fig.arm(label)
        runs = []
        pairs = arm.runs()
        kept = [(m, o) for m, o in pairs if self._available(m, o)]
        for m, o in kept or pairs:  # a seed missing under --as-committed: the arm keeps the others
            try:
                runs.append(self._sums(arm.condition, m, o))
            except Missing:
                raise Missing(self._why_missing(figure, arm.models)) from None
        moments = self._moments_of(figure) if kpi in ("reward_eq22", "objective_eq21") else None
        weights = self._weights_of(arm.condition)
        rows = []
        for sums in runs:
            moments_here = Moments.of(sums) if moments is None else moments
            rows.append([episode_row(s, moments_here, weights)[kpi] for s in sums])
        if len({len(r) for r in rows}) != 1:
            raise Missing(f"{label}: the seeds were evaluated on different episodes")
        out = np.asarray(rows, dtype=np.float64)
        self._cache[key] = out
        return out

    def has(self, figure: str, label: str) -> bool:
        try:
            self.arm(figure, label, "latency_mean_s")
        except Missing:
            return False
        return True

    # ---- Table II --------------------------------------------------------------------------------------
    def predictor(self, network: str, metric: str) -> np.ndarray:
        """``(seeds, blocks)`` of a predictor metric (a network's seeds, or persistence / window mean)."""
        names = self.plan.predictors.get(network, (network,))
        rows = []
        for name in names:
            values = []
            for path in self.plan.conditions["city"].recordings:
                key = self.report.predictor_keys.get((name, path))
                stored = self.report.predictor_rows.get(key) if key else None
                if not stored:
                    raise Missing(self._why_missing("table2", names))
                values += [float(r[metric]) for r in sorted(stored, key=lambda r: int(r["block"]))]
            rows.append(values)
        return np.asarray(rows, dtype=np.float64)

    # ---- training curves ---------------------------------------------------------------------------------
    def curves(self, model: str) -> list[dict[str, float]]:
        status = self.report.models.get(model)
        if status is None or status.status not in AVAILABLE:
            raise Missing(f"model {model} is not available" + (f" ({status.note})" if status else ""))
        path = REPO_ROOT / self.plan.models[model].folder / "curves.csv"
        if not path.is_file():
            raise Missing(f"{model} has no curves.csv")
        with path.open() as fh:
            return [{k: _float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _float(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan
