"""What the report needs, per budget: recordings, models, evaluation conditions and the arms of every figure.

Nothing here runs anything: :mod:`twin_service.report.pipeline` makes what a plan names (or reuses it) and
:mod:`twin_service.report.claims` reads the results.

Budgets
-------
``smoke``
    The whole pipeline in a few minutes on 2 cores, for CI: three short recordings of the city (days 1-3, the
    first 140 s at a third of the demand: day 1 trains, 2 validates, 3 is held out) and one of the rural
    scenario, tiny trainings, two 40 s episodes per run. Its verdicts test the code, not the papers.
``quick``
    Real days (``data/recordings/city-sN.npz``, days 1-6 train, 7 validates, 8 and 9 held out), the models
    as committed (trained only when missing), two 300 s episodes of each held-out day's busy span, the ends of
    Fig. 7's sweeps. An hour or two.
``full``
    What ``results/report/`` holds: held-out days 8-12, ten 300 s episodes of the busy span (1500-2160 s of
    each day, after a 60 s warm-up), DM-MAPPO seeds 1-3, paper A's MLP actor trained for 49,152 ticks, Fig. 7's
    whole sweep, paper B's models trained on days 1-6 (seeds 1-3, issue 21's full budget). Hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from twin_service.config import REPO_ROOT

PAPER_A_FIGURES = ("table2", "fig6", "mlp", "fig7", "fig8", "fig9", "fig10", "hamburg")
PAPER_B_FIGURES = ("b-main", "b-fig2", "b-fig3", "b-curves")
FIGURES = PAPER_A_FIGURES + PAPER_B_FIGURES
"""Every part of the report, in order (``--only`` takes these names, or ``paper-a`` / ``paper-b``)."""

HEURISTICS_A = ("least-loaded", "sticky-nearest", "greedy", "random")
OFFLOAD_ALGOS = ("af-marl", "afl-maddpg", "sfl-ppo", "ddqn")
OFFLOAD_LABEL = {"af-marl": "AF-MARL", "afl-maddpg": "AFL-MADDPG", "sfl-ppo": "SFL-PPO", "ddqn": "DDQN"}
OFFLOAD_HEURISTICS = {"nearest-least-loaded": "non-DRL", "local-only": "local-only", "oracle": "oracle"}
PREDICTOR_NETWORKS = ("lstm-transformer", "lstm", "gru", "cnn-lstm", "cnn-gru")
NETWORK_LABEL = {
    "lstm-transformer": "LSTM-based Transformer",
    "lstm": "LSTM",
    "gru": "GRU",
    "cnn-lstm": "CNN-LSTM",
    "cnn-gru": "CNN-GRU",
}
AVAILABLE = ("reused", "trained", "as committed")
"""Model statuses (``models.csv``) whose weights the report evaluates."""
SERVED_PREDICTOR = "city-predictor"
"""The workload predictor the prediction variants are trained and evaluated with (Table II's network, seed 1)."""


@dataclass(frozen=True)
class Budget:
    """Sizes of everything the report runs (module docstring)."""

    name: str
    train_days: tuple[int, ...]
    val_day: int
    test_days: tuple[int, ...]
    record_end_s: float | None
    """Recordings stop here (None: the whole day)."""
    record_scale: float
    span: tuple[float, float]
    """The part of each held-out day every figure is evaluated over (s); the warm-up starts at its beginning."""
    warmup_s: float
    episode_s: float
    dm_mappo_seeds: tuple[int, ...]
    main_ticks: int
    masac_ticks: int
    ablation_ticks: int
    mlp_ticks: int
    fig7_sizes_mb: tuple[float, ...]
    fig7_rates_mbps: tuple[float, ...]
    rural_days: tuple[int, ...]
    hamburg_days: tuple[int, ...]
    hamburg_episode_s: float
    offload_seeds: tuple[int, ...]
    offload_episodes: int
    offload_episode_s: float
    offload_train_days: tuple[int, ...]
    sweep_episodes: int
    sweep_episode_s: float
    fig3_task_mb: tuple[float, ...]
    fig3_rsu_ghz: tuple[float, ...]
    fig3_traffic: tuple[float, ...]
    predictor_seeds: tuple[int, ...]
    predictor_train: tuple[str, ...]
    """Extra ``predictor train`` options (the budget's training length)."""
    predictor_block_s: float
    """Table II: the held-out days are cut into blocks of this length, the episodes of its intervals."""
    hps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per trainer, ``--hp`` options of its trainings (the smoke budget's short warm-ups and validation)."""
    require_offload_days: bool = False
    """Reuse paper B models only if trained on ``offload_train_days`` (the full budget: days 1-6)."""
    min_mlp_ticks: int = 0
    """Reuse paper A's MLP actor only if trained for at least this many ticks."""
    separate_models: bool = False
    """Models and recordings in the work folder, not in ``models/`` and ``data/recordings/`` (smoke)."""


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        name="smoke",
        train_days=(1,),
        val_day=2,
        test_days=(3,),
        record_end_s=140.0,
        record_scale=0.3,
        span=(40.0, 140.0),
        warmup_s=20.0,
        episode_s=40.0,
        dm_mappo_seeds=(1, 2),
        main_ticks=32,
        masac_ticks=32,
        ablation_ticks=16,
        mlp_ticks=32,
        fig7_sizes_mb=(40.0, 120.0),
        fig7_rates_mbps=(1.0, 3.0),
        rural_days=(3,),
        hamburg_days=(),
        hamburg_episode_s=40.0,
        offload_seeds=(1,),
        offload_episodes=1,
        offload_episode_s=20.0,
        offload_train_days=(1,),
        sweep_episodes=1,
        sweep_episode_s=10.0,
        fig3_task_mb=(0.5, 2.0),
        fig3_rsu_ghz=(2.5, 3.5),
        fig3_traffic=(0.5, 1.5),
        predictor_seeds=(1,),
        predictor_train=("--epochs", "1", "--steps-per-epoch", "2", "--max-train-s", "5"),
        predictor_block_s=40.0,
        hps={
            "dm-mappo": (
                "n_envs=1",
                "rollout_ticks=16",
                "episode_s=60",
                "warmup_s=10",
                "reference_ticks=20",
                "val_ticks=30",
                "val_start_s=60",
                "val_every=1",
            ),
            "masac": (
                "episode_s=60",
                "warmup_s=10",
                "reference_ticks=20",
                "val_ticks=30",
                "val_start_s=60",
                "val_every=16",
                "learning_starts=8",
            ),
            "af-marl": ("warmup_s=5", "learning_starts=50", "actor_starts=5"),
            "afl-maddpg": ("warmup_s=5", "learning_starts=50"),
            "sfl-ppo": ("warmup_s=5", "rollout_ticks=5"),
            "ddqn": ("warmup_s=5", "learning_starts=50"),
        },  # fmt: skip
        separate_models=True,
    ),
    "quick": Budget(
        name="quick",
        train_days=(1, 2, 3, 4, 5, 6),
        val_day=7,
        test_days=(8, 9),
        record_end_s=None,
        record_scale=1.0,
        span=(1500.0, 2160.0),
        warmup_s=60.0,
        episode_s=300.0,
        dm_mappo_seeds=(1, 2),
        main_ticks=12_288,
        masac_ticks=6_144,
        ablation_ticks=4_096,
        mlp_ticks=4_096,
        fig7_sizes_mb=(40.0, 120.0),
        fig7_rates_mbps=(1.0, 3.0),
        rural_days=(8, 9),
        hamburg_days=(1, 2),
        hamburg_episode_s=300.0,
        offload_seeds=(1, 2),
        offload_episodes=8,
        offload_episode_s=120.0,
        offload_train_days=(1,),
        sweep_episodes=3,
        sweep_episode_s=60.0,
        fig3_task_mb=(0.5, 2.0),
        fig3_rsu_ghz=(2.5, 3.5),
        fig3_traffic=(0.5, 1.5),
        predictor_seeds=(1,),
        predictor_train=(),
        predictor_block_s=600.0,
    ),
    "full": Budget(
        name="full",
        train_days=(1, 2, 3, 4, 5, 6),
        val_day=7,
        test_days=(8, 9, 10, 11, 12),
        record_end_s=None,
        record_scale=1.0,
        span=(1500.0, 2160.0),
        warmup_s=60.0,
        episode_s=300.0,
        dm_mappo_seeds=(1, 2, 3),
        main_ticks=12_288,
        masac_ticks=6_144,
        ablation_ticks=4_096,
        mlp_ticks=49_152,
        fig7_sizes_mb=(40.0, 60.0, 80.0, 100.0, 120.0),
        fig7_rates_mbps=(1.0, 1.5, 2.0, 2.5, 3.0),
        rural_days=(8, 9, 10, 11, 12),
        hamburg_days=(1, 2, 3, 4),
        hamburg_episode_s=300.0,
        offload_seeds=(1, 2, 3),
        offload_episodes=30,
        offload_episode_s=300.0,
        offload_train_days=(1, 2, 3, 4, 5, 6),
        sweep_episodes=10,
        sweep_episode_s=300.0,
        fig3_task_mb=(0.5, 1.0, 2.0),
        fig3_rsu_ghz=(2.5, 3.0, 3.5),
        fig3_traffic=(0.5, 1.0, 1.5),
        predictor_seeds=(1, 2, 3),
        predictor_train=(),
        predictor_block_s=600.0,
        require_offload_days=True,
        min_mlp_ticks=49_152,
    ),
}


