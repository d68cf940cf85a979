#!/usr/bin/env python
"""Regenerate every table and plot of paper B's comparisons (issues 13, 21) into results/paper_b/, in one command.

    nice -n 10 .venv/bin/python scripts/reproduce_paper_b.py [--budget full|quick] [--seeds 1 2 3]
        [--part all|main|ablations|sweeps|readme] [--algos af-marl sfl-ppo ddqn afl-maddpg]

Steps (each skips work whose output exists, and an interrupted training resumes from its checkpoint, so an
interrupted run goes on where it stopped; --retrain redoes the models):

1. recordings: city days 1-9 (days 1-6 train, 7 validates, 8-9 held out) and day 8's first 900 s at demand scale
   0.5, 1.0 and 1.5 (traffic density, Fig. 3c / 5b), made with ``twin-service record``;
2. models: AF-MARL and the AFL-MADDPG, SFL-PPO and DDQN baselines, per seed, with ``twin-service train``
   (models/<algo>-city-s<seed>);
3. validation on day 7 with ``twin-service evaluate``: every model, local-only, nearest-least-loaded (non-DRL) and
   the oracle -> validation/. The served models are chosen here, never on the held-out days:
   models/af-marl-city is the AF-MARL seed with the lowest validation cost, and the default offloading policy is
   the learned model with the lowest validation cost (served.json says which);
4. held-out evaluation on days 8 and 9 -> main/ (per-episode KPIs, 95 % CIs); every model's manifest records its
   validation and held-out figures;
5. ablations (``--part ablations``): AF-MARL without the CVAE, without the transformer, with synchronous rounds
   (and the variants in ABLATIONS), with SFL-PPO and DDQN at the same budget, scored on the validation day ->
   ablations.csv;
6. Fig. 2: AF-MARL's training cost for buffer sizes, batch sizes, learning rates and uniform deadlines T_n
   (short training runs, ``sweep_episodes`` episodes each: the paper's curves are training curves too);
7. Fig. 3: held-out cost against task size, RSU CPU (2.5-3.5 GHz) and traffic density, every policy (seed 1's
   models, trained on the default scenario) on day 8's first 900 s;
8. Fig. 4: loss curves (CVAE, AdFL, critics, actor); Fig. 5: task success over training episodes and against
   traffic; Fig. 6: delay and energy over training episodes and on the held-out days;
9. results/paper_b/README.md: the tables, with the paper's claims beside ours.

Budgets: ``full`` (issue 21: 30 episodes x 300 s per model on days 1-6, the whole of days 7-9) and ``quick`` (a few
minutes per model on day 1, 900 s of days 7-9). Every training and evaluation runs one at a time under
``flock --lock`` (default /tmp/twin-train.lock, shared with other jobs on the machine), niced, on one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "twin-service"
DATA = ROOT / "data" / "recordings"
MODELS = ROOT / "models"
ALGOS = ("af-marl", "afl-maddpg", "sfl-ppo", "ddqn")
LABEL = {
    "af-marl": "AF-MARL",
    "afl-maddpg": "AFL-MADDPG",
    "sfl-ppo": "SFL-PPO",
    "ddqn": "DDQN",
    "nearest-least-loaded": "non-DRL",
    "local-only": "local-only",
    "oracle": "oracle",
}
BUDGETS = {
    # episodes x episode_s per model; sweep points train for sweep_episodes, ablations for ablation_episodes
    "quick": {
        "episodes": 8,
        "episode_s": 120.0,
        "sweep_episodes": 3,
        "sweep_episode_s": 60.0,
        "ablation_episodes": 4,
        "heldout": "900s",
    },
    "full": {
        "episodes": 30,
        "episode_s": 300.0,
        "sweep_episodes": 10,
        "sweep_episode_s": 300.0,
        "ablation_episodes": 10,
        "heldout": "days",
    },
}
ABLATIONS: dict[str, tuple[str, list[str], str]] = {
    # name -> (trainer, --hp settings, what it changes); every one trained with seed 1 on the ablation budget
    "af-marl": ("af-marl", [], "AF-MARL as in paper B (transformer trunk, CVAE context, semi-synchronous AdFL)"),
    "af-marl-nocvae": ("af-marl", ["cvae=false"], "without the CVAE context"),
    "af-marl-mlp": ("af-marl", ["trunk=mlp"], "without the transformer (one linear layer in its place)"),
    "af-marl-sync": ("af-marl", ["rounds=synchronous"], "synchronous rounds (every tick, all updates admitted)"),
    "af-marl-decay": (
        "af-marl",
        ["noise_decay=0.9", "exploration_decay=0.9"],
        "exploration that fades (Gaussian noise and uniform share x 0.9 per episode), as DDQN's epsilon does",
    ),
    "af-marl-pi": (
        "af-marl",
        ["actor_others=policy"],
        "the actor trained against the others' crowding without exploration (actor_others=policy)",
    ),
    "af-marl-mlp-pi": ("af-marl", ["trunk=mlp", "actor_others=policy"], "both: no transformer, actor_others=policy"),
    "af-marl-decay-pi": (
        "af-marl",
        ["noise_decay=0.9", "exploration_decay=0.9", "actor_others=policy"],
        "exploration that fades and actor_others=policy",
    ),
    "af-marl-b256": ("af-marl", ["batch_size=256"], "minibatches of 256 per client (Table V: 64; Fig. 2 sweeps it)"),
    "af-marl-decay-b256": (
        "af-marl",
        ["noise_decay=0.9", "exploration_decay=0.9", "batch_size=256"],
        "exploration that fades and minibatches of 256",
    ),
    "sfl-ppo": ("sfl-ppo", [], "SFL-PPO baseline, same budget"),
    "ddqn": ("ddqn", [], "DDQN baseline, same budget"),
}
LOCK = "/tmp/twin-train.lock"
# hyperparameters every trainer shares in these runs (NOTES in results/paper_b/README.md)
COMMON_HP = ["gamma=0.0"]
PAPER = {  # paper B's claims (Sec. VIII), for the tables
    "success": "AF-MARL near 100 % (Fig. 5a); DDQN and non-DRL lowest",
    "cost": "AF-MARL lowest everywhere (Fig. 2-3); DDQN worst",
    "delay_energy": "AF-MARL lowest delay and energy (Fig. 6); DDQN and non-DRL highest",
}


def rel(path: Path) -> str:
    """A path inside the repository as the commands (and so the manifests) give it: relative, portable."""
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else str(path)


def run(cmd: list[str], log: Path | None = None, heavy: bool = False) -> None:
    """Run a command in the repository; ``heavy`` ones (training, evaluation) one at a time under the shared lock,
    niced and on one thread (the machine's other jobs get their turn between them)."""
    args = [rel(c) if isinstance(c, Path) else str(c) for c in cmd]
    print("$", " ".join(args), flush=True)
    if heavy and LOCK:
        args = ["flock", LOCK, "nice", "-n", "10", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if heavy else None
    t0 = time.time()
    with log.open("w") if log else contextlib.nullcontext() as out:
        done = subprocess.run(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise SystemExit(
            f"failed ({done.returncode}): {' '.join(str(c) for c in cmd)}" + (f" (log {log})" if log else "")
        )
    print(f"  done in {time.time() - t0:.0f} s", flush=True)


def day(n: int) -> Path:
    return DATA / f"city-s{n}.npz"


def traffic(scale: float, seed: int = 8, end: int = 900) -> Path:
    """The first ``end`` seconds of a day at a demand scale."""
    return DATA / f"city-s{seed}-x{scale}-{end}.npz"


def train_days(budget: dict) -> list[Path]:
    """Days 1-6 (full budget); the quick budget trains on day 1 (an hour: 30 windows of 120 s)."""
    if budget["heldout"] == "days":
        return [day(n) for n in range(1, 7)]
    return [day(1)]


def validation_day(budget: dict) -> Path:
    return day(7) if budget["heldout"] == "days" else traffic(1.0, 7)


def ensure_recordings(budget: dict, sweeps: bool) -> None:
    """The recordings a part needs: the days, and (quick budget, or the sweeps' Fig. 3) the first 900 s of some."""
    days = range(1, 10) if budget["heldout"] == "days" else (1,)
    for n in days:
        if not day(n).exists():
            run([BIN, "record", "--scenario", "city", "--seed", n, "--out", day(n)])
    short = [(8, 0.5, 900), (8, 1.0, 900), (8, 1.5, 900)] if sweeps else []
    if budget["heldout"] != "days":
        short += [(8, 1.0, 900), (9, 1.0, 900), (7, 1.0, 900)]
    for seed, scale, end in short:
        if not traffic(scale, seed, end).exists():
            cmd = [BIN, "record", "--scenario", "city", "--seed", seed, "--end", end, "--scale", scale]
            run(cmd + ["--out", traffic(scale, seed, end)])


def train(
    algo: str,
    name: str,
    seed: int,
    budget: dict,
    episodes: int,
    episode_s: float,
    hps: list[str],
    sets: list[str],
    log_dir: Path,
) -> Path:
    out = MODELS / name
    if (out / "manifest.json").exists():
        return out  # trained (an interrupted training has no manifest yet: it resumes from models/NAME.checkpoint)
    cmd = [BIN, "train", algo, "--scenario", "city"]
    cmd += ["--recordings", ",".join(rel(d) for d in train_days(budget)), "--validation", validation_day(budget)]
    cmd += ["--out", out, "--seed", seed, "--episodes", episodes, "--episode-s", episode_s, "--no-progress"]
    for hp in COMMON_HP + hps:
        cmd += ["--hp", hp]
    for s in sets:
        cmd += ["--set", s]
    run(cmd, log_dir / f"train-{name}.log", heavy=True)
    return out


def evaluate(policies: list[str], recordings: list[Path], out: Path, sets: list[str], episode_s: float) -> list[dict]:
    if not (out / "summary.json").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            BIN,
            "evaluate",
            "--scenario",
            "city",
            "--recordings",
            ",".join(rel(r) for r in recordings),
            "--out",
            out,
        ]
        # hosts as in training (the environments' background migration policy), whatever evaluate's default
        cmd += ["--episode-s", episode_s, "--warmup-s", 60, "--migration-policy", "sticky-nearest"]
        for p in policies:
            cmd += ["--offload-policy", p]
        for s in sets:
            cmd += ["--set", s]
        run(cmd, out.parent / f"{out.name}.log", heavy=True)
    return json.loads((out / "summary.json").read_text())["policies"]


def evaluate_each(policies: list[str], recordings: list[Path], out: Path, episode_s: float) -> dict[str, dict]:
    """Each policy evaluated on ``recordings`` into ``out/<policy>/`` (kept: a later run evaluates only what is
    new); returns each policy's summary row with its per-episode rows under ``"episodes"``."""
    rows = {}
    for policy in policies:
        row = evaluate([policy], recordings, out / policy, [], episode_s)[0]
        with (out / policy / "episodes.csv").open() as f:
            row["episodes_rows"] = [
                {
                    k: (float(v) if k not in ("pair", "migration_policy", "offload_policy", "recording") else v)
                    for k, v in r.items()
                }
                for r in csv.DictReader(f)
            ]
        rows[policy] = row
    return rows


def t95(dof: int) -> float:
    """Student's t quantile 0.975 for ``dof`` degrees of freedom (the 95 % CI of a mean of few values)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def ci95(values: list[float]) -> float:
    """Half-width of the 95 % CI of the mean of ``values`` (t distribution); nan for fewer than two."""
    if len(values) < 2:
        return math.nan
    import statistics

    return t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


KPIS = ("offload_cost_mean", "task_success_rate", "offload_delay_mean_s", "offload_energy_mean_j")


def policy_table(rows: dict[str, dict], groups: dict[str, list[str]]) -> list[dict]:
    """One row per group of policies (an algorithm's seeds, or one heuristic): the mean over its members, the
    95 % CI across seeds (t, seeds as the samples) where it has several, else across the evaluation's episodes;
    and, per episode, the members' mean (for paired comparisons)."""
    table = []
    for label, members in groups.items():
        runs = [rows[m] for m in members if m in rows]
        if not runs:
            continue
        row: dict = {"policy": label, "members": " ".join(m for m in members if m in rows), "seeds": len(runs)}
        for key in KPIS:
            vals = [r[key] for r in runs]
            row[key] = float(sum(vals) / len(vals))
            row[f"{key}_ci95"] = ci95(vals) if len(vals) > 1 else float(runs[0][f"{key}_ci95"])
            row[f"{key}_ci95_over"] = "seeds" if len(vals) > 1 else "episodes"
        per_episode: dict[tuple, list[float]] = {}
        for r in runs:
            for e in r["episodes_rows"]:
                per_episode.setdefault((e["recording"], int(e["episode"])), []).append(e["offload_cost_mean"])
        row["episode_costs"] = {k: sum(v) / len(v) for k, v in sorted(per_episode.items())}
        table.append(row)
    return table


def paired_gap(a: dict, b: dict) -> tuple[float, float]:
    """Mean per-episode cost of ``a`` minus ``b`` over their common episodes, and its 95 % CI half-width (paired:
    both policies see the same traffic in an episode, so the day's ups and downs cancel)."""
    common = sorted(set(a["episode_costs"]) & set(b["episode_costs"]))
    diffs = [a["episode_costs"][k] - b["episode_costs"][k] for k in common]
    if not diffs:
        return math.nan, math.nan
    return sum(diffs) / len(diffs), ci95(diffs)


def record_figures(model: str, figures: dict[str, float]) -> None:
    """Add ``figures`` to a model's manifest evaluation (written to a temporary file, then renamed)."""
    path = MODELS / model / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["evaluation"] = {**manifest["evaluation"], **{k: float(v) for k, v in figures.items()}}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)


def copy_model(source: str, name: str, note: str) -> None:
    """``models/<name>`` as a copy of ``models/<source>`` (the served name), its manifest saying so."""
    dest = MODELS / name
    tmp = MODELS / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(MODELS / source, tmp)
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest["name"] = name
    manifest["notes"] = manifest["notes"].split("; copy of ")[0] + f"; copy of {source} ({note})"
    # The command that makes it names its own folder: the same seeded run gives the same weights there.
    manifest["command"] = manifest["command"].replace(f"--out models/{source} ", f"--out models/{name} ")
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def curves(name: str) -> list[dict]:
    path = MODELS / name / "curves.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in r.items()} for r in csv.DictReader(f)]


def write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    global LOCK  # noqa: PLW0603 - one setting for every heavy command of this run
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "paper_b")
    ap.add_argument("--retrain", action="store_true", help="Retrain the models even where they exist.")
    ap.add_argument(
        "--part",
        choices=("all", "main", "ablations", "sweeps", "readme"),
        default="all",
        help="main: steps 1-4 and the training-curve figures; ablations: step 5; sweeps: Fig. 2 and 3 (needs the "
        "first seed's models); readme: only rewrite README.md from the tables present.",
    )
    ap.add_argument(
        "--algos",
        nargs="+",
        choices=ALGOS,
        default=list(ALGOS),
        help="Learners to train (in this order) and compare; the others' models are still compared where present.",
    )
    ap.add_argument(
        "--train-only", action="store_true", help="Stop after training (step 2): no evaluation, tables or plots."
    )
    ap.add_argument(
        "--ablations",
        nargs="+",
        choices=list(ABLATIONS),
        default=list(ABLATIONS),
        help="Ablation variants to train and score (in this order; af-marl, the reference, is always included).",
    )
    ap.add_argument(
        "--ablation-episodes",
        type=int,
        default=None,
        help="Episodes per ablation training (default: the budget's ablation_episodes); the README says which.",
    )
    ap.add_argument("--lock", default=LOCK, help="flock file trainings and evaluations run under ('' for none).")
    ap.add_argument(
        "--axes", nargs="*", default=[], help="Fig. 3 axes to evaluate (traffic, 'task size', 'RSU CPU'; default all)."
    )
    args = ap.parse_args()
    LOCK = args.lock
    budget = BUDGETS[args.budget]
    out = args.out
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")

    if args.part == "readme":
        plot_fig3(out)
        write_readme(out, budget, args)
        return
    if args.ablation_episodes is not None:
        budget = {**budget, "ablation_episodes": args.ablation_episodes}
    ensure_recordings(budget, sweeps=args.part in ("all", "sweeps"))
    names: dict[str, list[str]] = {a: [model_name(a, args.budget, seed) for seed in args.seeds] for a in ALGOS}
    if args.part in ("all", "main"):
        run_main(args, budget, names, out, logs)
    if args.part in ("all", "ablations"):
        run_ablations(budget, out, logs, ["af-marl", *(a for a in args.ablations if a != "af-marl")])
    if args.part in ("all", "sweeps"):
        run_sweeps(budget, names, out, logs, tuple(args.axes))
    write_readme(out, budget, args)
    print(f"wrote {out}")


def budget_name(budget: dict) -> str:
    return next((k for k, v in BUDGETS.items() if v["episodes"] == budget["episodes"]), "?")


def model_name(algo: str, budget: str, seed: int) -> str:
    """models/<algo>-city-s<seed> (quick budget, the names the first runs committed) or -city-full-s<seed> (the
    report's full budget uses the same names: report.plan.offload_model_name)."""
    return f"{algo}-city{'-full' if budget == 'full' else ''}-s{seed}"


def committed_models(exclude: list[str]) -> dict[str, list[str]]:
    """Other learned offloading models in models/ (each budget's seeds), by group label: candidates for serving,
    validated beside this run's."""
    groups: dict[str, list[str]] = {}
    for algo in ALGOS:
        for budget in BUDGETS:
            found = [
                model_name(algo, budget, s)
                for s in range(1, 10)
                if (MODELS / model_name(algo, budget, s) / "manifest.json").exists()
                and model_name(algo, budget, s) not in exclude
            ]
            if found:
                groups[f"{LABEL[algo]} ({budget})"] = found
    return groups


def run_main(args: argparse.Namespace, budget: dict, names: dict[str, list[str]], out: Path, logs: Path) -> None:
    """Steps 2-4 and the training-curve figures (Fig. 4, 5a, 6)."""
    import matplotlib.pyplot as plt
    import numpy as np

    for seed in args.seeds:
        for algo in args.algos:
            name = model_name(algo, args.budget, seed)
            if args.retrain:
                shutil.rmtree(MODELS / name, ignore_errors=True)
            train(algo, name, seed, budget, budget["episodes"], budget["episode_s"], [], [], logs)
    if args.train_only:
        return

    heuristics = ["local-only", "nearest-least-loaded", "oracle"]
    models = [n for a in ALGOS for n in names[a] if (MODELS / n / "manifest.json").exists()]
    others = committed_models(exclude=models)  # e.g. the quick budget's models: served if they validate best
    groups = {LABEL[h]: [h] for h in heuristics} | {LABEL[a]: names[a] for a in ALGOS} | others
    algo_of = {n: a for a in ALGOS for n in names[a]} | {
        n: a for label, ms in others.items() for n in ms for a in ALGOS if label.startswith(LABEL[a] + " ")
    }
    if budget["heldout"] == "days":
        validation, heldout, episode_s = [day(7)], [day(8), day(9)], 600.0
    else:  # the first 900 s of each day (4 episodes of 210 s after a 60 s warm-up)
        validation, heldout, episode_s = [traffic(1.0, 7)], [traffic(1.0, 8), traffic(1.0, 9)], 210.0

    # 3. validation (day 7): the served models are chosen here, among every learned model in models/
    candidates = models + [n for ms in others.values() for n in ms]
    val_rows = evaluate_each(heuristics + candidates, validation, out / "validation", episode_s)
    best_seed = {}
    for a in ALGOS:
        scored = [n for n in candidates if algo_of[n] == a and n in val_rows]
        if scored:
            best_seed[a] = min(scored, key=lambda n: val_rows[n]["offload_cost_mean"])
    default_algo = min(best_seed, key=lambda a: val_rows[best_seed[a]]["offload_cost_mean"])
    served = {"af-marl-city": best_seed.get("af-marl")}
    if default_algo != "af-marl":
        served[f"{default_algo}-city"] = best_seed[default_algo]
    served_default = "af-marl-city" if default_algo == "af-marl" else f"{default_algo}-city"
    for name, source in served.items():
        if source is None:
            continue
        note = (
            "the AF-MARL model with the lowest validation cost (day 7)"
            if name == "af-marl-city"
            else ("the learned offloading policy with the lowest validation cost (day 7): served by default")
        )
        current = MODELS / name / "manifest.json"
        same = current.exists() and json.loads(current.read_text())["notes"].endswith(f"copy of {source} ({note})")
        if args.retrain or not same:
            copy_model(source, name, note)
    (MODELS / "offload-default").write_text(served_default + "\n")
    (out / "served.json").write_text(
        json.dumps(
            {
                "default": served_default,
                "chosen_on": [rel(r) for r in validation],
                "candidates": candidates,
                "validation_cost": {n: val_rows[n]["offload_cost_mean"] for n in candidates if n in val_rows},
                "best_by_validation_cost": best_seed,
                "copies": {k: v for k, v in served.items() if v},
            },
            indent=2,
        )
        + "\n"
    )

    # 4. held-out days (8, 9)
    served_sources = [v for v in served.values() if v and v not in models]
    test_rows = evaluate_each(heuristics + models + served_sources, heldout, out / "main", episode_s)
    tag = "days_8_9" if budget["heldout"] == "days" else "days_8_9_first_900s"
    val_tag = "day_7" if budget["heldout"] == "days" else "day_7_first_900s"
    for n in candidates:  # every candidate's manifest: its validation figures, and held-out ones where evaluated
        figures = {f"validation_{val_tag}_{k}": val_rows[n][k] for k in KPIS if n in val_rows}
        figures |= {f"test_{tag}_{k}": test_rows[n][k] for k in KPIS if n in test_rows}
        record_figures(n, figures)
    for name, source in served.items():
        if source is not None and (MODELS / name / "manifest.json").exists():
            src = json.loads((MODELS / source / "manifest.json").read_text())["evaluation"]
            record_figures(name, {k: v for k, v in src.items() if k.startswith(("validation_", "test_"))})

    for label, rows in (("validation", val_rows), ("heldout", test_rows)):
        table = policy_table(rows, groups)
        oracle = next(r for r in table if r["policy"] == "oracle")
        learned = [r for r in table if r["policy"] in {LABEL[a] for a in ALGOS}]
        best = min(learned, key=lambda r: r["offload_cost_mean"]) if learned else None
        for row in table:
            row["success_vs_oracle"] = row["task_success_rate"] / oracle["task_success_rate"]
            gap, gap_ci = paired_gap(row, best) if best is not None else (math.nan, math.nan)
            row["cost_minus_best_learned"], row["cost_minus_best_learned_ci95"] = gap, gap_ci
        write_csv(out / f"{label}_table.csv", [{k: v for k, v in r.items() if k != "episode_costs"} for r in table])
    table = read_csv(out / "heldout_table.csv")

    # training curves of the main models (Fig. 4, 5a, 6)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for col, (key, title) in enumerate(
        [
            ("cost", "cost (Eq. 22)"),
            ("success", "task success (Fig. 5a)"),
            ("delay_s", "delay per task, s (Fig. 6a)"),
            ("energy_j", "energy per task, J (Fig. 6b)"),
        ]
    ):
        for i, algo in enumerate(ALGOS):
            series = [curves(n) for n in names[algo]]
            series = [s for s in series if s]
            if not series:
                continue
            n = min(len(s) for s in series)
            ys = np.array([[r[key] for r in s[:n]] for s in series])
            x = np.arange(n)
            axes[col].plot(x, ys.mean(0), color=f"C{i}", label=LABEL[algo])
            if len(series) > 1:
                axes[col].fill_between(x, ys.min(0), ys.max(0), color=f"C{i}", alpha=0.2)
        axes[col].set_title(title, fontsize=9)
        axes[col].set_xlabel("training episode")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig5a_fig6_training_curves.png", dpi=100)
    plt.close(fig)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for col, key in enumerate(["cvae_loss", "adfl_loss", "critic_loss", "actor_loss"]):
        for i, name in enumerate(names["af-marl"]):
            c = curves(name)
            axes[col].plot([r["episode"] for r in c], [r.get(key, math.nan) for r in c], color=f"C{i}", label=name)
        axes[col].set_title(f"AF-MARL {key} (Fig. 4)", fontsize=9)
        axes[col].set_xlabel("training episode")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig4_losses.png", dpi=100)
    plt.close(fig)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    labels = [r["policy"] for r in table]
    for col, key in enumerate(
        ["offload_cost_mean", "task_success_rate", "offload_delay_mean_s", "offload_energy_mean_j"]
    ):
        means = [r[key] for r in table]
        errs = [r[f"{key}_ci95"] for r in table]
        axes[col].bar(
            range(len(labels)),
            means,
            yerr=[e if math.isfinite(e) else 0 for e in errs],
            capsize=3,
            color=[f"C{i}" for i in range(len(labels))],
        )
        axes[col].set_xticks(range(len(labels)))
        axes[col].set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        axes[col].set_title(key + " (held-out days 8, 9; 95 % CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig6_heldout.png", dpi=100)
    plt.close(fig)


