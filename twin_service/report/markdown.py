"""``README.md``: every claim of both papers with ours beside theirs, each part's arms, plots and commands."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin_service.report.plan import PAPER_A_FIGURES
from twin_service.report.results import Results
from twin_service.report.sections import (
    A_KPIS,
    B_KPIS,
    PAPERS,
    PART_TITLES,
    about,
    commands,
    fmt_arm,
    link,
    part_notes,
    regenerate_command,
    shown_parts,
    summary_counts,
)
from twin_service.report.verdicts import KPIS, Claim, Verdict

if TYPE_CHECKING:
    from twin_service.report.state import Report


def markdown(r: Results, verdicts: list[tuple[Claim, Verdict]], images: dict[str, list[Path]],
             arms: list[dict[str, Any]]) -> str:  # fmt: skip
    """``README.md``: the same as ``index.html`` in markdown."""
    report = r.report
    md = ["# Both papers, claim by claim: ours beside theirs", "",
          f"Regenerated (reusing every stored run that still matches) by `{regenerate_command(report)}`; last written "
          f"on {time.strftime('%Y-%m-%d %H:%M')} by `{report.command or 'twin-service report'}`. The same report "
          "as [index.html](index.html).", ""]  # fmt: skip
    md += [*about(report), ""]
    md += [f"- Paper A (DM-MAPPO, twin migration): {summary_counts(verdicts, 'A')}",
           f"- Paper B (AF-MARL, federated offloading): {summary_counts(verdicts, 'B')}", ""]  # fmt: skip
    if report.failures:
        md += ["Failed parts:", ""] + [f"- `{p}`: {m}" for p, m in report.failures.items()] + [""]
    for paper, _, title in PAPERS:
        md += [f"## {title}", ""]
        for part in shown_parts(report.plan, paper):
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
        manifest = f"[manifest]({link(report, Path(m.folder) / 'manifest.json')})" if m.status != "missing" else ""
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
    out += [f"| {a['arm']} | {a['seeds']} × {a['episodes']} | " + " | ".join(fmt_arm(a, k) for k in kpis) + " |"
            for a in rows]  # fmt: skip
    return [*out, ""]


def _commands_md(report: Report, part: str) -> list[str]:
    cmds = commands(report, part)
    if not cmds:
        return []
    return ["<details><summary>The equivalent evaluate commands</summary>", "", "```bash", *cmds, "```", "",
            "</details>", ""]  # fmt: skip