# --------------------------------------------------------------------------------------------
# Things to make
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingSpec:
    """A recorded day the report needs (made with ``twin-service record`` when missing)."""

    scenario: str
    """``city``, ``rural`` or an imported scenario's folder."""
    seed: int
    path: str
    """Where it is, relative to the repository (or absolute, in a work folder)."""
    end_s: float | None = None
    scale: float = 1.0

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def command(self) -> list[str]:
        cmd = ["record", "--scenario", self.scenario, "--seed", str(self.seed)]
        if self.end_s is not None:
            cmd += ["--end", f"{self.end_s:g}"]
        if self.scale != 1.0:
            cmd += ["--scale", f"{self.scale:g}"]
        return [*cmd, "--out", self.path]


@dataclass(frozen=True)
class ModelSpec:
    """A trained model: the command that makes it, and what an existing one must satisfy to be reused."""

    name: str
    folder: str
    command: tuple[str, ...]
    """``twin-service`` arguments that train it (run when no reusable model is there)."""
    recordings: tuple[str, ...]
    """The recordings it trains and validates on (made first)."""
    requires: tuple[tuple[str, str], ...] = ()
    """Options the manifest's recorded command must carry to be reused: (option, value); value ``>=N`` for a
    minimum, ``*`` for any value (the option present), ``!`` for the option absent."""
    kind: str = "policy"
    """``policy`` or ``predictor``."""


