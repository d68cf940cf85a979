"""What the two documents (``README.md`` and ``index.html``) both say: the parts and their titles, the paragraphs on
what was run, each part's notes and evaluate commands, and links into the repository.
"""

from __future__ import annotations

import math
import os
import shlex
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin_service.config import REPO_ROOT
from twin_service.report import stats
from twin_service.report.plan import FIGURES, PAPER_A_FIGURES, PAPER_B_FIGURES, Plan
from twin_service.report.results import Missing, Results
from twin_service.report.verdicts import KPIS, VERDICTS, Claim, Verdict

if TYPE_CHECKING:
    from twin_service.report.state import Report

PART_TITLES = {
    "table2": "Table II and Fig. 5: workload prediction",
    "fig6": "Fig. 6: prediction, and DM-MAPPO against MASAC",
    "mlp": "Paper A's own actor (an MLP over o_v)",
    "fig7": "Fig. 7: migration size and generated data",
    "fig8": "Fig. 8: without UAVs, without the satellite, city against rural",
    "fig9": "Fig. 9: the dynamic mask",
    "fig10": "Fig. 10: UAVs appearing and leaving",
    "hamburg": "Beyond the papers: Hamburg, not retrained",
    "b-main": "Fig. 5a and 6: held-out cost, success, delay and energy, with the oracle ceiling",
    "b-fig2": "Fig. 2: AF-MARL's hyperparameters and deadlines",
    "b-fig3": "Fig. 3 and 5b: task size, RSU CPU and traffic density",
    "b-curves": "Fig. 4, 5a and 6 over training: the training curves",
}
A_KPIS = ("latency_mean_s", "packet_loss", "load_variance_mb2", "reward_eq22", "migrations_per_vehicle_tick")
B_KPIS = ("offload_cost_mean", "task_success_rate", "offload_delay_mean_s", "offload_energy_mean_j")


PAPERS = (
    ("A", "paper-a", "Paper A: twin migration (DM-MAPPO)"),
    ("B", "paper-b", "Paper B: federated offloading (AF-MARL)"),
)
"""(paper, anchor, title) of the documents' two halves."""


def shown_parts(plan: Plan, paper: str) -> list[str]:
    """The parts of a paper the documents have a section for (Hamburg only where the budget has it)."""
    parts = PAPER_A_FIGURES if paper == "A" else PAPER_B_FIGURES
    return [p for p in parts if p in PART_TITLES and (p != "hamburg" or p in plan.figures)]


def link(report: Report, target: str | Path) -> str:
    """A link from the report folder to a file of the repository (or the work folder)."""
    return os.path.relpath(REPO_ROOT / target, report.out)


def fmt_arm(row: dict[str, Any], kpi: str) -> str:
    """An arm's KPI (a row of :func:`~twin_service.report.render.arm_rows`) with its interval, in its unit."""
    k = KPIS[kpi]
    e = stats.Estimate(row[kpi], row[f"{kpi}_low"], row[f"{kpi}_high"])
    return e.fmt(k.digits, k.scale, k.unit)


