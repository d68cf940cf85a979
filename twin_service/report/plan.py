"""What the report needs, per budget: recordings, models, evaluation conditions and the arms of every figure.

The budgets and the parts of a plan; :mod:`twin_service.report.planner` fills a :class:`Plan` for a budget. Nothing
here runs anything: :mod:`twin_service.report.pipeline` makes what a plan names (or reuses it) and
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

from dataclasses import dataclass, field
from pathlib import Path

from twin_service.config import REPO_ROOT
from twin_service.predict.models import ALGORITHM_NAMES, ARCHITECTURES

PAPER_A_FIGURES = ("table2", "fig6", "mlp", "fig7", "fig8", "fig9", "fig10", "hamburg")
PAPER_B_FIGURES = ("b-main", "b-fig2", "b-fig3", "b-curves")
FIGURES = PAPER_A_FIGURES + PAPER_B_FIGURES
"""Every part of the report, in order (``--only`` takes these names, or ``paper-a`` / ``paper-b``)."""

HEURISTICS_A = ("least-loaded", "sticky-nearest", "greedy", "random")
OFFLOAD_ALGOS = ("af-marl", "afl-maddpg", "sfl-ppo", "ddqn")
OFFLOAD_LABEL = {"af-marl": "AF-MARL", "afl-maddpg": "AFL-MADDPG", "sfl-ppo": "SFL-PPO", "ddqn": "DDQN"}
OFFLOAD_HEURISTICS = {"nearest-least-loaded": "non-DRL", "local-only": "local-only", "oracle": "oracle"}
PREDICTOR_NETWORKS = ARCHITECTURES
"""Table II's networks, in its order."""
NETWORK_LABEL = ALGORITHM_NAMES
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


def offload_model_name(algo: str, budget: str, seed: int) -> str:
    """A paper B model's folder name: ``<algo>-city-full-s<seed>`` for the full budget (what
    ``scripts/reproduce_paper_b.py --budget full`` trains, the same command), ``<algo>-city-s<seed>`` otherwise."""
    return f"{algo}-city{'-full' if budget == 'full' else ''}-s{seed}"


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
