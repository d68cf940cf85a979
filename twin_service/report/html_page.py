"""``index.html``: every claim of both papers with ours beside theirs, a verdict per claim, each part's arms, plots
and commands, and the models (self-contained; the plots beside it)."""

from __future__ import annotations

import html
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

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
)
from twin_service.report.verdicts import KPIS, VERDICTS, Claim, Verdict

VERDICT_COLOUR = {
    "reproduced": "#1a7f37",
    "not reproduced": "#9a6700",
    "opposite": "#cf222e",
    "not comparable": "#57606a",
}
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
    """``index.html``: self-contained but for the plots beside it."""
    report = r.report
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           "<title>twin-service: both papers, claim by claim</title>", f"<style>{CSS}</style></head><body>",
           "<h1>Both papers, claim by claim: ours beside theirs</h1>",
           "<p>Regenerated (reusing every stored run that still matches) by "
           f"<code>{e(regenerate_command(report))}</code>; "
           f"last written on {e(time.strftime('%Y-%m-%d %H:%M'))} ({e(platform.node() or 'this machine')}) by "
           f"<code>{e(report.command or 'twin-service report')}</code>. The same report in "
           "<a href='README.md'>README.md</a>, the tables in <a href='claims.csv'>claims.csv</a> and "
           "<a href='arms.csv'>arms.csv</a>.</p>"]  # fmt: skip
    for line in about(report):
        out.append("<p>" + _md_inline(line) + "</p>")
    out.append("<nav>")
    for paper, pid, _ in PAPERS:
        out.append(f"<a href='#{pid}'>Paper {paper}</a>")
        out += [f"<a href='#{p}'>{e(p)}</a>" for p in shown_parts(report.plan, paper)]
    out += ["<a href='#models'>Models</a>", "</nav>"]
    out.append("<div class='counts'>")
    for paper in ("A", "B"):
        counts = Counter(v.verdict for c, v in verdicts if c.paper == paper)
        out.append(f"<p>Paper {paper}: " + "".join(
            f"<span style='color:{VERDICT_COLOUR[k]}'>{counts[k]} {k}</span>" for k in VERDICTS) + "</p>")  # fmt: skip
    out.append("</div>")
    if report.failures:
        out.append("<p>Failed parts:</p><ul>")
        out += [f"<li><code>{e(p)}</code>: {e(m)}</li>" for p, m in report.failures.items()]
        out.append("</ul>")
    for paper, pid, title in PAPERS:
        out.append(f"<h2 id='{pid}'>{e(title)}</h2>")
        for part in shown_parts(report.plan, paper):
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
                out.append(f"<p class='note'>{_md_inline(note)}</p>")
            part_arms = [a for a in arms if a["part"] == part]
            if part_arms:
                kpis = A_KPIS[:4] if part in PAPER_A_FIGURES else B_KPIS
                head = "".join(f"<th>{e(KPIS[k].label)}</th>" for k in kpis)
                out.append(f"<table class='arms'><thead><tr><th>arm</th><th>seeds × episodes</th>{head}</tr></thead>")
                out.append("<tbody>")
                for a in part_arms:
                    out.append(f"<tr><td>{e(a['arm'])}</td><td>{a['seeds']} × {a['episodes']}</td>"
                               + "".join(f"<td>{e(fmt_arm(a, k))}</td>" for k in kpis) + "</tr>")  # fmt: skip
                out.append("</tbody></table>")
            for p in images.get(part, []):
                out.append(f"<img src='{e(p.name)}' alt='{e(p.stem)}'>")
            cmds = commands(report, part)
            if cmds:
                out.append("<details><summary>The equivalent evaluate commands</summary><pre>"
                           + e("\n".join(cmds)) + "</pre></details>")  # fmt: skip
            out.append("</section>")
    out.append("<h2 id='models'>Models</h2><table><thead><tr><th>model</th><th>status</th><th>command</th>"
               "<th>manifest</th></tr></thead><tbody>")  # fmt: skip
    for m in sorted(report.models.values(), key=lambda m: m.name):
        link_ = link(report, Path(m.folder) / "manifest.json")
        manifest = f"<a href='{e(link_)}'>manifest.json</a>" if m.status != "missing" else ""
        out.append(f"<tr><td>{e(m.name)}</td><td>{e(m.status)}: {e(m.note)}</td><td><code>{e(m.command)}</code></td>"
                   f"<td>{manifest}</td></tr>")  # fmt: skip
    out.append("</tbody></table></body></html>")
    return "\n".join(out) + "\n"


def _md_inline(text: str) -> str:
    """The little markdown of :func:`~twin_service.report.sections.about` and the part notes (``**bold**`` and
    ```code```) as HTML."""
    out = []
    for i, chunk in enumerate(text.split("`")):
        if i % 2:
            out.append(f"<code>{html.escape(chunk)}</code>")
        else:
            parts = html.escape(chunk).split("**")
            out.append("".join(f"<b>{p}</b>" if j % 2 else p for j, p in enumerate(parts)))
    return "".join(out)