def run_ablations(budget: dict, out: Path, logs: Path, variants: list[str]) -> None:
    """Step 5: the ABLATIONS trained on the ablation budget (seed 1), scored on the validation day with the oracle.

    Chosen on the validation day only: these runs decide AF-MARL's configuration, so they never see days 8-9."""
    e = budget["ablation_episodes"]
    validation, episode_s = ([day(7)], 600.0) if budget["heldout"] == "days" else ([traffic(1.0, 7)], 210.0)
    rows = evaluate_each(["oracle"], validation, out / "ablations", episode_s)
    names: dict[str, str] = {}
    for name in variants:  # each variant scored as soon as it is trained: the table grows as they come
        algo, hps, _ = ABLATIONS[name]
        names[name] = f"ablation-{name}"
        train(algo, names[name], 1, budget, e, budget["episode_s"], hps, [], logs)
        rows |= evaluate_each([names[name]], validation, out / "ablations", episode_s)
        # the models are not kept in git (models/ablation-*): their curves and manifests are
        shutil.copy(MODELS / names[name] / "curves.csv", out / "ablations" / names[name] / "training_curves.csv")
        shutil.copy(MODELS / names[name] / "manifest.json", out / "ablations" / names[name] / "manifest.json")
        write_ablation_table(rows, names, out)


