"""The report's documents: ``index.html`` (self-contained; plots beside it), ``README.md`` (the same in markdown),
``claims.csv`` (one row per claim), ``arms.csv`` (every arm's KPIs with intervals), ``models.csv``, and the plots.
"""

from __future__ import annotations

import csv
import html
import math
import os
import platform
import shlex
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from twin_service.config import REPO_ROOT
from twin_service.report import stats
from twin_service.report.claims import all_claims
from twin_service.report.plan import NETWORK_LABEL, PAPER_A_FIGURES, PAPER_B_FIGURES
from twin_service.report.results import Missing, Results
from twin_service.report.verdicts import KPIS, NOT_COMPARABLE, VERDICTS, Claim, Verdict

if TYPE_CHECKING:
    from rich.console import Console

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
VERDICT_COLOUR = {
    "reproduced": "#1a7f37",
    "not reproduced": "#9a6700",
    "opposite": "#cf222e",
    "not comparable": "#57606a",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------------------
# Plots (each returns the file written, or None when nothing of it was measured)
# --------------------------------------------------------------------------------------------


def _bars(r: Results, fig: str, kpis: tuple[str, ...], out: Path, labels: list[str] | None = None) -> Path | None:
    figure = r.plan.figures[fig]
    arms = [a.label for a in figure.arms if labels is None or a.label in labels]
    have = [a for a in arms if r.has(fig, a)]
    if not have:
        return None
    plt = _plt()
    fig_, axes = plt.subplots(1, len(kpis), figsize=(3.6 * len(kpis), 3.6), squeeze=False)
    for ax, kpi in zip(axes[0], kpis, strict=True):
        k = KPIS[kpi]
        try:
            est = [stats.mean_ci(r.arm(fig, a, kpi)) for a in have]
        except Missing as exc:  # a z-scored KPI without its reference arm
            ax.set_title(f"{k.label}: not measured", fontsize=9)
            ax.text(0.5, 0.5, str(exc)[:60], ha="center", va="center", fontsize=6, wrap=True, transform=ax.transAxes)
            continue
        means = np.array([e.value for e in est]) * k.scale
        lo = np.array([e.value - e.low if math.isfinite(e.low) else 0 for e in est]) * k.scale
        hi = np.array([e.high - e.value if math.isfinite(e.high) else 0 for e in est]) * k.scale
        ax.bar(range(len(have)), means, yerr=[lo, hi], capsize=3, color=[f"C{i % 10}" for i in range(len(have))])
        ax.set_xticks(range(len(have)))
        ax.set_xticklabels(have, rotation=35, ha="right", fontsize=7)
        ax.set_title(f"{k.label}{' (' + k.unit.strip() + ')' if k.unit.strip() else ''}", fontsize=9)
    fig_.suptitle(f"{PART_TITLES.get(fig, fig)} (mean, 95 % CI over episodes and seeds)", fontsize=9)
    fig_.tight_layout()
    path = out / f"{fig}.png"
    fig_.savefig(path, dpi=90)
    plt.close(fig_)
    return path


def _sweep_lines(r: Results, fig: str, panels: list[tuple[str, str, list[tuple[float, str]], str]], algos: list[str],
                 out: Path, name: str) -> Path | None:  # fmt: skip
    """Lines with CI bands: panels of (title, kpi, [(x, label template)], x label)."""
    plt = _plt()
    fig_, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.4), squeeze=False)
    drawn = False
    for ax, (title, kpi, points, xlabel) in zip(axes[0], panels, strict=True):
        k = KPIS[kpi]
        for i, algo in enumerate(algos):
            xs, ys, lo, hi = [], [], [], []
            for x, template in points:
                try:
                    e = stats.mean_ci(r.arm(fig, template.format(algo), kpi))
                except (Missing, KeyError):
                    continue
                xs.append(x)
                ys.append(e.value * k.scale)
                lo.append((e.low if math.isfinite(e.low) else e.value) * k.scale)
                hi.append((e.high if math.isfinite(e.high) else e.value) * k.scale)
            if xs:
                drawn = True
                ax.plot(xs, ys, marker="o", color=f"C{i}", label=algo)
                ax.fill_between(xs, lo, hi, color=f"C{i}", alpha=0.15)
        ax.set_title(f"{title}: {k.label}" + (f" ({k.unit.strip()})" if k.unit.strip() else ""), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
    if not drawn:
        plt.close(fig_)
        return None
    axes[0][0].legend(fontsize=7)
    fig_.tight_layout()
    path = out / f"{name}.png"
    fig_.savefig(path, dpi=90)
    plt.close(fig_)
    return path


def _curves(r: Results, models: list[tuple[str, str]], panels: list[tuple[str, str]], out: Path, name: str,
            x: str = "ticks") -> Path | None:  # fmt: skip
    """Training curves of models [(model, label)] in panels [(column, title)]."""
    plt = _plt()
    series = []
    for model, label in models:
        try:
            series.append((label, r.curves(model)))
        except Missing:
            continue
    if not series:
        return None
    fig_, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.3), squeeze=False)
    for ax, (column, title) in zip(axes[0], panels, strict=True):
        for i, (label, rows) in enumerate(series):
            pts = [(row.get(x, math.nan), row.get(column, math.nan)) for row in rows]
            pts = [(a, b) for a, b in pts if math.isfinite(a) and math.isfinite(b)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=f"C{i % 10}", label=label, lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(x, fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig_.tight_layout()
    path = out / f"{name}.png"
    fig_.savefig(path, dpi=90)
    plt.close(fig_)
    return path


def _table2_plot(r: Results, out: Path) -> Path | None:
    plt = _plt()
    nets = [n for n in (*NETWORK_LABEL, "persistence", "window mean")]
    metrics = ("rmse", "wape", "r2")
    rows = []
    for n in nets:
        try:
            rows.append((NETWORK_LABEL.get(n, n), [stats.mean_ci(r.predictor(n, m)) for m in metrics]))
        except Missing:
            continue
    if not rows:
        return None
    fig_, axes = plt.subplots(1, len(metrics), figsize=(11, 3.4))
    for ax, (j, metric) in zip(axes, enumerate(metrics), strict=True):
        k = KPIS[metric]
        means = [e[j].value * k.scale for _, e in rows]
        err = [[(e[j].value - e[j].low) * k.scale if math.isfinite(e[j].low) else 0 for _, e in rows],
               [(e[j].high - e[j].value) * k.scale if math.isfinite(e[j].high) else 0 for _, e in rows]]  # fmt: skip
        ax.bar(range(len(rows)), means, yerr=err, capsize=3, color=[f"C{i}" for i in range(len(rows))])
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([n for n, _ in rows], rotation=35, ha="right", fontsize=7)
        ax.set_title(f"{k.label}{' (' + k.unit.strip() + ')' if k.unit.strip() else ''}", fontsize=9)
    fig_.suptitle("Table II on held-out days (mean, 95 % CI over blocks and seeds)", fontsize=9)
    fig_.tight_layout()
    path = out / "table2.png"
    fig_.savefig(path, dpi=90)
    plt.close(fig_)
    return path


PLOT_FILES = {
    "table2": ("table2",),
    "fig6": ("fig6",),
    "mlp": ("mlp", "mlp_curves"),
    "fig7": ("fig7_migration", "fig7_data"),
    "fig8": ("fig8",),
    "fig9": ("fig9",),
    "fig10": ("fig10",),
    "hamburg": ("hamburg",),
    "b-main": ("b-main",),
    "b-fig2": ("b-fig2", "b-fig2_training"),
    "b-fig3": ("b-fig3",),
    "b-curves": ("b-fig4_losses", "b-fig5a_fig6_training"),
}
"""The plots of each part (``<name>.png`` beside the documents)."""


def plots(r: Results, out: Path, parts: set[str] | None = None) -> dict[str, list[Path]]:
    """Draws the plots of ``parts`` (all when None); returns every part's plots present in ``out``."""
    for part in PLOT_FILES if parts is None else parts:
        for stale in PLOT_FILES.get(part, ()):
            (out / f"{stale}.png").unlink(missing_ok=True)
        _draw(r, out, part)
    return {
        part: [out / f"{n}.png" for n in names if (out / f"{n}.png").is_file()] for part, names in PLOT_FILES.items()
    }


def _draw(r: Results, out: Path, part: str) -> None:  # noqa: C901 - one plot recipe per part
    plan = r.plan
    b = plan.budget
    made: dict[str, list[Path | None]] = {}
    if part == "table2":
        made["table2"] = [_table2_plot(r, out)]
    if part == "fig6":
        made["fig6"] = [_bars(r, "fig6", A_KPIS[:4], out)]
    dm = [n for n in plan.needs.get("fig6", ()) if n.startswith("dm-mappo-city")]
    if part == "mlp":
        made["mlp"] = [_bars(r, "mlp", ("latency_mean_s", "packet_loss", "migrations_per_vehicle_tick"), out), _curves(
            r, [("mappo-paper-city", "MAPPO (paper actor)"), *[(n, f"DM-MAPPO ({n})") for n in dm]],
            [("val_reward", "validation reward (argmax)"), ("val_sample_reward", "validation reward (sampled)"),
             ("val_migrations_per_vehicle_tick", "validation migrations / vehicle-tick"), ("entropy", "entropy")],
            out, "mlp_curves",
        )]  # fmt: skip
    algos = ["DM-MAPPO", "MASAC", "least-loaded", "greedy", "random"]
    if part == "fig7":
        made["fig7"] = [
            _sweep_lines(r, "fig7", [(t, kpi, [(v, f"{{}} @ {v:g} MB") for v in b.fig7_sizes_mb], "migration size (MB)")
                                     for t, kpi in (("size", "reward_eq22"), ("size", "latency_mean_s"),
                                                    ("size", "packet_loss"))], algos, out, "fig7_migration"),
            _sweep_lines(r, "fig7", [(t, kpi, [(v, f"{{}} @ {v:g} MB/s") for v in b.fig7_rates_mbps], "data (MB/s)")
                                     for t, kpi in (("data", "latency_mean_s"), ("data", "packet_loss"),
                                                    ("data", "load_variance_mb2"))], algos, out, "fig7_data"),
        ]  # fmt: skip
    if part == "fig8":
        made["fig8"] = [_bars(r, "fig8", ("latency_mean_s", "packet_loss", "reward_eq22"), out)]
    if part == "fig9":
        made["fig9"] = [_bars(r, "fig9", ("latency_mean_s", "packet_loss", "load_variance_mb2", "reward_eq22"), out)]
    if part == "fig10":
        made["fig10"] = [_bars(r, "fig10", A_KPIS[:4], out)]
    if part == "hamburg" and "hamburg" in plan.figures:
        made["hamburg"] = [_bars(r, "hamburg", A_KPIS[:3], out)]
    if part == "b-main":
        made["b-main"] = [_bars(r, "b-main", B_KPIS, out)]
    sweeps = [n for n in plan.needs.get("b-fig2", ())]
    if part == "b-fig2":
        made["b-fig2"] = [
            _bars(r, "b-fig2", ("offload_cost_mean", "task_success_rate"), out),
            _curves(r, [(n, n.removeprefix("sweep-af-marl-")) for n in sweeps], [("cost", "training cost")], out,
                    "b-fig2_training", x="episode"),
        ]  # fmt: skip
    methods = ["AF-MARL", "AFL-MADDPG", "SFL-PPO", "DDQN", "non-DRL", "local-only", "oracle"]
    if part == "b-fig3":
        made["b-fig3"] = [_sweep_lines(r, "b-fig3", [
            ("task size", "offload_cost_mean", [(v, f"{{}} @ task {v:g} MB") for v in b.fig3_task_mb], "task (MB)"),
            ("RSU CPU", "offload_cost_mean", [(v, f"{{}} @ RSU {v:g} GHz") for v in b.fig3_rsu_ghz], "RSU CPU (GHz)"),
            ("traffic", "offload_cost_mean", [(v, f"{{}} @ traffic x{v:g}") for v in b.fig3_traffic], "demand scale"),
            ("traffic", "task_success_rate", [(v, f"{{}} @ traffic x{v:g}") for v in b.fig3_traffic], "demand scale"),
        ], methods, out, "b-fig3")]  # fmt: skip
    main = plan.needs.get("b-curves", ())
    if part == "b-curves":
        made["b-curves"] = [
            _curves(r, [(n, n) for n in main if n.startswith("af-marl")],
                    [("cvae_loss", "CVAE loss"), ("adfl_loss", "AdFL loss"), ("critic_loss", "critic loss"),
                     ("actor_loss", "actor loss")], out, "b-fig4_losses", x="episode"),
            _curves(r, [(n, n) for n in main],
                    [("cost", "training cost"), ("success", "task success"), ("delay_s", "delay (s)"),
                     ("energy_j", "energy (J)")], out, "b-fig5a_fig6_training", x="episode"),
        ]  # fmt: skip
    del made  # the files are what counts


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def arm_rows(r: Results) -> list[dict[str, Any]]:
    """Every measured arm's KPIs: mean and 95 % interval, seeds and episodes."""
    rows = []
    for name, figure in r.plan.figures.items():
        kpis = A_KPIS if figure.paper == "A" else B_KPIS
        for arm in figure.arms:
            if not r.has(name, arm.label):
                continue
            row: dict[str, Any] = {"part": name, "arm": arm.label, "condition": arm.condition,
                                   "policies": " ".join(f"{m}+{o}" for m, o in arm.runs())}  # fmt: skip
            for kpi in kpis:
                try:
                    m = r.arm(name, arm.label, kpi)
                except Missing:  # a z-scored KPI without its reference arm
                    row[kpi] = row[f"{kpi}_low"] = row[f"{kpi}_high"] = math.nan
                    continue
                e = stats.mean_ci(m)
                row["seeds"], row["episodes"] = m.shape
                row[kpi], row[f"{kpi}_low"], row[f"{kpi}_high"] = e.value, e.low, e.high
            rows.append(row)
    return rows


def _fmt_arm(row: dict[str, Any], kpi: str) -> str:
    k = KPIS[kpi]
    e = stats.Estimate(row[kpi], row[f"{kpi}_low"], row[f"{kpi}_high"])
    return e.fmt(k.digits, k.scale, k.unit)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    tmp = path.with_name(f".{path.name}.partial")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields or ["empty"])
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    tmp.replace(path)


# --------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------


def _link(report: Report, target: str | Path) -> str:
    return os.path.relpath(REPO_ROOT / target, report.out)


def write_report(
    report: Report, console: Console | None = None, final: bool = False, parts: set[str] | None = None
) -> Path:
    """(Re)write every document of the report from what is stored, redrawing the plots of ``parts`` (all when
    None); returns ``index.html``."""
    out = report.out
    out.mkdir(parents=True, exist_ok=True)
    r = Results(report)
    claims = all_claims(report.plan)
    verdicts = [(c, c.judge(r)) for c in claims]
    for c, v in verdicts:
        if v.verdict == NOT_COMPARABLE and v.reason.startswith("not measured") and c.part in report.failures:
            v.reason = f"not measured: {c.part} failed: {report.failures[c.part]}"
    images = plots(r, out, parts)
    arms = arm_rows(r)
    _write_csv(out / "claims.csv", [
        {"id": c.id, "paper": c.paper, "part": c.part, "figure": c.figure, "claim": c.text, "paper_says": c.paper_says,
         "ours": v.ours, "comparison": v.comparison, "verdict": v.verdict, "reason": v.reason}
        for c, v in verdicts
    ])  # fmt: skip
    _write_csv(out / "arms.csv", arms)
    models = [
        {"name": m.name, "status": m.status, "algorithm": m.algorithm, "fingerprint": m.fingerprint,
         "folder": m.folder if not Path(m.folder).is_absolute() else _link(report, m.folder), "command": m.command,
         "note": m.note}
        for m in sorted(report.models.values(), key=lambda m: m.name)
    ]  # fmt: skip
    _write_csv(out / "models.csv", models)
    _write_text(out / "README.md", markdown(r, verdicts, images, arms))
    _write_text(out / "index.html", page(r, verdicts, images, arms))
    if console is not None and final:
        counts = Counter(v.verdict for _, v in verdicts)
        console.print(f"wrote {out}/index.html and README.md: " + ", ".join(f"{counts[k]} {k}" for k in VERDICTS))
    return out / "index.html"


def part_notes(r: Results, part: str) -> list[str]:
    """What a part's claims do not say by themselves, computed from what was measured."""
    notes: list[str] = []
    red = r.plan.reductions
    if part in red.days:
        figure = r.plan.figures.get(part)
        episodes = _episodes_per_day(r.report, {a.condition for a in figure.arms}) if figure else 0
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


def _parts(paper: str) -> tuple[str, ...]:
    return PAPER_A_FIGURES if paper == "A" else PAPER_B_FIGURES


def _about(report: Report) -> list[str]:
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
            episodes = _episodes_per_day(report, conds)
            what.append(f"{part} on day{'s' if len(days) > 1 else ''} {', '.join(map(str, days))} only"
                        + (f" ({episodes} episodes)" if episodes else ""))  # fmt: skip
        if red.as_committed:
            parts = ", ".join(p for p in PAPER_A_FIGURES + PAPER_B_FIGURES if p in red.as_committed)
            what.append(f"the models of {parts} as committed, not trained to the budget (missing seeds left out; "
                        "the Models table says what each was trained on)")  # fmt: skip
        lines.append(f"**Less than the {b.name} budget** (`{' '.join(red.options())}`): " + "; ".join(what) + ".")
    if b.name == "smoke":
        lines.append("**Smoke budget**: short recordings and tiny trainings that test the pipeline; its verdicts say "
                     "nothing about the papers.")  # fmt: skip
    return lines


def _episodes_per_day(report: Report, conditions: set[str]) -> int:
    """Episodes over the days of these conditions (from the stored runs; 0 if none are stored)."""
    counts = {}
    for (cname, _m, _o, path), key in report.run_keys.items():
        rows = report.runs.get(key) if cname in conditions else None
        if rows:
            counts[(cname, path)] = len(rows)
    by_condition: dict[str, int] = {}
    for (cname, _path), n in counts.items():
        by_condition[cname] = by_condition.get(cname, 0) + n
    return max(by_condition.values(), default=0)


def _regenerate(report: Report) -> str:
    out = report.out
    shown = os.path.relpath(out, REPO_ROOT) if out.is_relative_to(REPO_ROOT) else str(out)
    extra = " ".join(shlex.quote(w) for w in report.plan.reductions.options())
    return f"twin-service report --budget {report.plan.budget.name}{' ' + extra if extra else ''} --out {shown}"


def _summary_counts(verdicts: list[tuple[Claim, Verdict]], paper: str) -> str:
    counts = Counter(v.verdict for c, v in verdicts if c.paper == paper)
    return ", ".join(f"{counts[k]} {k}" for k in VERDICTS)


def markdown(r: Results, verdicts: list[tuple[Claim, Verdict]], images: dict[str, list[Path]],
             arms: list[dict[str, Any]]) -> str:  # fmt: skip
    report = r.report
    plan = report.plan
    md = ["# Both papers, claim by claim: ours beside theirs", "",
          f"Regenerated (reusing every stored run that still matches) by `{_regenerate(report)}`; last written "
          f"on {time.strftime('%Y-%m-%d %H:%M')} by `{report.command or 'twin-service report'}`. The same report "
          "as [index.html](index.html).", ""]  # fmt: skip
    md += [*_about(report), ""]
    md += [f"- Paper A (DM-MAPPO, twin migration): {_summary_counts(verdicts, 'A')}",
           f"- Paper B (AF-MARL, federated offloading): {_summary_counts(verdicts, 'B')}", ""]  # fmt: skip
    if report.failures:
        md += ["Failed or skipped parts:", ""] + [f"- `{p}`: {m}" for p, m in report.failures.items()] + [""]
    for paper, title in (("A", "Paper A: twin migration (DM-MAPPO)"), ("B", "Paper B: federated offloading (AF-MARL)")):
        md += [f"## {title}", ""]
        for part in _parts(paper):
            if part not in PART_TITLES or (part in ("hamburg",) and part not in plan.figures):
                continue
            md += [f"### {PART_TITLES[part]}", ""]
            rows = [(c, v) for c, v in verdicts if c.part == part]
            if rows:
                md += ["| claim | paper | paper says | ours (95 % CI) | comparison | verdict | reason |",
                       "|---|---|---|---|---|---|---|"]  # fmt: skip
                for c, v in rows:
                    cells = [f"**{c.id}** {c.text}", c.figure, c.paper_says, v.ours, v.comparison,
                             f"**{v.verdict}**", v.reason]  # fmt: skip
                    md.append("| " + " | ".join(x.replace("|", "/").replace("\n", " ") for x in cells) + " |")
                md.append("")
            md += [*(f"{n}\n" for n in part_notes(r, part))]
            md += _arms_md(part, arms)
            md += [f"![{p.stem}]({p.name})" for p in images.get(part, [])] + [""]
            md += _commands_md(report, part)
    md += ["## Models", "", "| model | status | command | manifest |", "|---|---|---|---|"]
    for m in sorted(report.models.values(), key=lambda m: m.name):
        manifest = f"[manifest]({_link(report, Path(m.folder) / 'manifest.json')})" if m.status != "missing" else ""
        md.append(f"| {m.name} | {m.status}: {m.note} | `{m.command}` | {manifest} |")
    md += ["", "Files: `claims.csv` (this table), `arms.csv` (every arm's KPIs), `models.csv`, `runs.csv` (each "
           "episode's sums, from which every KPI follows; keyed by recording hash and model fingerprint, so a "
           "later report reuses them), `predictor_blocks.csv` (Table II per block).", ""]  # fmt: skip
    return "\n".join(md) + "\n"


def _arms_md(part: str, arms: list[dict[str, Any]]) -> list[str]:
    rows = [a for a in arms if a["part"] == part]
    if not rows:
        return []
    kpis = A_KPIS[:4] if part in PAPER_A_FIGURES else B_KPIS
    out = ["| arm | seeds × episodes | " + " | ".join(KPIS[k].label for k in kpis) + " |",
           "|---|---|" + "---|" * len(kpis)]  # fmt: skip
    out += [f"| {a['arm']} | {a['seeds']} × {a['episodes']} | " + " | ".join(_fmt_arm(a, k) for k in kpis) + " |"
            for a in rows]  # fmt: skip
    return [*out, ""]


def _commands(report: Report, part: str) -> list[str]:
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


def _commands_md(report: Report, part: str) -> list[str]:
    cmds = _commands(report, part)
    if not cmds:
        return []
    return ["<details><summary>The equivalent evaluate commands</summary>", "", "```bash", *cmds, "```", "",
            "</details>", ""]  # fmt: skip


CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem;color:#1f2328}
table{border-collapse:collapse;width:100%;margin:.6rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #d0d7de;padding:.3rem .45rem;vertical-align:top;text-align:left}
th{background:#f6f8fa} .verdict{font-weight:600;white-space:nowrap}
img{max-width:100%;border:1px solid #d0d7de;margin:.3rem 0} code,pre{font-size:.78rem}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;white-space:pre-wrap} nav a{margin-right:.8rem}
.counts span{margin-right:1rem} section{margin-bottom:2rem}
"""


def page(r: Results, verdicts: list[tuple[Claim, Verdict]], images: dict[str, list[Path]],
         arms: list[dict[str, Any]]) -> str:  # fmt: skip
    report = r.report
    plan = report.plan
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           "<title>twin-service: both papers, claim by claim</title>", f"<style>{CSS}</style></head><body>",
           "<h1>Both papers, claim by claim: ours beside theirs</h1>",
           f"<p>Regenerated (reusing every stored run that still matches) by <code>{e(_regenerate(report))}</code>; "
           f"last written on {e(time.strftime('%Y-%m-%d %H:%M'))} ({e(platform.node() or 'this machine')}) by "
           f"<code>{e(report.command or 'twin-service report')}</code>. The same report in "
           "<a href='README.md'>README.md</a>, the tables in <a href='claims.csv'>claims.csv</a> and "
           "<a href='arms.csv'>arms.csv</a>.</p>"]  # fmt: skip
    for line in _about(report):
        out.append("<p>" + _md_inline(line) + "</p>")
    nav = ["<nav>", "<a href='#paper-a'>Paper A</a>"]
    nav += [
        f"<a href='#{p}'>{e(p)}</a>"
        for p in PAPER_A_FIGURES
        if p in PART_TITLES and (p != "hamburg" or p in plan.figures)
    ]  # noqa: E501
    nav += ["<a href='#paper-b'>Paper B</a>"] + [f"<a href='#{p}'>{e(p)}</a>" for p in PAPER_B_FIGURES]
    nav += ["<a href='#models'>Models</a>", "</nav>"]
    out += nav
    out.append("<div class='counts'>")
    for paper in ("A", "B"):
        counts = Counter(v.verdict for c, v in verdicts if c.paper == paper)
        out.append(f"<p>Paper {paper}: " + "".join(
            f"<span style='color:{VERDICT_COLOUR[k]}'>{counts[k]} {k}</span>" for k in VERDICTS) + "</p>")  # fmt: skip
    out.append("</div>")
    if report.failures:
        out.append("<p>Failed or skipped parts:</p><ul>")
        out += [f"<li><code>{e(p)}</code>: {e(m)}</li>" for p, m in report.failures.items()]
        out.append("</ul>")
    for paper, pid, title in (("A", "paper-a", "Paper A: twin migration (DM-MAPPO)"),
                              ("B", "paper-b", "Paper B: federated offloading (AF-MARL)")):  # fmt: skip
        out.append(f"<h2 id='{pid}'>{e(title)}</h2>")
        for part in _parts(paper):
            if part not in PART_TITLES or (part == "hamburg" and part not in plan.figures):
                continue
            out.append(f"<section id='{part}' class='part'><h3>{e(PART_TITLES[part])}</h3>")
            rows = [(c, v) for c, v in verdicts if c.part == part]
            if rows:
                out.append("<table class='claims'><thead><tr><th>claim</th><th>paper</th><th>paper says</th>"
                           "<th>ours (95 % CI)</th><th>comparison</th><th>verdict</th><th>reason</th></tr></thead>"
                           "<tbody>")  # fmt: skip
                for c, v in rows:
                    out.append(
                        f"<tr class='claim' id='claim-{c.id}' data-verdict='{e(v.verdict)}'>"
                        f"<td><b>{e(c.id)}</b> {e(c.text)}</td><td>{e(c.figure)}</td><td>{e(c.paper_says)}</td>"
                        f"<td>{e(v.ours)}</td><td>{e(v.comparison)}</td>"
                        f"<td class='verdict' style='color:{VERDICT_COLOUR[v.verdict]}'>{e(v.verdict)}</td>"
                        f"<td>{e(v.reason)}</td></tr>"
                    )  # fmt: skip
                out.append("</tbody></table>")
            for note in part_notes(r, part):
                out.append(f"<p class='note'>{e(note)}</p>")
            part_arms = [a for a in arms if a["part"] == part]
            if part_arms:
                kpis = A_KPIS[:4] if part in PAPER_A_FIGURES else B_KPIS
                head = "".join(f"<th>{e(KPIS[k].label)}</th>" for k in kpis)
                out.append(f"<table class='arms'><thead><tr><th>arm</th><th>seeds × episodes</th>{head}</tr></thead>")
                out.append("<tbody>")
                for a in part_arms:
                    out.append(f"<tr><td>{e(a['arm'])}</td><td>{a['seeds']} × {a['episodes']}</td>"
                               + "".join(f"<td>{e(_fmt_arm(a, k))}</td>" for k in kpis) + "</tr>")  # fmt: skip
                out.append("</tbody></table>")
            for p in images.get(part, []):
                out.append(f"<img src='{e(p.name)}' alt='{e(p.stem)}'>")
            cmds = _commands(report, part)
            if cmds:
                out.append("<details><summary>The equivalent evaluate commands</summary><pre>"
                           + e("\n".join(cmds)) + "</pre></details>")  # fmt: skip
            out.append("</section>")
    out.append("<h2 id='models'>Models</h2><table><thead><tr><th>model</th><th>status</th><th>command</th>"
               "<th>manifest</th></tr></thead><tbody>")  # fmt: skip
    for m in sorted(report.models.values(), key=lambda m: m.name):
        link = _link(report, Path(m.folder) / "manifest.json")
        manifest = f"<a href='{e(link)}'>manifest.json</a>" if m.status != "missing" else ""
        out.append(f"<tr><td>{e(m.name)}</td><td>{e(m.status)}: {e(m.note)}</td><td><code>{e(m.command)}</code></td>"
                   f"<td>{manifest}</td></tr>")  # fmt: skip
    out.append("</tbody></table></body></html>")
    return "\n".join(out) + "\n"


def _md_inline(text: str) -> str:
    """The little markdown _about uses (**bold**) as HTML."""
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