@dataclass(frozen=True)
class Condition:
    """How held-out episodes are evaluated: which days, which span, which variant of the scenario."""

    name: str
    recordings: tuple[str, ...]
    span: tuple[float, float] | None
    warmup_s: float
    episode_s: float
    no_uavs: bool = False
    no_satellite: bool = False
    dynamic_mask: bool = True
    uav_churn: tuple[int, int] | None = None
    overrides: tuple[tuple[str, str, float | tuple[float, float]], ...] = ()
    """(section, key, value) scenario parameter changes."""
    predictor: str = "persistence"
    seed: int = 0

    def override_dict(self) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for section, key, value in self.overrides:
            out.setdefault(section, {})[key] = list(value) if isinstance(value, tuple) else value
        return out

    def command(self, policies: list[tuple[str, str]], out: str = "DIR") -> list[str]:
        """The ``twin-service evaluate`` command that evaluates ``policies`` (migration, offload) here."""
        migration = list(dict.fromkeys(m for m, _ in policies))
        offload = list(dict.fromkeys(o for _, o in policies))
        cmd = ["evaluate", "--recordings", ",".join(self.recordings)]
        cmd += ["--migration-policy", ",".join(migration), "--offload-policy", ",".join(offload)]
        if self.span is not None:
            cmd += ["--begin", f"{self.span[0]:g}", "--end", f"{self.span[1]:g}"]
        cmd += ["--warmup-s", f"{self.warmup_s:g}", "--episode-s", f"{self.episode_s:g}"]
        if self.no_uavs:
            cmd.append("--no-uavs")
        if self.no_satellite:
            cmd.append("--no-satellite")
        if not self.dynamic_mask:
            cmd.append("--no-mask")
        if self.uav_churn:
            cmd += ["--uav-churn", f"{self.uav_churn[0]},{self.uav_churn[1]}"]
        if self.predictor != "persistence":
            cmd += ["--predictor", self.predictor]
        for section, key, value in self.overrides:
            text = f"[{value[0]:g}, {value[1]:g}]" if isinstance(value, tuple) else f"{value:g}"
            cmd += ["--set", f"{section}.{key}={text}"]
        if self.seed:
            cmd += ["--seed", str(self.seed)]
        return [*cmd, "--out", out]


