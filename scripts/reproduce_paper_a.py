#!/usr/bin/env python
"""Paper A's comparisons on our city, from recordings: trains what they need, evaluates, writes tables and plots.

One command regenerates every table and plot of ``results/paper_a/`` (and their report, ``README.md``):

* Fig. 6  MAPPO and MASAC, with and without the workload predictor: test reward, latency, packet loss, load
          variance, beside the heuristics (least-loaded, sticky-nearest, greedy, random);
* Fig. 7  migration size 40-120 MB and generated data 1.0-3.0 MB/s (the city-trained policies, not retrained);
* Fig. 8  without UAVs, without the satellite, and city against rural;
* Fig. 9  every learned algorithm trained and run with and without the dynamic mask;
* Fig. 10 UAVs joining and leaving mid-episode (5 appear, 6 leave);
* beyond the paper: the city-trained per-server policy on the imported Hamburg test field, no retraining.

Days: 1-6 train, 7 validates, 8 and 9 are held out (``./scripts/record_days.sh``). Every model is trained by
``twin-service train ...`` (the exact command lands in its manifest) into ``models/``; every evaluation is
``twin-service evaluate ...`` into ``results/paper_a/<figure>/``. The commands are printed as they run.

    .venv/bin/python scripts/reproduce_paper_a.py [--skip-training] [--only fig6,fig9] [--main-ticks 12288]
        [--seeds 1,2,3] [--fig6-span 1200,2400] [--span 1200,2400] [--fig7-sizes 40,120] [--fig7-rates 1.0,3.0]

Figures 7-10 run over ``--span`` (the busy part of each held-out day); each model is trained the first time a
requested figure needs it. ``--only`` redoes some figures and keeps the others in ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "twin_service.cli"]
DATA = ROOT / "data" / "recordings"
OUT = ROOT / "results" / "paper_a"
TRAIN_DAYS = [1, 2, 3, 4, 5, 6]
VAL_DAY = 7
TEST_DAYS = [8, 9]
HEURISTICS = ["least-loaded", "sticky-nearest", "greedy", "random"]
PAPER = {
    "fig6": "DM-MAPPO: packet loss 4.494 %; prediction raises test reward 35.99 % (MAPPO) and 17.08 % (MASAC); "
    "load variance 24.38 against 24.53; 8.42 ms per vehicle per transmission",
    "fig7": "DM-MAPPO lowest latency and loss across migration sizes 40-120 MB and data 1.0-3.0 MB/s",
    "fig8": "without UAVs: reward -6.90 %, latency +37.88 %, loss +29.78 %",
    "fig9": "the mask: latency -72.05 %, loss -44.60 %, MAPPO reward +73.41 %",
    "fig10": "DM-MAPPO stays best with UAVs and vehicles joining and leaving",
    "headline": "DM-MAPPO cuts migration latency 20.82 % and packet loss 75.07 % against traditional DRL",
}


def day(scenario: str, n: int) -> str:
    """A recorded day, relative to the repository (the commands, and so the manifests, stay portable)."""
    return str((DATA / f"{scenario}-s{n}.npz").relative_to(ROOT))


def run(cmd: list[str]) -> None:
    shown = " ".join(shlex.quote(c) for c in ["twin-service", *cmd])
    print(f"\n$ {shown}", flush=True)
    started = time.monotonic()
    subprocess.run([*CLI, *cmd], cwd=ROOT, check=True)
    print(f"  ({time.monotonic() - started:.0f} s)", flush=True)


def ensure_days(scenario: str, days: list[int]) -> None:
    missing = [n for n in days if not (ROOT / day(scenario, n)).is_file()]
    for n in missing:
        run(["record", "--scenario", scenario, "--seed", str(n), "--out", day(scenario, n)])


def train(name: str, algorithm: str, ticks: int, seed: int, extra: list[str], skip: bool) -> str:
    folder = ROOT / "models" / name
    if skip and (folder / "manifest.json").is_file():
        print(f"\n(reusing models/{name})")
        return name
    train_days = ",".join(day("city", n) for n in TRAIN_DAYS)
    cmd = ["train", algorithm, "--recordings", train_days, "--val-recordings", day("city", VAL_DAY),
           "--out", f"models/{name}", "--seed", str(seed), "--total-ticks", str(ticks), *extra]  # fmt: skip
    run(cmd)
    return name


def evaluate(out: str, policies: list[str], days: list[str], extra: list[str] | None = None) -> dict:
    target = (OUT / out).relative_to(ROOT)
    run(["evaluate", "--recordings", ",".join(days), "--migration-policy", ",".join(policies),
         "--offload-policy", "nearest-least-loaded", "--out", str(target), *(extra or [])])  # fmt: skip
    return json.loads((ROOT / target / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-training", action="store_true", help="reuse the models already in models/")
    parser.add_argument("--only", default="", help="comma-separated figures (fig6,fig7,fig8,fig9,fig10,hamburg)")
    parser.add_argument("--main-ticks", type=int, default=12288, help="training ticks of the main DM-MAPPO model")
    parser.add_argument("--ablation-ticks", type=int, default=6144, help="training ticks of the other models")
    parser.add_argument("--seeds", default="1,2,3", help="seeds of the main DM-MAPPO model (spread across seeds)")
    parser.add_argument("--span", default="1200,2400", help="busy span (s) figures 7-10 evaluate over")
    parser.add_argument("--fig6-span", default="", help="span (s) of Fig. 6, e.g. 1200,2400 (default: whole days)")
    parser.add_argument("--fig7-sizes", default="40,60,80,100,120", help="migration sizes (MB) of Fig. 7")
    parser.add_argument("--fig7-rates", default="1.0,1.5,2.0,2.5,3.0", help="generated data (MB/s) of Fig. 7")
    parser.add_argument("--predictor", default="", help="workload predictor model (default: the one in models/)")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    want = lambda fig: not only or fig in only  # noqa: E731
    skip = args.skip_training
    seeds = [int(s) for s in args.seeds.split(",")]
    span = ["--begin", args.span.split(",")[0], "--end", args.span.split(",")[1]]
    ensure_days("city", TRAIN_DAYS + [VAL_DAY] + TEST_DAYS)
    test = [day("city", n) for n in TEST_DAYS]
    predictor = args.predictor or next(
        (p.parent.name for p in sorted((ROOT / "models").glob("*/manifest.json"))
         if json.loads(p.read_text()).get("kind") == "predictor"), "",
    )  # fmt: skip
    ticks, small = args.main_ticks, args.ablation_ticks
    fig6_span = (
        ["--begin", *args.fig6_span.split(",")[:1], "--end", *args.fig6_span.split(",")[1:]] if args.fig6_span else []
    )

    # Each model is trained the first time a figure needs it (or reused with --skip-training).
    specs: dict[str, tuple[str, str, int, int, list[str]]] = {
        "MASAC": ("masac-city", "masac", small, 1, []),
        "MAPPO (paper actor)": ("mappo-paper-city", "dm-mappo", small, 1, ["--arch", "paper"]),
        "MAPPO (no mask)": ("mappo-nomask-city", "dm-mappo", small, 1, ["--no-mask"]),
        "MASAC (no mask)": ("masac-nomask-city", "masac", small, 1, ["--no-mask"]),
    }
    if predictor:
        specs["DM-MAPPO + prediction"] = ("dm-mappo-pred-city", "dm-mappo", small, 1, ["--predictor", predictor])
        specs["MASAC + prediction"] = ("masac-pred-city", "masac", small, 1, ["--predictor", predictor])
    main = [train("dm-mappo-city" if s == seeds[0] else f"dm-mappo-city-s{s}", "dm-mappo", ticks, s, [], skip)
            for s in seeds]  # fmt: skip
    learned: dict[str, str] = {"DM-MAPPO": main[0]}

    def need(label: str) -> str:
        if label not in learned:
            learned[label] = train(*specs[label], skip)
        return learned[label]

    report: dict[str, object] = {"learned": learned, "seeds": main, "paper": PAPER}
    if want("fig6"):
        fig6 = [need(k) for k in ("MASAC", "MAPPO (paper actor)", "DM-MAPPO + prediction", "MASAC + prediction")
                if k in specs]  # fmt: skip
        report["fig6"] = evaluate("fig6", [*main, *fig6, *HEURISTICS], test, fig6_span)
        save(report, only)
    if want("fig7"):
        for size in (int(v) for v in args.fig7_sizes.split(",")):
            report[f"fig7_migration_{size}mb"] = evaluate(
                f"fig7/migration_{size}mb", [main[0], *HEURISTICS[:3]], test,
                [*span, "--set", f"task.migration_size_mb={size}"],
            )  # fmt: skip
        for rate in (float(v) for v in args.fig7_rates.split(",")):
            report[f"fig7_data_{rate}mbps"] = evaluate(
                f"fig7/data_{rate}mbps", [main[0], *HEURISTICS[:3]], test,
                [*span, "--set", f"task.data_size_mb={rate}"],
            )  # fmt: skip
        save(report, only)
    if want("fig8"):
        for variant, flag in (("no_uavs", "--no-uavs"), ("no_satellite", "--no-satellite")):
            report[f"fig8_{variant}"] = evaluate(f"fig8/{variant}", [main[0], *HEURISTICS[:3]], test, [*span, flag])
        ensure_days("rural", TEST_DAYS)
        report["fig8_rural"] = evaluate(
            "fig8/rural", [main[0], *HEURISTICS[:3]], [day("rural", n) for n in TEST_DAYS], span
        )
        save(report, only)
    if want("fig9"):
        report["fig9_masked"] = evaluate("fig9/masked", [main[0], need("MASAC"), "greedy"], test, span)
        report["fig9_unmasked"] = evaluate(
            "fig9/unmasked", [need("MAPPO (no mask)"), need("MASAC (no mask)"), "greedy"], test, [*span, "--no-mask"]
        )
        save(report, only)
    if want("fig10"):
        report["fig10"] = evaluate("fig10", [main[0], need("MASAC"), *HEURISTICS], test, [*span, "--uav-churn", "5,6"])
        save(report, only)
    if want("hamburg"):
        hamburg = ROOT / "data" / "scenarios" / "hamburg"
        if not (hamburg / "params.toml").is_file():
            shared = ROOT.parent / "shared" / "scenarios" / "tavf-hamburg" / "run_simulation.sumocfg"
            run(["scenario", "import", str(shared), "--out", str(hamburg.relative_to(ROOT))])
        days = []
        for n in (1, 2):
            path = day("hamburg", n)
            if not (ROOT / path).is_file():
                run(["record", "--scenario", str(hamburg.relative_to(ROOT)), "--seed", str(n), "--out", path])
            days.append(path)
        report["hamburg"] = evaluate("hamburg", [main[0], *HEURISTICS], days, ["--episode-s", "300"])
    save(report, only)
    print(f"\nwrote {OUT}/README.md and report.json; the tables and plots are in {OUT}/<figure>/")


def save(report: dict, only: set[str]) -> None:
    """Write report.json and README.md; with ``--only`` the figures not redone stay as they were."""
    path = OUT / "report.json"
    merged = dict(report)
    if only and path.is_file():
        before = json.loads(path.read_text())
        merged = before | report | {"learned": before.get("learned", {}) | report["learned"]}
        if "fig6" not in report:  # the seeds are those Fig. 6 was evaluated with
            merged["seeds"] = before.get("seeds", report["seeds"])
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=1) + "\n")
    write_report(merged)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

KPIS = ("reward_eq22", "objective_eq21", "latency_mean_s", "packet_loss", "load_variance_mb2",
        "migrations_per_vehicle_tick")  # fmt: skip


def _rows(summary: dict) -> dict[str, dict]:
    return {p["migration_policy"]: p for p in summary["policies"]}


def _cell(p: dict, key: str) -> str:
    mean, half = p[key], p.get(f"{key}_ci95", float("nan"))
    digits = 4 if abs(mean) < 10 else 1
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if half == half else f"{mean:.{digits}f}"


def _table(summary: dict, kpis: tuple[str, ...] = KPIS, names: dict[str, str] | None = None) -> str:
    lines = ["| policy | episodes | " + " | ".join(kpis) + " |", "|" + "---|" * (len(kpis) + 2)]
    for name, p in _rows(summary).items():
        label = (names or {}).get(name, name)
        lines.append(f"| {label} | {p['episodes']} | " + " | ".join(_cell(p, k) for k in kpis) + " |")
    return "\n".join(lines) + "\n"


def _change(new: float, old: float) -> str:
    return f"{100 * (new - old) / abs(old):+.1f} %" if old else "n/a"


def write_report(report: dict) -> None:
    learned = report["learned"]
    names = {v: k for k, v in learned.items()}
    main = learned["DM-MAPPO"]
    out = ["# Paper A on our city: DM-MAPPO against its baselines and ablations", "",
           "Regenerated by `scripts/reproduce_paper_a.py` from recordings (days 1-6 train, day 7 validates, days "
           "8 and 9 are held out). Mean ± 95 % CI half-width over episodes (Student's t). Reward (Eq. 22) and "
           "objective (Eq. 21) z-score with the moments of the first policy of each table; higher is better.",
           ""]  # fmt: skip
    if "fig6" in report:
        rows = _rows(report["fig6"])
        out += ["## Fig. 6: learned policies and heuristics on held-out days", "", _table(report["fig6"], KPIS, names)]
        seeds = [rows[m]["reward_eq22"] for m in report["seeds"] if m in rows]
        if len(seeds) > 1:
            import statistics

            out += [f"DM-MAPPO over seeds {', '.join(report['seeds'])}: reward {statistics.mean(seeds):.4f} "
                    f"(std {statistics.stdev(seeds):.4f} across seeds).", ""]  # fmt: skip
        m, ll = rows.get(main), rows.get("least-loaded")
        if m and ll:
            out += [f"DM-MAPPO against least-loaded: latency {_change(m['latency_mean_s'], ll['latency_mean_s'])}, "
                    f"packet loss {_change(m['packet_loss'], ll['packet_loss'])}, load variance "
                    f"{_change(m['load_variance_mb2'], ll['load_variance_mb2'])}, objective (Eq. 21) "
                    f"{m['objective_eq21']:.4f} against {ll['objective_eq21']:.4f}.", ""]  # fmt: skip
        masac = rows.get(learned.get("MASAC", ""))
        if m and masac:
            out += [f"DM-MAPPO against MASAC: latency {_change(m['latency_mean_s'], masac['latency_mean_s'])}, "
                    f"packet loss {_change(m['packet_loss'], masac['packet_loss'])} (paper: "
                    f"{report['paper']['headline']}).", ""]  # fmt: skip
        for algo in ("DM-MAPPO", "MASAC"):
            base, pred = rows.get(learned.get(algo, "")), rows.get(learned.get(f"{algo} + prediction", ""))
            if base and pred:
                out += [f"{algo} with the workload predictor: reward {pred['reward_eq22']:.4f} against "
                        f"{base['reward_eq22']:.4f} without ({report['paper']['fig6']}).", ""]  # fmt: skip
        out += ["![fig6](fig6/paper_a_kpis.png)", ""]
    sweeps = [k for k in report if k.startswith("fig7_")]
    if sweeps:
        out += ["## Fig. 7: migration size and generated data (the city-trained policies, not retrained)", ""]
        for kind, unit in (("migration", "mb"), ("data", "mbps")):
            keys = [k for k in sweeps if k.startswith(f"fig7_{kind}_")]
            if not keys:
                continue
            policies = list(_rows(report[keys[0]]))
            header = "| " + ("S_mig (MB)" if kind == "migration" else "S_v per s (MB)") + " | " + " | ".join(
                names.get(p, p) for p in policies) + " |"  # fmt: skip
            out += [f"Mean latency (s) / packet loss, busy span of days 8-9 ({kind}):", "", header,
                    "|" + "---|" * (len(policies) + 1)]  # fmt: skip
            for k in keys:
                rows = _rows(report[k])
                value = k.split("_")[-1].replace(unit, "")
                cells = [f"{rows[p]['latency_mean_s']:.3f} / {rows[p]['packet_loss']:.4f}" for p in policies]
                out.append(f"| {value} | " + " | ".join(cells) + " |")
            out.append("")
        out += [f"Paper: {report['paper']['fig7']}.", ""]
    for key, title in (("fig8_no_uavs", "Fig. 8: without UAVs"), ("fig8_no_satellite", "Fig. 8: without the satellite"),
                       ("fig8_rural", "Fig. 8: rural (the city-trained policy)"),
                       ("fig9_masked", "Fig. 9: with the dynamic mask"), ("fig9_unmasked", "Fig. 9: without the mask"),
                       ("fig10", "Fig. 10: 5 UAVs appear, 6 leave in each episode"),
                       ("hamburg", "Beyond the paper: the city-trained per-server policy on Hamburg")):  # fmt: skip
        if key in report:
            out += [f"## {title}", "", _table(report[key], KPIS, names)]
    if "fig8_no_uavs" in report and "fig6" in report:
        a, b = _rows(report["fig8_no_uavs"]).get(main), _rows(report["fig6"]).get(main)
        if a and b:
            out += [f"Without UAVs, DM-MAPPO's latency {_change(a['latency_mean_s'], b['latency_mean_s'])} and packet "
                    f"loss {_change(a['packet_loss'], b['packet_loss'])} against the full city (whole days; the "
                    f"variant is the busy span) ({report['paper']['fig8']}).", ""]  # fmt: skip
    (OUT / "README.md").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
