"""The report's documents: ``index.html`` (self-contained; plots beside it), ``README.md`` (the same in markdown),
``claims.csv`` (one row per claim), ``arms.csv`` (every arm's KPIs with intervals), ``models.csv``, and the plots.

Every claim is judged here once; :mod:`~twin_service.report.markdown` and :mod:`~twin_service.report.html_page`
write the two documents from the same verdicts, arms and plots (:mod:`~twin_service.report.plots`).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin_service.report import stats
from twin_service.report.claims import all_claims
from twin_service.report.html_page import page
from twin_service.report.markdown import markdown
from twin_service.report.plots import plots
from twin_service.report.results import Missing, Results
from twin_service.report.sections import A_KPIS, B_KPIS, link
from twin_service.report.verdicts import NOT_COMPARABLE, VERDICTS

if TYPE_CHECKING:
    from rich.console import Console

    from twin_service.report.state import Report


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
         "folder": m.folder if not Path(m.folder).is_absolute() else link(report, m.folder), "command": m.command,
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