@dataclass(frozen=True)
class Arm:
    """One line of a figure: a policy (one model per seed) under a condition."""

    label: str
    condition: str
    migration: tuple[str, ...]
    """One migration policy per seed (a heuristic: one name)."""
    offload: tuple[str, ...] = ("nearest-least-loaded",)
    """One offloading policy per seed, or one for all."""

    def runs(self) -> list[tuple[str, str]]:
        """(migration, offload) per seed."""
        n = max(len(self.migration), len(self.offload))
        pick = lambda xs, i: xs[i] if len(xs) > 1 else xs[0]  # noqa: E731
        return [(pick(self.migration, i), pick(self.offload, i)) for i in range(n)]

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for pair in self.runs() for n in pair))


@dataclass(frozen=True)
class Figure:
    """A figure's arms; z-scored KPIs use the moments of ``reference`` (its first seed)."""

    name: str
    title: str
    paper: str
    arms: tuple[Arm, ...]
    reference: str | None = None
    """The label of the arm whose moments z-score the reward (Eq. 22) and objective (Eq. 21)."""

    def arm(self, label: str) -> Arm:
        for a in self.arms:
            if a.label == label:
                return a
        raise KeyError(f"{self.name} has no arm {label!r}")


@dataclass(frozen=True)
class Reductions:
    """Where a report runs less than its budget (``--days``, ``--as-committed``), stated in the document.

    ``days``: per part, the held-out days its figures are evaluated on (a subset of the budget's; the Hamburg
    part: of its imported days). ``as_committed``: parts whose models are used as they are in the models folder
    and never trained; a model missing there is reported missing, and a seeded arm keeps the seeds that exist.
    """

    days: dict[str, tuple[int, ...]] = field(default_factory=dict)
    as_committed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.days or self.as_committed)

    def options(self) -> list[str]:
        """The ``twin-service report`` options that state these reductions."""
        out = []
        for part, days in self.days.items():
            out += ["--days", f"{part}={','.join(map(str, days))}"]
        if self.as_committed:
            out += ["--as-committed", ",".join(p for p in FIGURES if p in self.as_committed)]
        return out


