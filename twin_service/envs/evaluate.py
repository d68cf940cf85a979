"""Evaluate any policies, heuristic or trained, over held-out recordings (``twin-service evaluate``).

Each policy pair (migration x offloading) runs over each recording from its start, as the live bridge would
run that day: the engine's physics, the policies deciding every tick. After ``warmup_s`` the day is cut into
consecutive episodes of ``episode_s`` seconds, and each episode gets both papers' KPIs:

* paper A: mean total latency per vehicle-tick (Eq. 13), packet loss (the share of vehicle-ticks whose
  service failed, Eq. 14-15), load variance over servers (Eq. 16b), migrations, overloaded RSUs, twins on
  the satellite; the test reward (Eq. 22) and the objective (Eq. 21), both with the weights of
  ``[reward]`` and z-scores over fixed moments: those of the *reference* policy (the first migration policy
  listed) over the same episodes, so every policy is scored on one scale;
* paper B: mean cost (Eq. 22 of paper B), task success rate, delay and energy per task.

The offloading policy ``oracle`` (:data:`ORACLE`) is paper B's upper bound: every tick, each vehicle's best rho
found by search over the true state the task is processed in (its rate, host and the others' CPU share), the
others' choices fixed (:func:`twin_service.policies.oracle.best_response`). It needs the future, so only the
evaluation offers it: the engine runs with ``local-only`` and the oracle's outcome is scored after each tick.

The mean of each KPI over episodes comes with a 95 % confidence interval (Student's t over episodes).
Results: ``episodes.csv`` and ``episodes.json`` (one row per policy pair and episode), ``summary.csv``,
``summary.json`` and ``summary.md`` (mean and CI per pair), ``timeseries.csv`` (per tick), and plots.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin_service.config import BITS_PER_MB, OffloadParams, with_overrides
from twin_service.engine import Engine, EngineOutputs, PolicyDecisions
from twin_service.engine.recording import Recording, RecordingError
from twin_service.engine.replay import ReplayBackend
from twin_service.engine.schedule import EventSchedule
from twin_service.envs.sim import EnvOptions, check_replayable, recording_schedule, scenario_of
from twin_service.events import ServerInfo
from twin_service.physics import edge_cpu_share_hz
from twin_service.physics.offload import OffloadOutcome
from twin_service.policies.offload import task_outcome
from twin_service.policies.oracle import best_response
from twin_service.predict.registry import load_forecaster
from twin_service.scenario.folder import Scenario

ORACLE = "oracle"
"""The offloading upper bound evaluated after the fact (module docstring)."""

PAPER_A_KPIS = (
    "latency_mean_s",
    "packet_loss",
    "load_variance_mb2",
    "migrations_per_vehicle_tick",
    "overloaded_rsu_share",
    "satellite_share",
    "reward_eq22",
    "objective_eq21",
)
PAPER_B_KPIS = ("offload_cost_mean", "task_success_rate", "offload_delay_mean_s", "offload_energy_mean_j")
KPIS = PAPER_A_KPIS + PAPER_B_KPIS
HIGHER_IS_BETTER = {"reward_eq22", "objective_eq21", "task_success_rate"}


@dataclass
class EpisodeSums:
    """Sufficient statistics of one episode (the KPIs are affine in these, see :func:`episode_row`)."""

    ticks: int = 0
    vehicle_ticks: int = 0
    latency: float = 0.0
    latency_sq: float = 0.0
    host_load: float = 0.0
    host_load_sq: float = 0.0
    failures: int = 0
    migrations: int = 0
    variance_weighted: float = 0.0
    """Sum over ticks of (vehicles x load variance), bits^2."""
    variance: float = 0.0
    variance_sq: float = 0.0
    variance_mb2: float = 0.0
    overloaded: float = 0.0
    on_satellite: int = 0
    cost: float = 0.0
    success: int = 0
    delay: float = 0.0
    energy: float = 0.0

    def add(self, ctx: Any, offload: Any = None) -> None:
        m = ctx.migration
        n = len(m.latency_s)
        var = float(np.var(ctx.load_bits))
        self.ticks += 1
        self.vehicle_ticks += n
        self.latency += float(m.latency_s.sum())
        self.latency_sq += float((m.latency_s**2).sum())
        self.host_load += float(m.host_load_bits.sum())
        self.host_load_sq += float((m.host_load_bits**2).sum())
        self.failures += int(m.failed.sum())
        self.migrations += int(m.migrated.sum())
        self.variance_weighted += n * var
        self.variance += var
        self.variance_sq += var * var
        self.variance_mb2 += var / BITS_PER_MB**2
        self.overloaded += ctx.kpis["overloaded_rsu_share"]
        self.on_satellite += int(ctx.kpis["hosts_satellite"])
        out = offload if offload is not None else ctx.offload
        if out is not None:
            self.cost += float(out.cost.sum())
            self.success += int(out.success.sum())
            self.delay += float(out.delay_s.sum())
            self.energy += float(out.energy_j.sum())


@dataclass(frozen=True)
class Moments:
    """Mean and standard deviation of the z-scored quantities (the reference policy's)."""

    latency: tuple[float, float]
    host_load: tuple[float, float]
    variance: tuple[float, float]

    @classmethod
    def of(cls, sums: Sequence[EpisodeSums]) -> Moments:
        def ms(total: float, sq: float, n: int) -> tuple[float, float]:
            mean = total / max(n, 1)
            return mean, math.sqrt(max(sq / max(n, 1) - mean * mean, 0.0)) or 1.0

        vt = sum(s.vehicle_ticks for s in sums)
        ticks = sum(s.ticks for s in sums)
        return cls(
            ms(sum(s.latency for s in sums), sum(s.latency_sq for s in sums), vt),
            ms(sum(s.host_load for s in sums), sum(s.host_load_sq for s in sums), vt),
            ms(sum(s.variance for s in sums), sum(s.variance_sq for s in sums), ticks),
        )


@dataclass(frozen=True)
class EvalOptions:
    """How the days are cut into episodes, and the scenario variant (the environments' options)."""

    episode_s: float = 600.0
    warmup_s: float = 60.0
    env: EnvOptions = field(default_factory=EnvOptions)
    """Scenario variant: no UAVs, no satellite, churn, outage, overrides, predictor, mask (episode fields unused)."""
    seed: int = 0
    """Seeds the stochastic policies (greedy, random) and the server schedule."""
    begin_s: float | None = None
    """Evaluate from this sim time on (the warm-up starts here); None: the recording's start."""
    end_s: float | None = None
    """Evaluate up to this sim time; None: the recording's end."""


@dataclass
class EvaluationResult:
    rows: list[dict[str, Any]]
    """One row per policy pair and episode."""
    summary: list[dict[str, Any]]
    """Per policy pair: n episodes, and mean, CI half-width and std of every KPI."""
    timeseries: list[dict[str, Any]]
    reference: str
    moments: Moments


def pair_name(migration: str, offload: str) -> str:
    return f"{migration} + {offload}"


def run_day(
    scenario: Scenario,
    recording: Recording,
    migration: str,
    offload: str,
    options: EvalOptions,
    *,
    on_tick: Callable[[], None] | None = None,
) -> tuple[list[EpisodeSums], list[dict[str, Any]]]:
    """One policy pair over one recorded day: per-episode sums, and a per-tick series."""
    env = options.env
    params = scenario.params
    tick_s = params.simulation.tick_s
    oracle = offload == ORACLE
    decisions = PolicyDecisions(
        params,
        len(scenario.layout),
        migration,
        "local-only" if oracle else offload,
        seed=options.seed,
        models_dir=env.models_dir,
        check_param_hash=False,
    )
    forecaster = (
        None if env.predictor in (None, "persistence") else load_forecaster(env.predictor, params, env.models_dir)
    )
    span_begin = recording.begin_s if options.begin_s is None else max(options.begin_s, recording.begin_s)
    span_end = recording.end_s if options.end_s is None else min(options.end_s, recording.end_s)
    backend = ReplayBackend(recording, begin_s=span_begin if span_begin > recording.begin_s else None, roads=False)
    engine = Engine(
        params,
        scenario.layout,
        scenario.projection,
        backend,
        decisions,
        seed=int(recording.meta.seed),
        outputs=EngineOutputs(frame=False, offload=True),
        forecaster=forecaster,
        dynamic_mask=env.dynamic_mask,
    )
    servers = ServerInfo(tuple(scenario.layout.ids), tuple(str(t) for t in scenario.layout.tiers))
    check_replayable(env.events, servers)
    schedule = recording_schedule(EventSchedule(len(scenario.layout)), recording, servers, env.events)
    uavs = [int(i) for i in scenario.layout.uav_indices]
    if env.no_uavs:
        for i in uavs:
            schedule.switch_off(i)
    if env.no_satellite:
        schedule.switch_off(int(scenario.layout.satellite_index))
    first_s = span_begin + options.warmup_s
    n_episodes = int((span_end - first_s + 1e-9) // options.episode_s)
    if n_episodes < 1:
        raise RecordingError(
            f"{recording.path.name} holds {span_end - span_begin:g} s in the evaluated span: too short for a "
            f"{options.warmup_s:g} s warm-up and one {options.episode_s:g} s episode"
        )
    rng = np.random.default_rng(options.seed)
    if env.uav_churn is not None and uavs:
        for k in range(n_episodes):
            start = first_s + k * options.episode_s
            for i in rng.choice(uavs, size=min(env.uav_churn.appear, len(uavs)), replace=False):
                schedule.switch_off(int(i), start, start + rng.uniform(0.0, 0.5) * options.episode_s)
            for i in rng.choice(uavs, size=min(env.uav_churn.leave, len(uavs)), replace=False):
                schedule.switch_off(
                    int(i), start + rng.uniform(0.5, 1.0) * options.episode_s, start + options.episode_s
                )
    sums = [EpisodeSums() for _ in range(n_episodes)]
    series: list[dict[str, Any]] = []
    end_s = first_s + n_episodes * options.episode_s
    rsus = np.flatnonzero(np.array([t == "rsu" for t in scenario.layout.tiers]))
    pending: tuple[np.ndarray, dict[str, np.ndarray]] | None = None  # the oracle: last tick's keys and next tasks
    while backend.time_s + tick_s <= end_s + 1e-9:
        t_next = backend.time_s + tick_s
        k = int((t_next - first_s - 1e-9) // options.episode_s) if t_next > first_s else -1
        if env.rsu_outage is not None and k >= 0 and abs(t_next - (first_s + k * options.episode_s) - tick_s) < 1e-9:
            busiest = rsus[np.argsort(-engine.load_bits[rsus], kind="stable")][: env.rsu_outage.count]
            start = first_s + k * options.episode_s
            for i in busiest:
                schedule.switch_off(int(i), start + env.rsu_outage.start_s, start + env.rsu_outage.end_s)
        schedule.apply(engine, t_next)
        _, ctx = engine.tick()
        engine.apply(decisions.decide(ctx))
        best = None
        if oracle:
            best = oracle_outcome(pending, ctx, params.offload)
            keys = np.asarray(ctx.vehicle_keys).copy()
            pending = (keys, {n: np.asarray(ctx.offload_now[n]).copy() for n in ("data_bits", "cycles", "deadline_s")})
        if k >= 0:
            sums[k].add(ctx, best)
            series.append(
                {
                    "sim_time_s": ctx.sim_time_s,
                    "episode": k,
                    **{
                        key: ctx.kpis[key]
                        for key in ("vehicles", "latency_mean_s", "packet_loss", "load_variance_mb2", "migrations")
                    },
                    "offload_cost_mean": ctx.kpis.get("offload_cost_mean", float("nan")),
                    "task_success_rate": ctx.kpis.get("task_success_rate", float("nan")),
                }
            )
        if on_tick is not None:
            on_tick()
    return sums, series


def oracle_outcome(
    pending: tuple[np.ndarray, dict[str, np.ndarray]] | None, ctx: Any, params: OffloadParams
) -> OffloadOutcome:
    """The oracle's outcome of the tasks processed in this tick (module docstring).

    ``pending`` holds the previous tick's vehicle keys and the tasks that arrived then (processed now); this tick's
    context gives the rate each is processed at, its host and the host's CPU. A vehicle in its first tick runs its
    first task locally under every policy, so its outcome is the engine's.
    """
    now, host = ctx.offload_now, np.asarray(ctx.host)
    n = len(host)
    known = np.zeros(n, dtype=bool)
    task = {k: np.zeros(n) for k in ("data_bits", "cycles", "deadline_s")}
    if pending is not None and n and len(pending[0]):
        keys, tasks = pending
        order = np.argsort(keys, kind="stable")
        pos = np.minimum(np.searchsorted(keys, ctx.vehicle_keys, sorter=order), len(keys) - 1)
        rows = order[pos]
        known = keys[rows] == ctx.vehicle_keys
        for name in task:
            task[name] = np.where(known, tasks[name][rows], 0.0)
    inputs = {**{k: np.asarray(now[k], dtype=np.float64) for k in ("f_hz", "r_bps")}, **task}
    # vehicles in their first tick keep rho = 0: give them a dummy feasible task and no host
    fake = {k: np.where(known, v, 1.0) for k, v in inputs.items()}
    rho = best_response(fake, np.where(known, host, -1), np.asarray(now["host_cpu_hz"], dtype=np.float64), params)
    cpu = np.zeros(int(host.max()) + 1 if n else 1)
    cpu[host] = np.asarray(now["host_cpu_hz"], dtype=np.float64)
    share = edge_cpu_share_hz(host, rho, cpu)
    out = task_outcome(rho, fake, share, params)
    engine_out = ctx.offload
    return out._replace(
        cost=np.where(known, out.cost, engine_out.cost),
        success=np.where(known, out.success, engine_out.success),
        delay_s=np.where(known, out.delay_s, engine_out.delay_s),
        energy_j=np.where(known, out.energy_j, engine_out.energy_j),
    )


def episode_row(s: EpisodeSums, moments: Moments, weights: Any) -> dict[str, float]:
    vt = max(s.vehicle_ticks, 1)
    latency = s.latency / vt
    host_load = s.host_load / vt
    loss = s.failures / vt
    # The mean over vehicle-ticks of a z-scored quantity is the z-score of its mean (z is affine).
    z_lat = (latency - moments.latency[0]) / moments.latency[1]
    z_load = (host_load - moments.host_load[0]) / moments.host_load[1]
    z_var = (s.variance_weighted / vt - moments.variance[0]) / moments.variance[1]
    return {
        "vehicle_ticks": float(s.vehicle_ticks),
        "latency_mean_s": latency,
        "packet_loss": loss,
        "load_variance_mb2": s.variance_mb2 / max(s.ticks, 1),
        "migrations_per_vehicle_tick": s.migrations / vt,
        "overloaded_rsu_share": s.overloaded / max(s.ticks, 1),
        "satellite_share": s.on_satellite / vt,
        "reward_eq22": -(weights.w_latency * z_lat + weights.w_load * z_load + weights.w_failure * loss),
        "objective_eq21": -(weights.w_latency * z_lat + weights.w_load * z_var + weights.w_failure * loss),
        "offload_cost_mean": s.cost / vt,
        "task_success_rate": s.success / vt,
        "offload_delay_mean_s": s.delay / vt,
        "offload_energy_mean_j": s.energy / vt,
    }


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean, half-width of the ``level`` CI (Student's t over the values) and standard deviation."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return mean, float("nan"), float("nan")
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n))
    return mean, half, sd


def evaluate_policies(
    scenario: Scenario | str | Path | None,
    recordings: Sequence[str | Path],
    migration_policies: Sequence[str],
    offload_policies: Sequence[str],
    options: EvalOptions | None = None,
    *,
    on_tick: Callable[[], None] | None = None,
) -> EvaluationResult:
    """Every pair of the given migration and offloading policies over every recording (module docstring)."""
    options = options or EvalOptions()
    if not migration_policies or not offload_policies:
        raise ValueError("give at least one migration and one offloading policy")
    base = scenario if isinstance(scenario, Scenario) else scenario_of(recordings, scenario)
    sc = base.with_params(with_overrides(base.params, options.env.overrides))
    opened = [Recording(p) for p in recordings]
    try:
        for rec in opened:
            base.check_recording(rec.path, rec.meta.mobility_hash, rec.meta.param_hash, rec.meta.scenario)
        pairs = [(m, o) for m in migration_policies for o in offload_policies]
        runs: dict[tuple[str, str], list[tuple[str, int, EpisodeSums]]] = {}
        series: list[dict[str, Any]] = []
        for m, o in pairs:
            found = []
            for rec in opened:
                sums, ticks = run_day(sc, rec, m, o, options, on_tick=on_tick)
                found += [(rec.path.name, k, s) for k, s in enumerate(sums)]
                series += [{"pair": pair_name(m, o), "recording": rec.path.name, **t} for t in ticks]
            runs[(m, o)] = found
    finally:
        for rec in opened:
            rec.close()
    reference = pairs[0]
    moments = Moments.of([s for _, _, s in runs[reference]])
    weights = sc.params.reward
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for (m, o), found in runs.items():
        pair_rows = []
        for name, k, s in found:
            rec = opened[[r.path.name for r in opened].index(name)]
            begin = rec.begin_s if options.begin_s is None else max(options.begin_s, rec.begin_s)
            start = begin + options.warmup_s + k * options.episode_s
            row = {
                "pair": pair_name(m, o),
                "migration_policy": m,
                "offload_policy": o,
                "recording": name,
                "episode": k,
                "start_s": start,
                **episode_row(s, moments, weights),
            }
            pair_rows.append(row)
        rows += pair_rows
        entry: dict[str, Any] = {
            "pair": pair_name(m, o),
            "migration_policy": m,
            "offload_policy": o,
            "episodes": len(pair_rows),
        }
        for key in KPIS:
            mean, half, sd = confidence_interval([r[key] for r in pair_rows])
            entry[key] = mean
            entry[f"{key}_ci95"] = half
            entry[f"{key}_std"] = sd
        summary.append(entry)
    return EvaluationResult(rows, summary, series, pair_name(*reference), moments)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _fmt(value: float, half: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    digits = 4 if abs(value) < 10 else 2
    return f"{value:.{digits}f} ± {half:.{digits}f}" if math.isfinite(half) else f"{value:.{digits}f}"


def markdown_table(summary: list[dict[str, Any]], kpis: Sequence[str] = KPIS) -> str:
    """Mean ± 95 % CI half-width of each KPI per policy pair; the best mean of each column in bold."""
    header = "| policy (migration + offload) | episodes | " + " | ".join(kpis) + " |"
    lines = [header, "|" + "---|" * (len(kpis) + 2)]
    best = {}
    for key in kpis:
        values = [e[key] for e in summary if math.isfinite(e[key])]
        if values:
            best[key] = max(values) if key in HIGHER_IS_BETTER else min(values)
    for e in summary:
        cells = []
        for key in kpis:
            text = _fmt(e[key], e[f"{key}_ci95"])
            cells.append(f"**{text}**" if key in best and e[key] == best[key] and len(summary) > 1 else text)
        lines.append(f"| {e['pair']} | {e['episodes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(result: EvaluationResult, out: Path, meta: dict[str, Any]) -> list[Path]:
    """The tables, JSON and plots into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    _write_csv(out / "episodes.csv", result.rows)
    (out / "episodes.json").write_text(json.dumps(result.rows, indent=1) + "\n")
    _write_csv(out / "summary.csv", result.summary)
    info = {**meta, "reference": result.reference, "moments": asdict(result.moments)}
    (out / "summary.json").write_text(json.dumps({"meta": info, "policies": result.summary}, indent=1) + "\n")
    (out / "summary.md").write_text(
        f"Reward and objective z-scores use the moments of the reference pair `{result.reference}`.\n"
        "Mean ± 95 % CI half-width over episodes (Student's t); best mean in bold.\n\n"
        "Paper A (twin migration)\n\n"
        + markdown_table(result.summary, PAPER_A_KPIS)
        + "\nPaper B (offloading)\n\n"
        + markdown_table(result.summary, PAPER_B_KPIS)
    )
    _write_csv(out / "timeseries.csv", result.timeseries)
    written += [out / n for n in ("episodes.csv", "episodes.json", "summary.csv", "summary.json", "summary.md")]
    written += plot_results(result, out)
    return written


def plot_results(result: EvaluationResult, out: Path) -> list[Path]:
    """Bar charts with CIs per KPI, and the per-tick latency and packet loss of the first recording."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [e["pair"] for e in result.summary]
    files = []
    for group, kpis in (("paper_a", PAPER_A_KPIS), ("paper_b", PAPER_B_KPIS)):
        cols = 4
        rows = math.ceil(len(kpis) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
        for ax, key in zip(axes.flat, kpis, strict=False):
            means = [e[key] for e in result.summary]
            errs = [e[f"{key}_ci95"] if math.isfinite(e[f"{key}_ci95"]) else 0.0 for e in result.summary]
            ax.bar(range(len(names)), means, yerr=errs, capsize=3, color=[f"C{i}" for i in range(len(names))])
            ax.set_title(key, fontsize=9)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
        for ax in list(axes.flat)[len(kpis) :]:
            ax.axis("off")
        fig.tight_layout()
        path = out / f"{group}_kpis.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        files.append(path)
    if result.timeseries:
        first = result.timeseries[0]["recording"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
        for i, name in enumerate(names):
            pts = [t for t in result.timeseries if t["pair"] == name and t["recording"] == first]
            x = [t["sim_time_s"] for t in pts]
            axes[0].plot(x, [t["latency_mean_s"] for t in pts], lw=0.8, color=f"C{i}", label=name)
            axes[1].plot(x, [t["packet_loss"] for t in pts], lw=0.8, color=f"C{i}", label=name)
        axes[0].set_ylabel("mean latency per vehicle (s)")
        axes[1].set_ylabel("packet loss (share of vehicles)")
        for ax in axes:
            ax.set_xlabel(f"sim time (s), {first}")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        path = out / "timeseries.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        files.append(path)
    return files
