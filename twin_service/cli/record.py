"""``twin-service record``: a SUMO run's mobility written to a recording for replay, training and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_service.cli.options import Begin, Scale, fail
from twin_service.cli.root import app
from twin_service.cli.run import graceful_stop


@app.command("record")
def record(
    out: Annotated[Path, typer.Option(help="The recording file to write (.npz), e.g. data/recordings/city-s2.npz.")],
    scenario: Annotated[
        str, typer.Option(help="Scenario to record: city, rural, or the folder of an imported scenario.")
    ] = "city",
    seed: Annotated[
        int | None,
        typer.Option(
            help="The day: SUMO's seed and, for city and rural, the seed of the day's demand (default: the scenario's)."
        ),
    ] = None,
    begin: Begin = None,
    end: Annotated[float | None, typer.Option(help="Stop at this sim time, s (default: the scenario's end).")] = None,
    scale: Scale = 1.0,
) -> None:
    """Record a SUMO run's mobility (every tick's vehicles) for replay, training and evaluation."""
    import sys

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from twin_service.bridge.backends import SumoError
    from twin_service.bridge.record import record_scenario
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError, RecordingInterrupted

    if out.exists() and out.is_dir():
        fail(f"--out {out} is a directory; give a file name such as {out / 'city-s1.npz'}")
    if begin is not None and end is not None and end <= begin:
        fail(f"--end {end:g} must be after --begin {begin:g}")
    command = "twin-service " + " ".join(sys.argv[1:])
    try:
        with (
            Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            ) as bar,
            graceful_stop() as stop_requested,
        ):
            task = bar.add_task("recording", total=None, info="starting SUMO")

            def progress(p) -> None:  # noqa: ANN001 - bridge.record.RecordProgress
                bar.update(
                    task,
                    total=p.end_s - p.begin_s,
                    completed=p.sim_time_s - p.begin_s,
                    info=f"sim {p.sim_time_s:.0f} s, {p.vehicles} vehicles",
                )

            meta = record_scenario(
                scenario,
                out,
                seed=seed,
                begin_s=begin,
                end_s=end,
                scale=scale,
                command=command,
                on_progress=progress,
                should_stop=stop_requested,
            )
    except RecordingInterrupted as exc:
        fail(f"interrupted: {exc}", code=130)
    except KeyboardInterrupt:
        fail(f"interrupted: {out} was not written (a recording is kept only when complete)", code=130)
    except (ScenarioError, SumoError, RecordingError, OSError) as exc:
        fail(str(exc))
    size_mb = out.stat().st_size / 1e6
    typer.echo(
        f"wrote {out}: {meta.scenario} day {meta.seed} (scale {meta.scale:g}), {meta.ticks} ticks "
        f"{meta.begin_s:g}-{meta.end_s:g} s, {meta.vehicles} vehicles, {meta.rows} vehicle-ticks, {size_mb:.1f} MB"
    )