def write_ablation_table(rows: dict[str, dict], names: dict[str, str], out: Path) -> None:
    """ablations.csv: every variant scored so far against the reference (af-marl) and the oracle."""
    groups = {"oracle": ["oracle"]} | {n: [m] for n, m in names.items()}
    table = policy_table(rows, groups)
    oracle = next(r for r in table if r["policy"] == "oracle")
    reference = next(r for r in table if r["policy"] == "af-marl")
    # the validation episode where the oracle's cost is highest: the day's busiest span
    busiest = max(oracle["episode_costs"], key=oracle["episode_costs"].get)
    out_rows = []
    for r in table:
        gap, gap_ci = paired_gap(r, reference)
        curves_ = curves(names.get(r["policy"], ""))
        excess = {
            k: c - oracle["episode_costs"][k] for k, c in r["episode_costs"].items() if k in oracle["episode_costs"]
        }
        others = [v for k, v in excess.items() if k != busiest]
        out_rows.append(
            {
                "variant": r["policy"],
                "what": ABLATIONS[r["policy"]][2] if r["policy"] in ABLATIONS else "upper bound",
                "cost": r["offload_cost_mean"],
                "cost_ci95_episodes": r["offload_cost_mean_ci95"],
                "cost_minus_af_marl": gap,
                "cost_minus_af_marl_ci95": gap_ci,
                "success": r["task_success_rate"],
                "success_vs_oracle": r["task_success_rate"] / oracle["task_success_rate"],
                "delay_s": r["offload_delay_mean_s"],
                "energy_j": r["offload_energy_mean_j"],
                "cost_minus_oracle_busiest_episode": excess.get(busiest, math.nan),
                "cost_minus_oracle_other_episodes": sum(others) / len(others) if others else math.nan,
                "train_episodes": len(curves_),
                "train_wall_s": curves_[-1]["wall_s"] if curves_ else math.nan,
            }
        )
    write_csv(out / "ablations.csv", out_rows)


