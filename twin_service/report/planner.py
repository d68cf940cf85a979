"""The planner: a budget's recordings, models (with the commands that make them), evaluation conditions and the
arms of every figure, as a :class:`~twin_service.report.plan.Plan`.

Paper A's models (DM-MAPPO per seed, MASAC, paper A's MLP actor, the prediction and no-mask variants) and Table II's
predictors train on the budget's training days and validate on its validation day; every figure is evaluated on
its held-out days. Paper B's models train on ``offload_train_days``. ``--days`` reductions give a part its own
copies of its conditions on fewer days (:func:`_reduce`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from twin_service.config import REPO_ROOT
from twin_service.report.plan import (
    HEURISTICS_A,
    OFFLOAD_ALGOS,
    OFFLOAD_HEURISTICS,
    OFFLOAD_LABEL,
    PREDICTOR_NETWORKS,
    SERVED_PREDICTOR,
    Arm,
    Budget,
    Condition,
    Figure,
    ModelSpec,
    Plan,
    RecordingSpec,
    Reductions,
    offload_model_name,
)


def _slug(value: float) -> str:
    return f"{value:g}".replace(".", "p")


def make_plan(budget: Budget, work: Path, models_dir: Path, reductions: Reductions | None = None) -> Plan:
    """The recordings, models, conditions and figures of a budget (:mod:`twin_service.report.plan`), less its
    reductions."""
    plan = Plan(budget, work, models_dir, reductions=reductions or Reductions())
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
        algo: tuple(offload(offload_model_name(algo, b.name, s), algo, s, b.offload_episodes, b.offload_episode_s)
                    for s in b.offload_seeds)
        for algo in OFFLOAD_ALGOS
    }  # fmt: skip

    bbase = cond("city-offload")

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
            c = cond(f"city-offload-deadline-{_slug(t)}s", overrides=(("offload", "deadline_s", (t, t)),))
        sweep.append(Arm(f"{group}: {label}", c, ("sticky-nearest",), (name,)))
    plan.figures["b-fig2"] = Figure("b-fig2", "Fig. 2: AF-MARL's hyperparameters and deadlines", "B", tuple(sweep))
    plan.needs["b-fig2"] = tuple(sweep_needs)
    fig3 = []
    for mb in b.fig3_task_mb:
        c = cond(f"city-offload-task-{_slug(mb)}mb", overrides=(("offload", "task_size_mb", (mb, mb)),))
        fig3 += barms(c, True, f" @ task {mb:g} MB")
    for ghz in b.fig3_rsu_ghz:
        c = cond(f"city-offload-rsu-{_slug(ghz)}ghz", overrides=(("offload", "rsu_cpu_hz", (ghz * 1e9, ghz * 1e9)),))
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
            c = cond(f"city-offload-traffic-x{_slug(scale)}", days)
        fig3 += barms(c, True, f" @ traffic x{scale:g}")
    plan.figures["b-fig3"] = Figure("b-fig3", "Fig. 3 and 5b: task size, RSU CPU and traffic density", "B", tuple(fig3))
    plan.needs["b-fig3"] = tuple(names[0] for names in seeds_of.values())
    return plan