def part_notes(r: Results, part: str) -> list[str]:
    """What a part's claims do not say by themselves, computed from what was measured."""
    notes: list[str] = []
    red = r.plan.reductions
    if part in red.days:
        figure = r.plan.figures.get(part)
        episodes = _episodes_per_arm(r.report, {a.condition for a in figure.arms}) if figure else 0
        days = ", ".join(map(str, red.days[part]))
        notes.append(f"Less than the {r.plan.budget.name} budget: evaluated on day(s) {days} only"
                     + (f", {episodes} episodes per arm" if episodes else "")
                     + " (`--days`), for want of time on 2 cores.")  # fmt: skip
    if part in red.as_committed:
        names = [n for n in r.plan.needs.get(part, ()) if n in r.report.models]
        shown = [f"{n} ({r.report.models[n].status})" for n in names if r.report.models[n].status != "reused"]
        if shown:
            notes.append("Models used as committed, not trained to the budget (`--as-committed`): "
                         + ", ".join(shown) + "; the Models table gives each one's training command. Once models "
                         "that meet the budget are in the models folder, the same command without --as-committed "
                         "reuses them (or trains them) and regenerates this part.")  # fmt: skip
    if part == "mlp":
        try:
            rows = r.curves("mappo-paper-city")
        except Missing:
            return notes
        val = [row for row in rows if math.isfinite(row.get("val_reward", math.nan))]
        if len(val) < 2:
            return notes
        first, last = val[0], val[-1]
        mig = "val_migrations_per_vehicle_tick"
        smig = "val_sample_migrations_per_vehicle_tick"
        entropy = [row["entropy"] for row in rows if math.isfinite(row.get("entropy", math.nan))]
        ent = f"{entropy[0]:.2f} to {entropy[-1]:.2f}" if entropy else "n/a"
        text = (
            f"Paper A's actor (an MLP over o_v, one logit per server) trained for {last.get('ticks', 0):,.0f} ticks. "
            f"On the validation day, taking its most likely server, it migrated {first.get(mig, math.nan):.3f} of "
            f"the twins per tick at the start and {last.get(mig, math.nan):.3f} at the end; sampling, "
            f"{first.get(smig, math.nan):.3f} and {last.get(smig, math.nan):.3f}. Its entropy went from {ent}, its "
            f"validation reward from {first['val_reward']:.2f} to {last['val_reward']:.2f}."
        )
        try:
            dm = r.curves("dm-mappo-city")
            dm_val = [row for row in dm if math.isfinite(row.get("val_reward", math.nan))]
            text += (f" Our per-server actor (DM-MAPPO) ends at {dm_val[-1].get(mig, math.nan):.4f} migrations per "
                     f"vehicle-tick and validation reward {dm_val[-1]['val_reward']:.2f}.")  # fmt: skip
        except (Missing, IndexError):
            pass
        notes.append(text)
        try:
            mlp = stats.mean_ci(r.arm("mlp", "MAPPO (paper actor)", "migrations_per_vehicle_tick"))
            ours = stats.mean_ci(r.arm("mlp", "DM-MAPPO", "migrations_per_vehicle_tick"))
        except Missing:
            return notes
        held_out = (f"On the held-out episodes it migrates {mlp.fmt(4)} of the twins per tick, DM-MAPPO "
                    f"{ours.fmt(4)}.")  # fmt: skip
        if mlp.low > 5 * max(ours.high, 1e-9):
            notes.append(
                f"{held_out} It did not learn to keep twins where they are, and the curves show why it cannot "
                "here: o_v (Eq. 19) holds the distances to the M-1 ground and air servers and every server's "
                "predicted load, but nothing that says which server hosts the twin now. Staying put, what "
                "least-loaded and DM-MAPPO do for more than 99 % of the twins every tick, is a different logit "
                "for every vehicle, picked by a feature the actor does not see; what it can learn is a function "
                "of position and load (the nearest server with room), which moves a twin whenever that changes, "
                "each move costing S_mig = 60 MB of migration. Our per-server actor scores each (vehicle, server) "
                "pair and has an is-current-host feature among its 14."
            )
        else:
            notes.append(f"{held_out} It keeps twins in place about as well as our actor.")
    return notes