def run_sweeps(
    budget: dict, names: dict[str, list[str]], out: Path, logs: Path, fig3_axes: tuple[str, ...] = ()
) -> None:
    """Fig. 2 (short AF-MARL runs) and Fig. 3 / 5b (every policy under changed conditions)."""
    import matplotlib.pyplot as plt

    # 6. Fig. 2: training cost for Table V's alternatives (short runs, seed 1)
    e, es = budget["sweep_episodes"], budget["sweep_episode_s"]
    grid = {
        "buffer": [(f"buffer={b}", [f"buffer_size={b}"], []) for b in (50_000, 100_000, 200_000)],
        "batch": [(f"batch={b}", [f"batch_size={b}"], []) for b in (32, 64, 256)],
        "lr": [
            (f"lr={a},{c}", [f"lr_actor={a}", f"lr_critic={c}"], [])
            for a, c in ((1e-3, 1e-3), (1e-2, 1e-2), (1e-4, 1e-2))
        ],
        "deadline": [(f"T_n={t}", [], [f"offload.deadline_s=[{t}, {t}]"]) for t in (0.1, 0.5, 1.0)],
    }
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    rows = []
    for col, (group, points) in enumerate(grid.items()):
        for i, (label, hps, sets) in enumerate(points):
            slug = label.replace("=", "").replace(",", "-").replace(".", "p").replace("_", "").lower()
            name = f"sweep-af-marl-{slug}"
            train("af-marl", name, 1, budget, e, es, hps, sets, logs)
            c = curves(name)
            axes[col].plot([r["episode"] for r in c], [r["cost"] for r in c], color=f"C{i}", label=label)
            rows.append(
                {
                    "group": group,
                    "setting": label,
                    "final_cost": c[-1]["cost"],
                    "final_success": c[-1]["success"],
                    "episodes": len(c),
                }
            )
        axes[col].set_title(f"Fig. 2: {group}", fontsize=9)
        axes[col].set_xlabel("training episode")
        axes[col].legend(fontsize=7)
    axes[0].set_ylabel("training cost (Eq. 22)")
    fig.tight_layout()
    fig.savefig(out / "fig2_sweeps.png", dpi=100)
    plt.close(fig)
    write_csv(out / "fig2_sweeps.csv", rows)
    (out / "sweeps_budget.txt").write_text(
        f"budget {budget_name(budget)}: Fig. 2 sweep points {e} x {es:g} s, Fig. 3 with the first seed's models\n"
    )

    # 7. Fig. 3 (and 5b): held-out cost and success against task size, RSU CPU and traffic
    policies = ["local-only", "nearest-least-loaded", "oracle"] + [names[a][0] for a in ALGOS]
    conditions = (
        [("traffic", f"x{s}", traffic(s), []) for s in (0.5, 1.0, 1.5)]
        + [("task size", f"{mb} MB", traffic(1.0), [f"offload.task_size_mb=[{mb}, {mb}]"]) for mb in (0.5, 1.0, 2.0)]
        + [("RSU CPU", f"{g} GHz", traffic(1.0), [f"offload.rsu_cpu_hz=[{g}e9, {g}e9]"]) for g in (2.5, 3.0, 3.5)]
    )
    for axis_name, label, rec, sets in conditions:
        if fig3_axes and axis_name not in fig3_axes:
            continue
        evaluate(policies, [rec], out / "fig3" / condition_slug(axis_name, label), sets, 210.0)
    plot_fig3(out)


