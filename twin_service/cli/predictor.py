"""``twin-service predictor train|evaluate``: workload predictors (paper A, section V) and Table II."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_service.cli.options import check_model_out, fail, paths, split_list
from twin_service.cli.root import predictor_app


@predictor_app.command("train")
def predictor_train(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Model folder to write, models/NAME (the folder names the predictor).")],
    recordings: Annotated[
        list[Path] | None,
        typer.Option(help="Recorded days (repeat, or separate with commas): their servers' load series are the data."),
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="With --recordings: scenario folder or name (default: the recordings' own).")
    ] = None,
    series: Annotated[Path | None, typer.Option(help="A T x M series file (CSV or NPZ) instead of days.")] = None,
    step_s: Annotated[float | None, typer.Option(help="With --series: seconds per step.")] = None,
    split: Annotated[
        str | None, typer.Option(help="With --series: train,validation,test shares (default 0.7,0.1,0.2).")
    ] = None,
    val_days: Annotated[str, typer.Option(help="With --recordings: the validation day(s), by seed.")] = "7",
    test_days: Annotated[str, typer.Option(help="With --recordings: held-out day(s), never trained on.")] = "8,9",
    network: Annotated[
        str, typer.Option(help="lstm-transformer (paper A), lstm, gru, cnn-lstm or cnn-gru (Table II's baselines).")
    ] = "lstm-transformer",
    horizon: Annotated[int, typer.Option(help="Steps ahead to forecast (ticks for the city).")] = 1,
    window: Annotated[int, typer.Option(help="Steps of history per forecast (paper A: 6).")] = 6,
    scaling: Annotated[str, typer.Option(help="global (one scale for all series) or per-series.")] = "global",
    target: Annotated[str, typer.Option(help="delta (the change over the horizon) or level.")] = "delta",
    loss: Annotated[str, typer.Option(help="huber (default), mse (paper A's) or l1, on the scaled target.")] = "huber",
    seed: Annotated[int, typer.Option(help="Seed of the weights and batches.")] = 0,
    epochs: Annotated[int, typer.Option(help="Epochs (the learning rate decays over them).")] = 8,
    steps_per_epoch: Annotated[int, typer.Option(help="Batches of 1,024 windows per epoch.")] = 100,
    max_train_s: Annotated[float, typer.Option(help="CPU-seconds budget: no epoch starts after it.")] = 100.0,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Replace the predictor folder --out if it exists.")] = False,
) -> None:
    """Train a workload predictor; keeps the best epoch on the validation part; writes safetensors + manifest."""
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.files import atomic_folder
    from twin_service.option_ranges import hyperparameter_problems
    from twin_service.predict.neural import save_predictor
    from twin_service.predict.series import SeriesError
    from twin_service.predict.train import TrainArgs, train_predictor

    check_model_out(out, force)
    if scaling not in ("global", "per-series"):
        fail("--scaling is global or per-series")
    if target not in ("delta", "level") or loss not in ("huber", "mse", "l1"):
        fail("--target is delta or level; --loss is huber, mse or l1")
    args = TrainArgs(
        network=network,
        window=window,
        horizon=horizon,
        target=target,  # type: ignore[arg-type]
        scaling=scaling,  # type: ignore[arg-type]
        loss=loss,  # type: ignore[arg-type]
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        max_train_s=max_train_s,
        seed=seed,
        threads=threads,
    )
    problems = hyperparameter_problems(args)
    if problems:
        fail("; ".join(problems))
    try:
        data = _predictor_data(
            recordings, series, scenario=scenario, step_s=step_s, split=split, val_days=val_days, test_days=test_days
        )
        result = train_predictor(data, args, out.name, command=_invocation(ctx))
        with atomic_folder(out, force=force, what="predictor") as folder:
            save_predictor(folder, result.manifest, result.state_dict)
    except KeyboardInterrupt:
        fail(f"interrupted: no predictor written to {out}", code=130)
    except (SeriesError, RecordingError, ScenarioError, ValueError, OSError) as exc:
        fail(str(exc))
    m = result.manifest
    v = m.evaluation["validation"]
    for note in data.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        f"{m.algorithm}: {m.training['epochs_run']} epochs in {m.training['wall_s']:.1f} s "
        f"({m.training['cpu_s']:.1f} s CPU), best epoch "
        f"{m.training['best_epoch']}; validation ({', '.join(m.data.split.val)}) {m.horizon_s:g} s ahead: "
        f"WAPE {100 * v['wape']:.3f} %, R^2 {v['r2']:.4f}"
    )
    typer.echo(f"wrote {out}")


@predictor_app.command("evaluate")
def predictor_evaluate(
    ctx: typer.Context,
    models: Annotated[
        list[Path],
        typer.Option(help="Predictor folders (repeat, or comma-separated); seeds of one network are averaged."),
    ],
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, table.md and the plots.")],
    recordings: Annotated[
        list[Path] | None,
        typer.Option(help="Recorded days (default: those the first predictor's manifest names); the test days count."),
    ] = None,
    series: Annotated[Path | None, typer.Option(help="A series file (default: the first predictor's).")] = None,
    step_s: Annotated[float | None, typer.Option(help="With --series: seconds per step.")] = None,
    split: Annotated[str | None, typer.Option(help="With --series: train,validation,test shares.")] = None,
    val_days: Annotated[str, typer.Option(help="With --recordings: the validation day(s), by seed.")] = "7",
    test_days: Annotated[str, typer.Option(help="With --recordings: the held-out day(s) evaluated on.")] = "8,9",
    record: Annotated[
        bool,
        typer.Option(
            help="Also record each predictor's test figures in its manifest (evaluation.test). Off by default: a "
            "committed predictor's manifest is a tracked file, changed only when asked."
        ),
    ] = False,
) -> None:
    """Table II on the held-out part: each predictor, persistence and the window mean (metrics.json, plots)."""
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.files import atomic_files
    from twin_service.predict.evaluate import evaluate as evaluate_predictors
    from twin_service.predict.evaluate import table_markdown, write_outputs
    from twin_service.predict.neural import NeuralForecaster, PredictorError
    from twin_service.predict.series import SeriesError

    folders = paths(models)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file; give a folder for metrics.json, table.md and the plots")
    try:
        forecasters = [NeuralForecaster.load(f) for f in folders]
        first = forecasters[0].manifest
        if not recordings and series is None:
            if first.data.source == "series":
                series = Path(first.data.series_file)
                split = split or ",".join(f"{f:g}" for f in first.data.split.fractions or ())
            else:
                recordings = [Path(r["path"]) for r in first.data.recordings if r.get("part") == "test"]
                if not recordings and first.data.recordings:  # held out at training: beside the days it read
                    folder = Path(first.data.recordings[0]["path"]).parent
                    recordings = [folder / f"{day}.npz" for day in first.data.split.test]
                    test_days = ",".join(day.rsplit("-s", 1)[-1] for day in first.data.split.test)
                if not recordings:
                    fail(f"{first.name} names no held-out recording: give --recordings")
        data = _predictor_data(
            recordings, series, step_s=step_s, split=split or None, val_days=val_days, test_days=test_days
        )
        evaluation, first_part = evaluate_predictors(forecasters, data)
        city = data.spec.source == "city"
        unit, unit_scale = ("MB", 8e6) if city else ("", 1.0)
        about = {
            "command": _invocation(ctx),
            "predictors": [str(f) for f in folders],
            "data": data.spec.model_dump(mode="json", exclude={"series_names"}),
        }
        with atomic_files(out) as folder:
            write_outputs(evaluation, first_part, folder, about, unit=unit, unit_scale=unit_scale)
        if record:
            from twin_service.predict.evaluate import record_test_figures

            record_test_figures(evaluation, folders)
    except (PredictorError, SeriesError, RecordingError, ScenarioError, ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(
        f"Table II: test part {', '.join(evaluation.test_parts)}, {evaluation.horizon * evaluation.step_s:g} s ahead "
        f"({evaluation.test_values} values)"
    )
    typer.echo(table_markdown(evaluation, unit, unit_scale))
    typer.echo(f"wrote metrics.json, table.md and plots to {out}")


def _predictor_data(
    recordings: list[Path] | None,
    series: Path | None,
    *,
    scenario: str | None = None,
    step_s: float | None = None,
    split: str | None = None,
    val_days: str = "7",
    test_days: str = "8,9",
):  # noqa: ANN202 - twin_service.predict.series.SeriesData, imported lazily
    """The series a predictor trains or is evaluated on: recorded city days, or a T x M file."""
    files = paths(recordings)
    if bool(files) == (series is not None):
        fail("give either --recordings (recorded days of a scenario) or --series FILE")
    if series is not None:
        from twin_service.predict.series import DEFAULT_FRACTIONS, load_series

        fractions = DEFAULT_FRACTIONS
        if split:
            try:
                fractions = tuple(float(v) for v in split.split(","))
            except ValueError:
                fail(f"--split {split!r}: expected three shares such as 0.7,0.1,0.2")
        return load_series(series, step_s=step_s, fractions=fractions)
    from twin_service.envs.load_series import city_series

    try:
        val = [int(v) for v in split_list([val_days])]
        test = [int(v) for v in split_list([test_days])]
    except ValueError:
        fail("--val-days and --test-days take day numbers (recording seeds) such as 7 or 8,9")
    return city_series(files, scenario, val_days=val, test_days=test)


def _invocation(ctx: typer.Context) -> str:
    """The command as given: its path and every option set on the command line (same meaning, fixed order)."""
    import shlex

    words = ctx.command_path.split()
    words[0] = "twin-service"
    for param in ctx.command.params:
        name = param.name or ""
        source = ctx.get_parameter_source(name)
        if source is None or source.name not in ("COMMANDLINE", "ENVIRONMENT"):  # typer may carry its own click
            continue
        flag = max(getattr(param, "opts", [f"--{name}"]), key=len)
        value = ctx.params[name]
        for v in value if isinstance(value, list | tuple) else [value]:
            words += [flag] if isinstance(v, bool) else [flag, str(v)]
    return shlex.join(words)
