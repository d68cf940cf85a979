"""The report's plots (``<name>.png`` beside the documents), drawn from the measured arms and training curves.

Each plot shows means with 95 % intervals (over episodes and seeds, :func:`twin_service.report.stats.mean_ci`);
a plot of which nothing was measured is not written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from twin_service.report import stats
from twin_service.report.plan import NETWORK_LABEL
from twin_service.report.predictor import NAIVE
from twin_service.report.results import Missing, Results
from twin_service.report.sections import A_KPIS, B_KPIS, PART_TITLES
from twin_service.report.verdicts import KPIS


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig_: Any, out: Path, name: str) -> Path:
    """Lays out, writes ``out/<name>.png`` and closes the figure."""
    fig_.tight_layout()
    path = out / f"{name}.png"
    fig_.savefig(path, dpi=90)
    plt.close(fig_)
    return path


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
    return _save(plt, fig_, out, fig)


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
    return _save(plt, fig_, out, name)


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
    return _save(plt, fig_, out, name)


def _table2_plot(r: Results, out: Path) -> Path | None:
    plt = _plt()
    nets = (*NETWORK_LABEL, *NAIVE)
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
    return _save(plt, fig_, out, "table2")


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
    """Writes the plots of one part (:data:`PLOT_FILES`); a plot with nothing measured is not written."""
    plan = r.plan
    b = plan.budget
    if part == "table2":
        _table2_plot(r, out)
    elif part == "fig6":
        _bars(r, "fig6", A_KPIS[:4], out)
    elif part == "mlp":
        dm = [n for n in plan.needs.get("fig6", ()) if n.startswith("dm-mappo-city")]
        _bars(r, "mlp", ("latency_mean_s", "packet_loss", "migrations_per_vehicle_tick"), out)
        _curves(
            r, [("mappo-paper-city", "MAPPO (paper actor)"), *[(n, f"DM-MAPPO ({n})") for n in dm]],
            [("val_reward", "validation reward (argmax)"), ("val_sample_reward", "validation reward (sampled)"),
             ("val_migrations_per_vehicle_tick", "validation migrations / vehicle-tick"), ("entropy", "entropy")],
            out, "mlp_curves",
        )  # fmt: skip
    elif part == "fig7":
        algos = ["DM-MAPPO", "MASAC", "least-loaded", "greedy", "random"]
        _sweep_lines(r, "fig7", [(t, kpi, [(v, f"{{}} @ {v:g} MB") for v in b.fig7_sizes_mb], "migration size (MB)")
                                 for t, kpi in (("size", "reward_eq22"), ("size", "latency_mean_s"),
                                                ("size", "packet_loss"))], algos, out, "fig7_migration")  # fmt: skip
        _sweep_lines(r, "fig7", [(t, kpi, [(v, f"{{}} @ {v:g} MB/s") for v in b.fig7_rates_mbps], "data (MB/s)")
                                 for t, kpi in (("data", "latency_mean_s"), ("data", "packet_loss"),
                                                ("data", "load_variance_mb2"))], algos, out, "fig7_data")  # fmt: skip
    elif part == "fig8":
        _bars(r, "fig8", ("latency_mean_s", "packet_loss", "reward_eq22"), out)
    elif part == "fig9":
        _bars(r, "fig9", ("latency_mean_s", "packet_loss", "load_variance_mb2", "reward_eq22"), out)
    elif part == "fig10":
        _bars(r, "fig10", A_KPIS[:4], out)
    elif part == "hamburg" and "hamburg" in plan.figures:
        _bars(r, "hamburg", A_KPIS[:3], out)
    elif part == "b-main":
        _bars(r, "b-main", B_KPIS, out)
    elif part == "b-fig2":
        sweeps = plan.needs.get("b-fig2", ())
        _bars(r, "b-fig2", ("offload_cost_mean", "task_success_rate"), out)
        _curves(r, [(n, n.removeprefix("sweep-af-marl-")) for n in sweeps], [("cost", "training cost")], out,
                "b-fig2_training", x="episode")  # fmt: skip
    elif part == "b-fig3":
        methods = ["AF-MARL", "AFL-MADDPG", "SFL-PPO", "DDQN", "non-DRL", "local-only", "oracle"]
        _sweep_lines(r, "b-fig3", [
            ("task size", "offload_cost_mean", [(v, f"{{}} @ task {v:g} MB") for v in b.fig3_task_mb], "task (MB)"),
            ("RSU CPU", "offload_cost_mean", [(v, f"{{}} @ RSU {v:g} GHz") for v in b.fig3_rsu_ghz], "RSU CPU (GHz)"),
            ("traffic", "offload_cost_mean", [(v, f"{{}} @ traffic x{v:g}") for v in b.fig3_traffic], "demand scale"),
            ("traffic", "task_success_rate", [(v, f"{{}} @ traffic x{v:g}") for v in b.fig3_traffic], "demand scale"),
        ], methods, out, "b-fig3")  # fmt: skip
    elif part == "b-curves":
        main = plan.needs.get("b-curves", ())
        _curves(r, [(n, n) for n in main if n.startswith("af-marl")],
                [("cvae_loss", "CVAE loss"), ("adfl_loss", "AdFL loss"), ("critic_loss", "critic loss"),
                 ("actor_loss", "actor loss")], out, "b-fig4_losses", x="episode")  # fmt: skip
        _curves(r, [(n, n) for n in main],
                [("cost", "training cost"), ("success", "task success"), ("delay_s", "delay (s)"),
                 ("energy_j", "energy (J)")], out, "b-fig5a_fig6_training", x="episode")  # fmt: skip