def condition_slug(axis_name: str, label: str) -> str:
    return f"{axis_name.replace(' ', '_')}-{label.replace(' ', '')}"


AXES = {"task_size": "task size", "RSU_CPU": "RSU CPU", "traffic": "traffic"}


def plot_fig3(out: Path) -> None:
    """fig3_conditions.csv and its plot from every condition evaluated so far (fig3/<axis>-<setting>/)."""
    import matplotlib.pyplot as plt

    rows = []
    for folder in sorted((out / "fig3").glob("*/summary.json")):
        axis_slug, _, label = folder.parent.name.partition("-")
        for r in json.loads(folder.read_text())["policies"]:
            name = r["offload_policy"]
            algo = next((a for a in ALGOS if name.startswith(a)), name)
            rows.append(
                {
                    "axis": AXES.get(axis_slug, axis_slug),
                    "setting": label,
                    "policy": LABEL[algo],
                    "cost": r["offload_cost_mean"],
                    "success": r["task_success_rate"],
                    "delay_s": r["offload_delay_mean_s"],
                    "energy_j": r["offload_energy_mean_j"],
                }
            )
    if not rows:
        return
    write_csv(out / "fig3_conditions.csv", rows)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for col, (axis_name, key) in enumerate(
        [("task size", "cost"), ("RSU CPU", "cost"), ("traffic", "cost"), ("traffic", "success")]
    ):
        sub = [r for r in rows if r["axis"] == axis_name]
        settings = sorted(dict.fromkeys(r["setting"] for r in sub), key=lambda v: float(v.strip("xMBGHz ")))
        for i, pol in enumerate(dict.fromkeys(r["policy"] for r in sub)):
            ys = [next((r[key] for r in sub if r["policy"] == pol and r["setting"] == st), math.nan) for st in settings]
            axes[col].plot(settings, ys, marker="o", color=f"C{i}", label=pol)
        axes[col].set_title(f"{'Fig. 5b' if key == 'success' else 'Fig. 3'}: {key} vs {axis_name}", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig3_fig5b_conditions.png", dpi=100)
    plt.close(fig)


NOTES = """
## Notes: where we depart from paper B, and why

- **Discount.** Table V gives gamma = 0.99. Here an offloading fraction changes only the outcome of its own task:
  the next task arrives whatever rho was, the host is chosen by the migration policy, and the battery it drains
  does not enter the cost. The discounted return then adds only terms no action changes, and with gamma = 0.99 the
  critics' targets carry a hundred times the reward's scale of such noise: in our runs the critic did not fit
  the rewards within the training budget (critic loss about 0.2 against 0.006-0.015 with gamma = 0). Every trainer
  here ran with gamma = 0 (`--hp gamma=0.0`); the trainers' default stays Table V's 0.99.
- **Rounds.** RSUs aggregate their vehicles' updates (Eq. 31) when the round's trigger fires (tau_agg = 5 s or
  N_agg = 10 updates, adaptive by Eq. 45), and the global model combines the RSUs' aggregates. With every RSU on
  its own clock over one global model, updates were several global steps stale when applied and the critic's
  value estimate oscillated instead of fitting (measured), so a round is global and nothing in it is stale.
- **Critics.** The critics (training only) also see the summed rho of the other vehicles on the same host in that
  tick (C.6 couples vehicles only through it): without it every vehicle, sharing one actor, swung between
  all-local and all-offload. The actor, and what is served, sees only the twin (now and 10 s mean) and the CVAE
  latent. Table V's exploration rate 0.15 is a share of vehicles taking a uniform random rho each tick.
- **Global model.** The transformer layer (Eq. 25-30) is the actor's trunk over the twin's features as tokens
  (each holding the feature now and its 10 s mean) and the CVAE latent; it is not pre-trained (the paper's
  pre-training data set is not available). The CVAE decoder's output is linear (our scaled features exceed 1).
- **Fig. 2 in the quick budget** is three 60 s episodes per point: the actor first moves after 100 rounds, so it
  trains for about the last 80 ticks. No buffer fills in that time (the three buffer sizes give the same run) and
  the batch and learning-rate differences are within run-to-run noise; only a uniform deadline T_n shows the
  paper's trend. `batch=64` and `lr=0.001,0.001` are both Table V's default: two runs, identical to the last digit
  (a run is repeatable for a seed).
- **Sizes.** Widths Table V leaves open: transformer d_model 16, CVAE layers 64 wide, critics 128, actor head 64.
- **Oracle.** Each vehicle's best rho on the true state its task is processed in, by search (a 101-point grid
  plus the delay-balance point), deadline first and then the lowest cost, the others' choices fixed (best
  responses, Gauss-Seidel over each host), scored after each tick (`twin-service evaluate --offload-policy oracle`).
- **Baselines.** AFL-MADDPG: MADDPG with a centralised critic (global state, own observation and action, the
  co-hosted vehicles' summed rho), FedAsync mixing of each upload on arrival with a staleness discount.
  SFL-PPO: PPO (Gaussian on the logit of rho, GAE) with synchronous FedSGD over every vehicle of a 30-tick round,
  weighted by |D_n| (computed as the pooled gradient, identical maths). DDQN: one Q-network over 11 fractions, no
  federation. non-DRL: `nearest-least-loaded` (offloads all or nothing; with our cost constants it almost never
  offloads, so it equals local-only). All learned policies train on the same days, episodes and budget.
"""


def seeds_text(v: object) -> str:
    return v if isinstance(v, str) else str(int(v))


def _f(v: float, d: int = 3) -> str:
    return "n/a" if not isinstance(v, float) or not math.isfinite(v) else f"{v:.{d}f}"


def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            with contextlib.suppress(TypeError, ValueError):
                r[k] = float(v)
    return rows


def _table_lines(table: list[dict], with_gap: bool) -> list[str]:
    head = "| policy | seeds | cost | task success | success / oracle | delay (s) | energy (J) |"
    rule = "|---|---|---|---|---|---|---|"
    if with_gap:
        head += " cost - best learned (paired) |"
        rule += "---|"
    lines = [head, rule]
    for r in table:

        def pm(key: str, r: dict = r) -> str:
            return f"{_f(r[key])} ± {_f(r[f'{key}_ci95'])}"

        learned = r["policy"].split(" (")[0] in {LABEL[a] for a in ALGOS}
        seeds = seeds_text(r["seeds"]) if learned else "-"
        line = (
            f"| {r['policy']} | {seeds} | {pm('offload_cost_mean')} | {pm('task_success_rate')} | "
            f"{r['success_vs_oracle']:.1%} | {pm('offload_delay_mean_s')} | {pm('offload_energy_mean_j')} |"
        )
        if with_gap:
            gap = r.get("cost_minus_best_learned", math.nan)
            line += f" {_f(gap, 4)} ± {_f(r.get('cost_minus_best_learned_ci95', math.nan), 4)} |"
        lines.append(line)
    return lines


def verdict(table: list[dict]) -> list[str]:
    """Issue 21's goals, checked on a table (held-out): lowest cost of the learned policies or within the CI of
    the best, and at least 95 % of the oracle's success."""
    learned = [r for r in table if r["policy"] in {LABEL[a] for a in ALGOS}]
    ours = next((r for r in learned if r["policy"] == "AF-MARL"), None)
    if ours is None or not learned:
        return []
    best = min(learned, key=lambda r: r["offload_cost_mean"])
    gap, gap_ci = ours.get("cost_minus_best_learned", math.nan), ours.get("cost_minus_best_learned_ci95", math.nan)
    if best is ours:
        cost_text = "AF-MARL has the lowest cost of the four learned policies"
    elif math.isfinite(gap_ci) and gap <= gap_ci:
        cost_text = (
            f"AF-MARL's cost is within the confidence interval of the best learned policy's ({best['policy']}: "
            f"{_f(gap, 4)} ± {_f(gap_ci, 4)} higher per episode, paired)"
        )
    elif math.isfinite(gap_ci):
        cost_text = (
            f"AF-MARL does **not** have the lowest cost: {best['policy']} is {_f(gap, 4)} ± {_f(gap_ci, 4)} lower per "
            "episode (paired, 95 % CI), and outside the interval"
        )
    else:
        cost_text = (
            f"AF-MARL does **not** have the lowest cost: {best['policy']} is {_f(gap, 4)} lower per episode, with no "
            "interval (fewer than two episodes in common)"
        )
    share = ours["success_vs_oracle"]
    success_text = f"its task success is {share:.1%} of the oracle's ({'meets' if share >= 0.95 else 'misses'} 95 %)"
    return [f"**Goals (issue 21), held-out days:** {cost_text}; {success_text}.", ""]


def training_status(budget_name: str, budget: dict, seeds: list[int]) -> list[str]:
    """What ran at this budget, read from models/ (manifests, curves, checkpoints of interrupted runs): a table, and
    each learner's CPU (AF-MARL) or wall time per training episode, scaled to the budget's episodes."""
    lines = [
        f"| learner | seed | model | episodes done (of {budget['episodes']}) | training wall time (min) | "
        "CPU s per episode | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for algo in ALGOS:
        for seed in seeds:
            name = model_name(algo, budget_name, seed)
            ck = MODELS / f"{name}.checkpoint" / "state.json"
            rows = curves(name)
            if (MODELS / name / "manifest.json").exists():
                status = "trained"
            elif ck.exists():
                state = json.loads(ck.read_text())
                saved = MODELS / f"{name}.checkpoint" / "curves.csv"
                if saved.exists():
                    with saved.open() as f:
                        rows = [{k: float(v) for k, v in r.items() if v} for r in csv.DictReader(f)]
                rows = rows or [
                    {"episode": e, "wall_s": state.get("wall_s", math.nan)} for e in range(state["next_episode"])
                ]
                status = f"interrupted: checkpoint after episode {state['next_episode']} (resumes)"
            else:
                status = "not run"
            done = len(rows)
            wall = rows[-1].get("wall_s", math.nan) / 60 if rows else math.nan
            cpu = rows[-1]["cpu_s"] / done if rows and "cpu_s" in rows[-1] else math.nan
            lines.append(f"| {LABEL[algo]} | {seed} | `{name}` | {done} | {_f(wall, 1)} | {_f(cpu, 1)} | {status} |")
    return lines


def write_readme(out: Path, budget: dict, args: argparse.Namespace) -> None:
    """README.md from the tables present (heldout_table.csv, validation_table.csv, ablations.csv, fig2, fig3)."""
    table = read_csv(out / "heldout_table.csv")
    validation = read_csv(out / "validation_table.csv")
    ablations = read_csv(out / "ablations.csv")
    served = json.loads((out / "served.json").read_text()) if (out / "served.json").exists() else None
    oracle = next((r for r in table if r["policy"] == "oracle"), None)
    oracle_success = oracle["task_success_rate"] if oracle else math.nan
    sweeps = {k: read_csv(out / f) for k, f in (("fig2", "fig2_sweeps.csv"), ("fig3", "fig3_conditions.csv"))}
    sweeps = {k: v for k, v in sweeps.items() if v}
    days = budget["heldout"] == "days"
    marker = out / "sweeps_budget.txt"
    sweeps_budget = marker.read_text().strip() if marker.exists() else "the quick budget's runs (issue 13)"
    lines = [
        "# Paper B (AF-MARL) reproduced: validation and held-out results",
        "",
        "Regenerated by `nice -n 10 .venv/bin/python scripts/reproduce_paper_b.py "
        f"--budget {args.budget} --seeds {' '.join(map(str, args.seeds))}` (and `--part ablations`). "
        + (
            "Days 1-6 train, day 7 validates, days 8 and 9 are held out, each the whole hour (city scenario). "
            if days
            else "This budget trains on day 1, validates on day 7's first 900 s and holds out the first 900 s of "
            "days 8 and 9 (city scenario). "
        )
        + f"Budget `{args.budget}`: every model trained {budget['episodes']} episodes x {budget['episode_s']:g} s; "
        + (
            f"ablations {int(ablations[-1]['train_episodes'])} x {budget['episode_s']:g} s (seed 1); "
            if ablations and "train_episodes" in ablations[-1]
            else ""
        )
        + f"Fig. 2 and 3: {sweeps_budget}. "
        f"All trainers ran with {', '.join(COMMON_HP)} (see the notes below). Evaluation: "
        f"`twin-service evaluate`, episodes of {600 if days else 210} s after a 60 s warm-up, hosts chosen by "
        "sticky-nearest as in training.",
        "",
        f"## What ran at the `{args.budget}` budget",
        "",
        *training_status(args.budget, budget, args.seeds),
        "",
        f"To go on: `nice -n 10 .venv/bin/python scripts/reproduce_paper_b.py --budget {args.budget} --seeds 1 2 3` "
        "trains what is missing (an interrupted training resumes from `models/<name>.checkpoint`, bit for bit), "
        "evaluates only what is new, and may change the served models (chosen on day 7 only).",
        "",
    ]
    if table:
        lines += [
            "## Held-out days 8 and 9 (Eq. 22 cost, task success, delay, energy per task)",
            "",
            "Learned policies: mean over seeds ± 95 % CI across seeds (t), or over the held-out episodes for one "
            "seed; heuristics and the oracle: ± 95 % CI over the held-out episodes. Last column: the policy's cost "
            "minus the best learned policy's, per held-out episode (both see the same traffic), mean ± 95 % CI over "
            "the episodes.",
            "",
            *_table_lines(table, with_gap=True),
            "",
            *verdict(table),
            f"The oracle (each vehicle's best rho on the true state, the others fixed) reaches {oracle_success:.1%} "
            "task success: the ceiling here. Paper B's claims: " + "; ".join(PAPER.values()) + ".",
            "",
        ]
    if served:
        lines += [
            "## The served offloading policy: chosen on the validation day",
            "",
            f"Chosen by the lowest cost on {', '.join(served['chosen_on'])} (never on days 8-9): the default "
            f"offloading policy is **`{served['default']}`**; "
            + "; ".join(f"`{k}` is a copy of `{v}`" for k, v in served["copies"].items())
            + ". Each model's manifest records its validation (day 7) and held-out (days 8-9) figures.",
            "",
        ]
    if validation:
        lines += [
            "## Validation day 7",
            "",
            *_table_lines(validation, with_gap=True),
            "",
        ]
    if ablations:
        lines += [
            "## Ablations on the validation day (day 7; seed 1, ablation budget)",
            "",
            "Cost minus AF-MARL's: per validation episode (paired), mean ± 95 % CI. Cost minus the oracle's: in the "
            "validation episode where the oracle's cost is highest (the day's busiest span) and the mean over the "
            "others. One training seed per variant: the spread across training seeds is not measured here.",
            "",
            "| variant | what | cost | cost - AF-MARL | cost - oracle: busiest episode / the others | task success | "
            "success / oracle | training wall time (min) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['variant']} | {r['what']} | {_f(r['cost'])} ± {_f(r['cost_ci95_episodes'])} | "
            f"{_f(r['cost_minus_af_marl'], 4)} ± {_f(r['cost_minus_af_marl_ci95'], 4)} | "
            f"{_f(r.get('cost_minus_oracle_busiest_episode', math.nan))} / "
            f"{_f(r.get('cost_minus_oracle_other_episodes', math.nan))} | {_f(r['success'])} | "
            f"{r['success_vs_oracle']:.1%} | {_f(r['train_wall_s'] / 60, 1)} |"
            for r in ablations
        ]
        lines += ["", *ANALYSIS.strip("\n").splitlines(), ""]
    lines += [
        "Files: `heldout_table.csv`, `validation_table.csv`, `ablations.csv`, `served.json`, `main/` and "
        "`validation/` (per policy: per-episode KPIs, CIs, plots), `fig6_heldout.png`, "
        "`fig5a_fig6_training_curves.png`, `fig4_losses.png`, `fig2_sweeps.*`, `fig3_conditions.csv`, "
        "`fig3_fig5b_conditions.png`; training curves of every model in `models/<name>/curves.csv`.",
        "",
    ]
    if "fig2" in sweeps:
        lines += [
            "## Fig. 2: AF-MARL's last training episode's cost per setting (short runs)",
            "",
            "| group | setting | cost | success |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['group']} | {r['setting']} | {_f(r['final_cost'])} | {_f(r['final_success'])} |"
            for r in sweeps["fig2"]
        ]
        lines += [""]
    if "fig3" in sweeps:
        lines += [
            "## Fig. 3 / 5b: day 8's first 900 s under changed conditions (seed-1 models)",
            "",
            "| axis | setting | policy | cost | success |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['axis']} | {r['setting']} | {r['policy']} | {_f(r['cost'])} | {_f(r['success'])} |"
            for r in sweeps["fig3"]
        ]
        lines += [""]
    lines += NOTES.splitlines()
    (out / "README.md").write_text("\n".join(lines) + "\n")


ANALYSIS = """
**Reading the ablations** (issue 21's run: eight variants, 6 episodes of 300 s on days 1-6, a fifth of the full
budget; the table above is the measurement, this is our reading of it; day 7 only, days 8-9 played no part):

- At this budget AF-MARL validates behind SFL-PPO and DDQN and below 95 % of the oracle's task success. SFL-PPO is
  the best of the three, but none of the paired gaps between AF-MARL, SFL-PPO and DDQN is outside its 95 % interval
  (five validation episodes of 600 s). At the full budget (30 episodes) the gap to SFL-PPO stays (validation table).
- **AF-MARL loses where the hosts are crowded.** Every policy is furthest from the oracle in day 7's busiest span,
  but AF-MARL's excess there is about three times SFL-PPO's, while over the other episodes the two are close
  (column "cost - oracle"). On a crowded host the cost turns on how much the co-hosted vehicles offload, and
  AF-MARL's deterministic actor gets that wrong more than the others.
- **Not the exploring neighbours:** training the actor against the co-hosted vehicles' rho without exploration
  noise (`af-marl-pi`) does not help; it is slightly worse, with the same busy-span pattern. What does make the
  difference in the busy span we have not found in the time.
- **Nor the exploration schedule:** exploration that fades per episode as DDQN's epsilon does (`af-marl-decay`) is
  slightly worse too (outside the interval), again mostly in the busy span.
- **The CVAE context is what makes AF-MARL work here:** without it the cost rises well outside the interval and
  success falls to three quarters of the oracle's, most of it again in the busy span.
- **Synchronous rounds are worse** (every tick's round closes on all its updates): outside the interval, with the
  same busy-span pattern. We have not isolated why.
- **The transformer trunk does not earn its cost:** with one linear layer in its place AF-MARL validates lower
  (inside the interval, level with SFL-PPO and DDQN) and trains in less CPU time. It was not tried at the full
  budget.
- One training seed per variant: how much of these gaps is the training seed is not measured. The two large losses
  (no CVAE, synchronous rounds) come with a wide spread across the validation episodes.
"""


if __name__ == "__main__":
    main()