def parse_days(values: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``--days PART=D,D,...`` (repeatable) -> {part: days}; ValueError naming the bad value."""
    out: dict[str, tuple[int, ...]] = {}
    for value in values or ():
        part, eq, days = value.partition("=")
        part = part.strip()
        if not eq or part not in FIGURES or part == "table2":
            raise ValueError(f"--days {value!r}: write PART=D,D,... with PART one of {', '.join(FIGURES[1:])}")
        try:
            out[part] = tuple(sorted({int(d) for d in days.split(",") if d.strip()}))
        except ValueError:
            raise ValueError(f"--days {value!r}: the days are whole numbers (8,9)") from None
        if not out[part] or min(out[part]) < 1:
            raise ValueError(f"--days {value!r}: give at least one day, numbered from 1")
    return out


@dataclass
class Plan:
    """Everything one budget needs (built by :func:`make_plan`)."""

    budget: Budget
    work: Path
    models_dir: Path
    recordings: dict[str, RecordingSpec] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    needs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per report part: the model names it needs (trained in this order)."""
    predictors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Table II: network -> predictor model names (one per seed)."""
    hamburg_dir: str | None = None
    reductions: Reductions = field(default_factory=Reductions)

    def days_of(self, condition: str) -> tuple[int, ...]:
        """The days (recording seeds) a condition evaluates."""
        return tuple(self.recordings[p].seed for p in self.conditions[condition].recordings)

    def rel(self, path: Path | str) -> str:
        p = Path(path)
        return str(p.relative_to(REPO_ROOT)) if p.is_absolute() and p.is_relative_to(REPO_ROOT) else str(p)


def _slug(value: float) -> str:
    return f"{value:g}".replace(".", "p")


def make_plan(  # noqa: PLR0915 - one place lists it all
    budget: Budget, work: Path, models_dir: Path, reductions: Reductions | None = None
) -> Plan:
    """The recordings, models, conditions and figures of a budget (module docstring), less its reductions."""
    b = budget
    plan = Plan(b, work, models_dir, reductions=reductions or Reductions())
    plan = _make(plan)
    _reduce(plan)
    return plan


def _reduce(plan: Plan) -> None:
    """Each part named by ``--days`` gets its own copies of its figures' conditions, on those days only (stored
    runs are keyed by content, not by condition name, so they are shared with the whole conditions)."""
    for part, days in plan.reductions.days.items():
        figure = plan.figures.get(part)
        if figure is None:
            continue
        arms = []
        for arm in figure.arms:
            c = plan.conditions[arm.condition]
            kept = tuple(p for p in c.recordings if plan.recordings[p].seed in days)
            if not kept:
                have = ", ".join(str(plan.recordings[p].seed) for p in c.recordings)
                raise ValueError(f"--days {part}={','.join(map(str, days))}: {c.name} is evaluated on days {have}")
            name = f"{c.name}@{'-'.join(map(str, days))}" if kept != c.recordings else c.name
            plan.conditions.setdefault(name, replace(c, name=name, recordings=kept))
            arms.append(replace(arm, condition=name))
        plan.figures[part] = replace(figure, arms=tuple(arms))
    # a recording no condition or model needs any more is not made
    needed = {p for c in plan.conditions.values() for p in c.recordings if _used(plan, c.name)}
    needed |= {p for m in plan.models.values() for p in m.recordings}
    needed |= set(plan.conditions["city"].recordings)  # Table II
    for path in list(plan.recordings):
        if path not in needed:
            del plan.recordings[path]


def _used(plan: Plan, condition: str) -> bool:
    return any(a.condition == condition for f in plan.figures.values() for a in f.arms)


def _make(plan: Plan) -> Plan:  # noqa: PLR0915 - one place lists it all
    b = plan.budget
    work, models_dir = plan.work, plan.models_dir
    rec_dir = (work / "recordings") if b.separate_models else (REPO_ROOT / "data" / "recordings")

    def rec(scenario: str, seed: int, end_s: float | None = b.record_end_s, scale: float = b.record_scale) -> str:
        name = Path(scenario).name
        stem = f"{name}-s{seed}"
        if (end_s, scale) != (b.record_end_s, b.record_scale):  # a part of a day, or another demand scale
            stem += f"-x{scale:g}" + (f"-{end_s:g}" if end_s is not None else "")
        path = plan.rel(rec_dir / f"{stem}.npz")
        plan.recordings[path] = RecordingSpec(scenario, seed, path, end_s, scale)
        return path

    train = [rec("city", d) for d in b.train_days]
    val = rec("city", b.val_day)
    test = tuple(rec("city", d) for d in b.test_days)
    mdir = plan.rel(models_dir)

    # ---- paper A: models ----------------------------------------------------------------------
    def migration(name: str, algo: str, ticks: int, seed: int, *extra: str, requires=()) -> str:  # noqa: ANN001
        cmd = ["train", algo, "--recordings", ",".join(train), "--val-recordings", val, "--out", f"{mdir}/{name}"]
        cmd += ["--seed", str(seed), "--total-ticks", str(ticks), *extra]
        for hp in b.hps.get(algo, ()):
            cmd += ["--hp", hp]
        plan.models[name] = ModelSpec(name, f"{mdir}/{name}", tuple(cmd), (*train, val), tuple(requires))
        return name

    pred_name = SERVED_PREDICTOR
    dm = tuple(
        migration("dm-mappo-city" if s == 1 else f"dm-mappo-city-s{s}", "dm-mappo", b.main_ticks, s,
                  requires=(("--arch", "!"), ("--no-mask", "!"), ("--predictor", "!")))
        for s in b.dm_mappo_seeds
    )  # fmt: skip
    masac = migration("masac-city", "masac", b.masac_ticks, 1, requires=(("--no-mask", "!"), ("--predictor", "!")))
    mlp = migration(
        "mappo-paper-city", "dm-mappo", b.mlp_ticks, 1, "--arch", "paper",
        requires=(("--arch", "paper"), ("--total-ticks", f">={b.min_mlp_ticks}")),
    )  # fmt: skip
    dm_pred = migration(
        "dm-mappo-pred-city", "dm-mappo", b.ablation_ticks, 1, "--predictor", pred_name,
        requires=(("--predictor", pred_name),),
    )  # fmt: skip
    masac_pred = migration(
        "masac-pred-city",
        "masac",
        b.ablation_ticks,
        1,
        "--predictor",
        pred_name,
        requires=(("--predictor", pred_name),),
    )
    dm_nomask = migration(
        "mappo-nomask-city", "dm-mappo", b.ablation_ticks, 1, "--no-mask", requires=(("--no-mask", "*"),)
    )
    masac_nomask = migration(
        "masac-nomask-city", "masac", b.ablation_ticks, 1, "--no-mask", requires=(("--no-mask", "*"),)
    )

    # ---- Table II: predictors ------------------------------------------------------------------------
    pred_days = [*train, val]
    for net in PREDICTOR_NETWORKS:
        names = []
        for s in b.predictor_seeds:
            if net == "lstm-transformer" and s == 1:
                name, folder = pred_name, f"{mdir}/{pred_name}"
            else:
                name = f"{net}-s{s}"
                # Table II's networks beside the served models, one folder down (no registry lists them); shared by
                # the quick and full budgets (what a predictor learns does not depend on the held-out days)
                folder = f"{mdir}/table2/{name}" if not b.separate_models else f"{mdir}/{name}"
            cmd = ["predictor", "train", "--out", folder, "--recordings", ",".join(pred_days)]
            cmd += ["--val-days", str(b.val_day), "--test-days", ",".join(map(str, b.test_days))]
            cmd += ["--network", net, "--horizon", "1", "--seed", str(s), *b.predictor_train]
            plan.models[name] = ModelSpec(
                name, folder, tuple(cmd), tuple(pred_days), (("--network", net), ("--horizon", "1")), kind="predictor"
            )
            names.append(name)
        plan.predictors[net] = tuple(names)

    # ---- paper A: conditions ----------------------------------------------------------------------
    def cond(name: str, recordings: tuple[str, ...] = test, **kw) -> str:  # noqa: ANN003
        kw.setdefault("span", b.span)
        kw.setdefault("warmup_s", b.warmup_s)
        kw.setdefault("episode_s", b.episode_s)
        plan.conditions[name] = Condition(name, recordings, **kw)
        return name

    base = cond("city")
    pred = cond("city-prediction", predictor=pred_name)
    nomask = cond("city-no-mask", dynamic_mask=False)
    no_uavs = cond("city-no-uavs", no_uavs=True)
    no_sat = cond("city-no-satellite", no_satellite=True)
    churn = cond("city-uav-churn", uav_churn=(5, 6))
    rural_days = tuple(rec("rural", d) for d in b.rural_days)
    rural = cond("rural", rural_days)
    rural_no_sat = cond("rural-no-satellite", rural_days, no_satellite=True)

    def arm(label: str, condition: str, *migration_names: str) -> Arm:
        return Arm(label, condition, tuple(migration_names) or (label,))

    def heuristics(condition: str, names=HEURISTICS_A) -> list[Arm]:  # noqa: ANN001
        return [arm(h, condition) for h in names]

    paper4 = ("least-loaded", "greedy", "random")
    plan.figures["fig6"] = Figure(
        "fig6", "Fig. 6: prediction, and every algorithm on held-out days", "A",
        (arm("DM-MAPPO", base, *dm), arm("MASAC", base, masac),
         arm("DM-MAPPO + prediction", pred, dm_pred), arm("MASAC + prediction", pred, masac_pred),
         *heuristics(base)),
        reference="least-loaded",
    )  # fmt: skip
    plan.needs["fig6"] = (*dm, masac, pred_name, dm_pred, masac_pred)
    # Paper A's own actor apart from Fig. 6: trained for longer (the full budget), on its own schedule.
    plan.needs["mlp"] = (mlp, dm[0], masac)
    plan.figures["mlp"] = Figure(
        "mlp", "Paper A's MLP actor", "A",
        (arm("MAPPO (paper actor)", base, mlp), arm("DM-MAPPO", base, dm[0]), arm("MASAC", base, masac),
         arm("least-loaded", base)),
        reference="least-loaded",
    )  # fmt: skip
    fig7_arms = []
    for size in b.fig7_sizes_mb:
        c = cond(f"city-migration-{_slug(size)}mb", overrides=(("task", "migration_size_mb", size),))
        fig7_arms += [arm(f"DM-MAPPO @ {size:g} MB", c, dm[0]), arm(f"MASAC @ {size:g} MB", c, masac)]
        fig7_arms += [arm(f"{h} @ {size:g} MB", c, h) for h in paper4]
    for rate in b.fig7_rates_mbps:
        c = cond(f"city-data-{_slug(rate)}mbps", overrides=(("task", "data_size_mb", rate),))
        fig7_arms += [arm(f"DM-MAPPO @ {rate:g} MB/s", c, dm[0]), arm(f"MASAC @ {rate:g} MB/s", c, masac)]
        fig7_arms += [arm(f"{h} @ {rate:g} MB/s", c, h) for h in paper4]
    fig7_arms.append(arm("least-loaded", base))
    plan.figures["fig7"] = Figure(
        "fig7", "Fig. 7: migration size and generated data (the city-trained policies, not retrained)", "A",
        tuple(fig7_arms), reference="least-loaded",
    )  # fmt: skip
    plan.needs["fig7"] = (dm[0], masac)
    four = (("DM-MAPPO", dm[0]), ("MASAC", masac), ("greedy", "greedy"), ("random", "random"))
    fig8_arms = []
    for c, tag in ((base, ""), (no_uavs, " (no UAVs)"), (no_sat, " (no satellite)"), (rural, " (rural)"),
                   (rural_no_sat, " (rural, no satellite)")):  # fmt: skip
        fig8_arms += [arm(f"{label}{tag}", c, name) for label, name in (*four, ("least-loaded", "least-loaded"))]
    plan.figures["fig8"] = Figure(
        "fig8", "Fig. 8: without UAVs, without the satellite, city against rural", "A", tuple(fig8_arms),
        reference="least-loaded",
    )  # fmt: skip
    plan.needs["fig8"] = (dm[0], masac)
    fig9_arms = [arm(label, base, name) for label, name in four]
    fig9_arms += [
        arm(f"{label} (no mask)", nomask, name)
        for label, name in (
            ("DM-MAPPO", dm_nomask),
            ("MASAC", masac_nomask),
            ("greedy", "greedy"),
            ("random", "random"),
        )
    ]
    fig9_arms.append(arm("least-loaded", base))
    plan.figures["fig9"] = Figure(
        "fig9", "Fig. 9: every algorithm with and without the dynamic mask", "A", tuple(fig9_arms),
        reference="least-loaded",
    )  # fmt: skip
    plan.needs["fig9"] = (dm[0], masac, dm_nomask, masac_nomask)
    plan.figures["fig10"] = Figure(
        "fig10", "Fig. 10: 5 UAVs appear and 6 leave in every episode", "A",
        tuple(arm(label, churn, name) for label, name in (*four, ("least-loaded", "least-loaded"))),
        reference="least-loaded",
    )  # fmt: skip
    plan.needs["fig10"] = (dm[0], masac)
    if b.hamburg_days:
        hamburg = plan.rel(REPO_ROOT / "data" / "scenarios" / "hamburg")
        plan.hamburg_dir = hamburg
        days = tuple(rec(hamburg, d, end_s=None, scale=1.0) for d in b.hamburg_days)
        hb = cond("hamburg", days, span=None, warmup_s=60.0, episode_s=b.hamburg_episode_s)
        plan.figures["hamburg"] = Figure(
            "hamburg", "Beyond the papers: the city-trained policy on Hamburg, not retrained", "A",
            (arm("DM-MAPPO", hb, dm[0]), *heuristics(hb)), reference="least-loaded",
        )  # fmt: skip
        plan.needs["hamburg"] = (dm[0],)
    plan.needs["table2"] = tuple(n for names in plan.predictors.values() for n in names)

    # ---- paper B ---------------------------------------------------------------------------------------
    off_train = [rec("city", d) for d in b.offload_train_days]

    def offload(name: str, algo: str, seed: int, episodes: int, episode_s: float, hps=(), sets=(), requires=()) -> str:  # noqa: ANN001
        cmd = ["train", algo, "--scenario", "city", "--recordings", ",".join(off_train), "--validation", val]
        cmd += ["--out", f"{mdir}/{name}", "--seed", str(seed), "--episodes", str(episodes)]
        cmd += ["--episode-s", f"{episode_s:g}", "--no-progress", "--hp", "gamma=0.0"]
        for hp in (*b.hps.get(algo, ()), *hps):
            cmd += ["--hp", hp]
        for s in sets:
            cmd += ["--set", s]
        req = list(requires)
        if b.require_offload_days:
            req.append(("--recordings", ",".join(off_train)))
        plan.models[name] = ModelSpec(name, f"{mdir}/{name}", tuple(cmd), (*off_train, val), tuple(req))
        return name

    seeds_of = {
        algo: tuple(offload(f"{algo}-city-s{s}", algo, s, b.offload_episodes, b.offload_episode_s)
                    for s in b.offload_seeds)
        for algo in OFFLOAD_ALGOS
    }  # fmt: skip

    def bcond(name: str, recordings: tuple[str, ...] = test, **kw) -> str:  # noqa: ANN003
        return cond(name, recordings, **kw)

    bbase = bcond("city-offload")

    def barms(condition: str, first_seed_only: bool = False, tag: str = "") -> list[Arm]:
        out = []
        for algo in OFFLOAD_ALGOS:
            names = seeds_of[algo][:1] if first_seed_only else seeds_of[algo]
            out.append(Arm(f"{OFFLOAD_LABEL[algo]}{tag}", condition, ("sticky-nearest",), names))
        for h, label in OFFLOAD_HEURISTICS.items():
            out.append(Arm(f"{label}{tag}", condition, ("sticky-nearest",), (h,)))
        return out

    plan.figures["b-main"] = Figure(
        "b-main", "Paper B on held-out days: cost, task success, delay and energy (Fig. 5a, 6)", "B",
        tuple(barms(bbase)),
    )  # fmt: skip
    plan.needs["b-main"] = tuple(n for names in seeds_of.values() for n in names)
    plan.needs["b-curves"] = plan.needs["b-main"]
    sweep = []
    grid = [("buffer", f"buffer={v}", (f"buffer_size={v}",), ()) for v in (50_000, 100_000, 200_000)]
    grid += [("batch", f"batch={v}", (f"batch_size={v}",), ()) for v in (32, 64, 256)]
    grid += [("lr", f"lr={a:g},{c:g}", (f"lr_actor={a:g}", f"lr_critic={c:g}"), ())
             for a, c in ((1e-3, 1e-3), (1e-2, 1e-2), (1e-4, 1e-2))]  # fmt: skip
    grid += [("deadline", f"T_n={t:g}", (), (f"offload.deadline_s=[{t:g}, {t:g}]",)) for t in (0.1, 0.5, 1.0)]
    sweep_needs = []
    for group, label, hps, sets in grid:
        slug = label.replace("=", "").replace(",", "-").replace(".", "p").replace("_", "").lower()
        requires = tuple(("--hp", h) for h in hps) + tuple(("--set", s) for s in sets)
        name = offload(f"sweep-af-marl-{slug}", "af-marl", 1, b.sweep_episodes, b.sweep_episode_s, hps, sets, requires)
        sweep_needs.append(name)
        c = bbase
        if sets:
            t = float(label.split("=")[1])
            c = bcond(f"city-offload-deadline-{_slug(t)}s", overrides=(("offload", "deadline_s", (t, t)),))
        sweep.append(Arm(f"{group}: {label}", c, ("sticky-nearest",), (name,)))
    plan.figures["b-fig2"] = Figure("b-fig2", "Fig. 2: AF-MARL's hyperparameters and deadlines", "B", tuple(sweep))
    plan.needs["b-fig2"] = tuple(sweep_needs)
    fig3 = []
    for mb in b.fig3_task_mb:
        c = bcond(f"city-offload-task-{_slug(mb)}mb", overrides=(("offload", "task_size_mb", (mb, mb)),))
        fig3 += barms(c, True, f" @ task {mb:g} MB")
    for ghz in b.fig3_rsu_ghz:
        c = bcond(f"city-offload-rsu-{_slug(ghz)}ghz", overrides=(("offload", "rsu_cpu_hz", (ghz * 1e9, ghz * 1e9)),))
        fig3 += barms(c, True, f" @ RSU {ghz:g} GHz")
    for scale in b.fig3_traffic:
        if scale == 1.0:
            c = bbase
        else:
            days = tuple(
                rec("city", d, end_s=b.span[1] if b.record_end_s is None else b.record_end_s,
                    scale=b.record_scale * scale)
                for d in b.test_days
            )  # fmt: skip
            c = bcond(f"city-offload-traffic-x{_slug(scale)}", days)
        fig3 += barms(c, True, f" @ traffic x{scale:g}")
    plan.figures["b-fig3"] = Figure("b-fig3", "Fig. 3 and 5b: task size, RSU CPU and traffic density", "B", tuple(fig3))
    plan.needs["b-fig3"] = tuple(names[0] for names in seeds_of.values())
    return plan