def about(report: Report) -> list[str]:
    """The paragraphs on what was run and how to read it (markdown: ``**bold**`` only)."""
    b = report.plan.budget
    lines = [
        f"Budget **{b.name}**. Held-out days {', '.join(map(str, b.test_days))} (training days "
        f"{', '.join(map(str, b.train_days))}, validation day {b.val_day}); every figure over the span "
        f"{b.span[0]:g}-{b.span[1]:g} s of each held-out day after a {b.warmup_s:g} s warm-up, in episodes of "
        f"{b.episode_s:g} s, the same episodes for every policy (paired).",
        "Ours: the mean over episodes and training seeds with its 95 % interval (two-way bootstrap: episodes and "
        "seeds drawn with replacement, the episodes shared by the arms compared). A comparison rests on the paired "
        "difference (its interval) and Student's paired t-test over episodes. Verdicts: **reproduced** when every "
        "comparison of the claim separates in the paper's direction; **opposite** when none does and one separates "
        "the other way; **not reproduced** otherwise; **not comparable** when it could not be measured here.",
    ]
    red = report.plan.reductions
    if red:
        what = []
        for part, days in red.days.items():
            figure = report.plan.figures.get(part)
            conds = {a.condition for a in figure.arms} if figure else set()
            episodes = _episodes_per_arm(report, conds)
            what.append(f"{part} on day{'s' if len(days) > 1 else ''} {', '.join(map(str, days))} only"
                        + (f" ({episodes} episodes)" if episodes else ""))  # fmt: skip
        if red.as_committed:
            parts = ", ".join(p for p in FIGURES if p in red.as_committed)
            what.append(f"the models of {parts} as committed, not trained to the budget (missing seeds left out; "
                        "the Models table says what each was trained on)")  # fmt: skip
        lines.append(f"**Less than the {b.name} budget** (`{' '.join(red.options())}`): " + "; ".join(what) + ".")
    if b.name == "smoke":
        lines.append("**Smoke budget**: short recordings and tiny trainings that test the pipeline; its verdicts say "
                     "nothing about the papers.")  # fmt: skip
    return lines


def _episodes_per_arm(report: Report, conditions: set[str]) -> int:
    """An arm's episodes under these conditions, over all their days (the most of any condition, from the stored
    runs; 0 if none are stored)."""
    counts = {}
    for (cname, _m, _o, path), key in report.run_keys.items():
        rows = report.runs.get(key) if cname in conditions else None
        if rows:
            counts[(cname, path)] = len(rows)
    by_condition: dict[str, int] = {}
    for (cname, _path), n in counts.items():
        by_condition[cname] = by_condition.get(cname, 0) + n
    return max(by_condition.values(), default=0)


def regenerate_command(report: Report) -> str:
    """The command that regenerates this report (with its reductions), reusing every stored run that matches."""
    out = report.out
    shown = os.path.relpath(out, REPO_ROOT) if out.is_relative_to(REPO_ROOT) else str(out)
    extra = " ".join(shlex.quote(w) for w in report.plan.reductions.options())
    return f"twin-service report --budget {report.plan.budget.name}{' ' + extra if extra else ''} --out {shown}"


def summary_counts(verdicts: list[tuple[Claim, Verdict]], paper: str) -> str:
    counts = Counter(v.verdict for c, v in verdicts if c.paper == paper)
    return ", ".join(f"{counts[k]} {k}" for k in VERDICTS)


def commands(report: Report, part: str) -> list[str]:
    """The ``twin-service`` commands that evaluate a part's figure (one per condition) or Table II."""
    plan = report.plan
    out = []
    figure = plan.figures.get(part)
    if figure is not None:
        by_condition: dict[str, list[tuple[str, str]]] = {}
        for arm in figure.arms:
            by_condition.setdefault(arm.condition, []).extend(arm.runs())
        for cname, pairs in by_condition.items():
            out.append("twin-service " + shlex.join(plan.conditions[cname].command(list(dict.fromkeys(pairs)))))
    if part == "table2":
        names = [n for ns in plan.predictors.values() for n in ns]
        folders = ",".join(plan.models[n].folder for n in names)
        days = plan.conditions["city"].recordings
        out.append(f"twin-service predictor evaluate --models {folders} --recordings {','.join(days)} "
                   f"--test-days {','.join(map(str, plan.budget.test_days))} --out DIR")  # fmt: skip
    return out
