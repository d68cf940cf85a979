#!/usr/bin/env python
"""AF-MARL's training speed: the selected vehicles' local updates one client at a time against all of them in one
batched pass, in the same run.

Two measurements, each repeated in turn so that a slow spell of this shared machine falls on every path alike:

* ``local update``: one call of :func:`twin_service.learn.af_marl_client.local_update` for ``--clients`` clients
  with a minibatch of ``--batch`` transitions each (the trainer's defaults: 16 and 64; Table V), for each way of
  computing it: ``per-client`` (one client at a time), ``vmap`` (``torch.func``) and ``grouped`` (one pass over
  every client's stacked parameters, its backward written by hand: ``twin_service.learn.af_marl_grouped``). Median
  CPU milliseconds per call, in a process that keeps freed memory as the trainers do.
* ``trainer``: ``af_marl.train`` on a recorded day (``--episodes`` windows of ``--episode-s`` seconds, learning from
  the first ticks on), once with ``local_method=per-client`` and once with ``grouped``, each in its own process.
  The figure is the CPU time of the episodes after the first (imports, set-up and the buffer's first fill left
  out) per simulated second, the median over ``--repeats`` runs (the paths take turns, in alternating order).
  CPU time, not wall time: on a machine shared by other jobs the wall time of the same run varied by 2x (its
  environment step alone did), the CPU time of a one-thread run much less; the wall times are printed too.
  Each episode's phases (act, env, store, select, local_update, aggregate) come from the trainer's own
  ``curves.csv``. With ``--baseline-rev REV`` the trainer of that git revision (e.g. ``main`` before this
  change) runs too, from ``git archive``, and ``speedup_vs_<REV>`` is printed (its trainer records no CPU time
  per episode: there the whole process's, set-up included, is compared with the same for ``grouped``).

    flock /tmp/twin-bench.lock .venv/bin/python scripts/bench_train.py [--recording data/recordings/city-s1.npz]
        [--episodes 3] [--episode-s 60] [--repeats 2] [--baseline-rev main]

The last line is ``train_speedup=<per-client trainer CPU time / grouped trainer CPU time>`` (issue 21's goal: >= 5).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import torch

from twin_service.learn.offload_common import keep_freed_memory

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("per-client", "vmap", "grouped")
TRAINER = """
import json, sys
from pathlib import Path
from twin_service.learn import af_marl
kw = json.loads(sys.argv[1])
kw["recordings"] = [Path(p) for p in kw["recordings"]]
kw["out"] = Path(kw["out"])
af_marl.train(af_marl.AfMarlArgs(**kw))
"""


def bench_local_update(clients: int, batch: int, repeats: int) -> dict[str, float]:
    """Median CPU ms per local update for each method, the methods taking turns."""
    from twin_service.learn.af_marl_client import AfMarlModel, LocalConfig, local_update
    from twin_service.observe import offload_feature_dim

    torch.manual_seed(0)
    obs_dim = offload_feature_dim()
    model = AfMarlModel(obs_dim)
    targets = copy.deepcopy(model)
    data = {
        "obs": torch.rand(clients, batch, obs_dim + 1),
        "act": torch.rand(clients, batch, 1),
        "rew": torch.rand(clients, batch),
        "next_obs": torch.rand(clients, batch, obs_dim + 1),
        "done": torch.zeros(clients, batch),
    }
    cfg = LocalConfig(gamma=0.99)  # with the target networks' forward pass (gamma = 0 skips it)
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for m in METHODS:  # warm up
        local_update(model, targets, data, cfg, torch.Generator().manual_seed(0), m)
    for _ in range(repeats):
        for m in METHODS:
            start = time.process_time()  # CPU time (one thread): robust to other jobs on the machine
            local_update(model, targets, data, cfg, torch.Generator().manual_seed(0), m)
            times[m].append(1e3 * (time.process_time() - start))
    return {m: statistics.median(v) for m, v in times.items()}


def export_revision(rev: str, into: Path) -> Path:
    """``twin_service`` of a git revision, unpacked under ``into`` (for PYTHONPATH)."""
    archive = subprocess.run(["git", "archive", rev, "twin_service"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_trainer(kw: dict, pythonpath: Path) -> tuple[list[dict], float]:
    """One training run in its own process, importing ``twin_service`` from ``pythonpath``: its curves and the
    process's CPU seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(pythonpath)}
    cwd = Path(kw["out"]).parent  # not the repository: its twin_service would come first on sys.path
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", TRAINER, json.dumps(kw)], cwd=cwd, env=env, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"trainer failed:\n{done.stderr.decode()[-3000:]}")
    with (Path(kw["out"]) / "curves.csv").open() as f:
        rows = [{k: float(v) if v else 0.0 for k, v in r.items()} for r in csv.DictReader(f)]
    return rows, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recording", type=Path, default=ROOT / "data" / "recordings" / "city-s1.npz")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--episode-s", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2, help="Trainer runs per path, in turn (local updates: 20x).")
    ap.add_argument("--baseline-rev", default=None, help="Also time the trainer of this git revision.")
    args = ap.parse_args()
    if args.episodes < 2:
        ap.error("--episodes must be at least 2 (the first is left out of the timing)")
    if not args.recording.is_file():
        print(f"error: no recording {args.recording} (record it: ./scripts/record_days.sh)", file=sys.stderr)
        raise SystemExit(2)
    torch.set_num_threads(1)
    keep_freed_memory()  # as the trainers do (twin_service.learn.offload_common)

    local = bench_local_update(args.clients, args.batch, 20 * args.repeats)
    for m, ms in local.items():
        print(f"local update ({args.clients} clients x {args.batch}), {m}: {ms:.1f} CPU ms")

    common = {
        "recordings": [str(args.recording.resolve())],
        "episodes": args.episodes,
        "episode_s": args.episode_s,
        "warmup_s": 30.0,
        "gamma": 0.0,  # as results/paper_b trains
        "learning_starts": 1000,
        "clients_per_tick": args.clients,
        "batch_size": args.batch,
        "progress": False,
        "seed": 1,
    }
    paths: dict[str, tuple[dict, Path]] = {
        "per-client": ({"local_method": "per-client"}, ROOT),
        "grouped": ({"local_method": "grouped"}, ROOT),
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline_rev:
            paths[args.baseline_rev] = ({}, export_revision(args.baseline_rev, Path(tmp) / "rev"))
        cpu: dict[str, list[float]] = {k: [] for k in paths}  # per simulated second, episodes after the first
        wall: dict[str, list[float]] = {k: [] for k in paths}
        process_cpu: dict[str, list[float]] = {k: [] for k in paths}  # whole process, set-up included
        phases: dict[str, dict[str, float]] = {}
        for r in range(args.repeats):
            order = list(paths) if r % 2 == 0 else list(reversed(paths))  # neither path always runs first
            for name in order:
                extra, pythonpath = paths[name]
                out = Path(tmp) / f"m{r}-{name.replace('/', '_')}"
                rows, total_cpu = run_trainer({**common, **extra, "out": str(out)}, pythonpath)
                sim_s = args.episode_s * (len(rows) - 1)
                wall[name].append((rows[-1]["wall_s"] - rows[0]["wall_s"]) / sim_s)
                if "cpu_s" in rows[0]:
                    cpu[name].append((rows[-1]["cpu_s"] - rows[0]["cpu_s"]) / sim_s)
                process_cpu[name].append(total_cpu)
                later = rows[1:]
                phases[name] = {k[5:-2]: sum(r[k] for r in later) / sim_s for k in later[0] if k.startswith("time_")}
                shown = f"CPU {cpu[name][-1]:.3f} s, " if cpu[name] else ""
                print(
                    f"trainer {name}: {shown}wall {wall[name][-1]:.3f} s per simulated second "
                    f"(process CPU {total_cpu:.0f} s)",
                    flush=True,
                )
    med = {k: statistics.median(v) for k, v in cpu.items() if v}
    for name, ph in phases.items():
        if ph:
            print(f"profile {name} (wall s per simulated second): " + ", ".join(f"{k} {v:.3f}" for k, v in ph.items()))
    print(f"wall_speedup={statistics.median(wall['per-client']) / statistics.median(wall['grouped']):.2f}")
    if args.baseline_rev:
        ratio = statistics.median(process_cpu[args.baseline_rev]) / statistics.median(process_cpu["grouped"])
        print(f"speedup_vs_{args.baseline_rev}={ratio:.2f}")
    print(f"local_update_speedup={local['per-client'] / local['grouped']:.2f}")
    print(f"local_update_speedup_vs_vmap={local['vmap'] / local['grouped']:.2f}")
    print(f"train_speedup={med['per-client'] / med['grouped']:.2f}")


if __name__ == "__main__":
    main()
