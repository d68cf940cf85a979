"""``twin-service evaluate``: migration and offloading policies compared over held-out recordings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_service.cli.options import (
    Predictor,
    ScenarioSets,
    check_predictor,
    fail,
    load_events,
    load_settings,
    overrides,
    paths,
    split_list,
)
from twin_service.cli.root import app, require_full_install


@app.command("evaluate")
def evaluate(
    recordings: Annotated[
        list[Path],
        typer.Option(help="Held-out recordings to evaluate on (repeat the option, or separate with commas)."),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the tables (CSV, JSON, markdown) and plots.")],
    scenario: Annotated[
        str | None, typer.Option(help="Scenario folder or name (default: the one the recordings were made on).")
    ] = None,
    migration_policy: Annotated[
        list[str] | None,
        typer.Option(help="Migration policies to compare (repeatable; the first is the reference for z-scores)."),
    ] = None,
    offload_policy: Annotated[
        list[str] | None,
        typer.Option(
            help="Offloading policies to compare (repeatable); oracle: the upper bound, best rho on the true state."
        ),
    ] = None,
    episode_s: Annotated[float, typer.Option(help="Length of an episode: days are cut into these.")] = 600.0,
    warmup_s: Annotated[float, typer.Option(help="Seconds run before the first episode.")] = 60.0,
    begin: Annotated[
        float | None, typer.Option(help="Evaluate from this sim time, s (the warm-up starts here; default: start).")
    ] = None,
    end: Annotated[float | None, typer.Option(help="Evaluate up to this sim time, s (default: the end).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the stochastic policies and server schedules.")] = 0,
    predictor: Predictor = "persistence",
    no_uavs: Annotated[bool, typer.Option("--no-uavs", help="Every UAV out of service (paper A Fig. 8).")] = False,
    no_satellite: Annotated[
        bool, typer.Option("--no-satellite", help="The satellite out of service (paper A Fig. 8).")
    ] = False,
    no_mask: Annotated[
        bool, typer.Option("--no-mask", help="Decide without the dynamic mask of Eq. 23 (paper A Fig. 9).")
    ] = False,
    uav_churn: Annotated[
        str | None, typer.Option(help="UAVs joining and leaving in each episode, APPEAR,LEAVE (paper A Fig. 10: 5,6).")
    ] = None,
    rsu_outage: Annotated[int, typer.Option(help="The N busiest RSUs fail from 120 s to 300 s of each episode.")] = 0,
    set_: ScenarioSets = None,
    events: Annotated[
        Path | None,
        typer.Option(
            help="What-if events at their sim times (TOML or JSON, as run --events): outages, UAV recalls and "
            "launches, channel factors; applied to every day and policy pair.",
        ),
    ] = None,
) -> None:
    """Compare migration and offloading policies (heuristic or trained) over held-out recordings."""
    require_full_install()
    import sys

    from rich.progress import Progress

    from twin_service.config import ScenarioError
    from twin_service.engine.recording import Recording, RecordingError
    from twin_service.envs.evaluate import EvalOptions, evaluate_policies, markdown_table, write_results
    from twin_service.envs.sim import EnvOptions, RsuOutage, UavChurn
    from twin_service.files import atomic_files
    from twin_service.option_ranges import UAV_CHURN
    from twin_service.policies import PolicyError

    files = paths(recordings)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file; give a folder for the tables and plots (it is created if missing)")
    check_predictor(predictor)
    churn = None
    if uav_churn:
        try:
            appear, leave = (int(v) for v in uav_churn.split(","))
        except ValueError:
            fail(f"--uav-churn {uav_churn!r}: expected APPEAR,LEAVE such as 5,6")
        for what, count in (("APPEAR", appear), ("LEAVE", leave)):
            if problem := UAV_CHURN.problem(count):
                fail(f"--uav-churn {uav_churn}: {what} {count}: {problem}")
        churn = UavChurn(appear, leave)
    env = EnvOptions(
        no_uavs=no_uavs,
        no_satellite=no_satellite,
        dynamic_mask=not no_mask,
        uav_churn=churn,
        rsu_outage=RsuOutage(count=rsu_outage) if rsu_outage else None,
        overrides=overrides(set_, "task.migration_size_mb=80"),
        predictor=predictor,
        models_dir=load_settings().models_dir,
        events=_evaluate_events(events, files, scenario),
    )
    options = EvalOptions(episode_s=episode_s, warmup_s=warmup_s, env=env, seed=seed, begin_s=begin, end_s=end)
    migration = split_list(migration_policy) or ["least-loaded"]
    offload = split_list(offload_policy) or ["nearest-least-loaded"]
    try:
        ticks = 0
        for f in files:
            with Recording(f) as rec:
                lo = rec.begin_s if begin is None else max(begin, rec.begin_s)
                hi = rec.end_s if end is None else min(end, rec.end_s)
                ticks += max(int((hi - lo) / rec.meta.tick_s), 0)
        with Progress() as bar:
            task = bar.add_task(
                f"{len(migration) * len(offload)} policy pairs x {len(files)} days",
                total=ticks * len(migration) * len(offload),
            )
            result = evaluate_policies(scenario, files, migration, offload, options, on_tick=lambda: bar.advance(task))
        meta = {
            "command": "twin-service " + " ".join(sys.argv[1:]),
            "recordings": [str(f) for f in files],
            "episode_s": episode_s,
            "warmup_s": warmup_s,
            "begin_s": begin,
            "end_s": end,
            "seed": seed,
            "variant": {
                "no_uavs": no_uavs,
                "no_satellite": no_satellite,
                "dynamic_mask": not no_mask,
                "uav_churn": uav_churn,
                "rsu_outage": rsu_outage,
                "overrides": env.overrides,
                "predictor": predictor,
                "events": [e.model_dump(mode="json", exclude_none=True) for e in env.events],
            },
        }
        with atomic_files(out) as folder:
            write_results(result, folder, meta)
    except KeyboardInterrupt:
        fail(f"interrupted: nothing written to {out}", code=130)
    except (ScenarioError, RecordingError, PolicyError, ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(markdown_table(result.summary, ("latency_mean_s", "packet_loss", "load_variance_mb2", "reward_eq22")))
    typer.echo(markdown_table(result.summary, ("offload_cost_mean", "task_success_rate")))
    typer.echo(f"wrote tables and plots to {out}")


def _evaluate_events(path: Path | None, files: list[Path], scenario: str | None) -> tuple:
    """``evaluate --events FILE``: checked against the scenario of the recordings."""
    if path is None:
        return ()
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.envs.sim import scenario_of

    try:
        folder = scenario_of(files, scenario).folder
    except (ScenarioError, RecordingError, OSError) as exc:
        fail(str(exc))
    return load_events(path, str(folder), replay=True)
