#!/usr/bin/env python
"""The horizon study: how far ahead forecasting pays, from the Table II folders of several horizons.

Reads ``results/predictor/city-h*/metrics.json`` (written by ``twin-service predictor evaluate``, e.g. through
``scripts/predictor_study.sh``) and writes ``results/predictor/horizons.md`` (WAPE, RMSE and R^2 of every
model at every horizon, mean ± standard deviation across seeds) and ``horizons.png``.

    .venv/bin/python scripts/predictor_horizons.py [--results results/predictor] [--prefix city-h]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results/predictor"))
    parser.add_argument("--prefix", default="city-h")
    args = parser.parse_args()
    studies = {}
    for folder in args.results.glob(f"{args.prefix}*"):
        match = re.fullmatch(rf"{re.escape(args.prefix)}(\d+)", folder.name)
        if match and (folder / "metrics.json").is_file():
            about = json.loads((folder / "evaluation.json").read_text())
            studies[int(match.group(1))] = (json.loads((folder / "metrics.json").read_text()), about)
    if not studies:
        raise SystemExit(f"error: no {args.prefix}N/metrics.json under {args.results}")
    horizons = sorted(studies)
    models = list(studies[horizons[0]][0])

    def cell(h: int, model: str, key: str) -> str:
        figures = studies[h][0].get(model)
        if figures is None:
            return "-"
        value, std = figures[key], figures.get("std", {}).get(key)
        if key == "wape":
            return f"{100 * value:.2f} %" + (f" ± {100 * std:.2f}" if std is not None else "")
        if key == "rmse":
            return f"{value / 8e6:.2f}" + (f" ± {std / 8e6:.2f}" if std is not None else "")
        return f"{value:.4f}" + (f" ± {std:.4f}" if std is not None else "")

    lines = []
    for key, title in (("wape", "WAPE"), ("rmse", "RMSE (MB)"), ("r2", "R²")):
        seconds = [f"{studies[h][1]['horizon_s']:g} s" for h in horizons]
        lines += [f"### {title}", "", "| model | " + " | ".join(seconds) + " |", "|---|" + "---:|" * len(horizons)]
        lines += [f"| {m} | " + " | ".join(cell(h, m, key) for h in horizons) + " |" for m in models]
        lines.append("")
    (args.results / "horizons.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [studies[h][1]["horizon_s"] for h in horizons]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, key, label in zip(axes, ("wape", "rmse", "r2"), ("WAPE (%)", "RMSE (MB)", "R²"), strict=True):
        scale = 100 if key == "wape" else 1 / 8e6 if key == "rmse" else 1
        for m in models:
            ys = [studies[h][0][m][key] * scale for h in horizons]
            errs = [studies[h][0][m].get("std", {}).get(key, 0.0) * scale for h in horizons]
            ax.errorbar(seconds, ys, yerr=errs, marker="o", capsize=3, label=m)
        ax.set_xlabel("horizon (s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].axhline(0.925, color="grey", ls="--", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.suptitle("held-out city days 8-9: forecast error against horizon (mean ± sd over seeds)")
    fig.tight_layout()
    fig.savefig(args.results / "horizons.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
