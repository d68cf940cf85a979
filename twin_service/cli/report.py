"""``twin-service report``: both papers in one report (twin_service/report/), run with this CLI's own commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_service.cli.options import fail
from twin_service.cli.root import app


@app.command("report")
def report(
    out: Annotated[Path, typer.Option(help="Folder for index.html, README.md, the CSV files and the plots.")],
    budget: Annotated[
        str, typer.Option(help="smoke (minutes, CI), quick (an hour or two) or full (hours: results/report).")
    ] = "quick",
    only: Annotated[
        str | None,
        typer.Option(help="Parts to run: paper-a, paper-b or figures (table2,fig6,mlp,fig7,...,b-main,b-fig2,...)."),
    ] = None,
    work: Annotated[
        Path | None,
        typer.Option(help="Folder for the budget's own recordings and models (default data/report/BUDGET)."),
    ] = None,
    lock: Annotated[
        Path | None, typer.Option(help="Hold this flock file during each heavy step (e.g. /tmp/twin-train.lock).")
    ] = None,
    days: Annotated[
        list[str] | None,
        typer.Option(help="PART=D,D,...: evaluate that part on these of the budget's held-out days only "
                     "(repeatable; the report states it)."),
    ] = None,
    as_committed: Annotated[
        str | None,
        typer.Option(help="Parts (as --only) whose models are used as they are in models/, never trained; missing "
                     "seeds are left out (the report states it)."),
    ] = None,
) -> None:  # fmt: skip
    """Both papers in one report: every claim, ours beside theirs with 95 % intervals, and a verdict."""
    from twin_service.report.pipeline import build, expand_only
    from twin_service.report.plan import BUDGETS, Reductions, parse_days

    if budget not in BUDGETS:
        fail(f"--budget {budget!r}: choose {', '.join(BUDGETS)}")
    try:
        expand_only(only)
        reductions = Reductions(parse_days(days), frozenset(expand_only(as_committed)) if as_committed else frozenset())
    except ValueError as exc:
        fail(str(exc).replace("--only", "--as-committed") if as_committed and "--only" in str(exc) and only is None
             else str(exc))  # fmt: skip
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file, not a folder")
    try:
        done = build(budget, out, only, work, lock, reductions=reductions, runner=run_in_process)
    except ValueError as exc:  # a --days that names a day a part does not evaluate
        fail(str(exc))
    if done.failures:
        typer.echo(f"report written to {out}, but {len(done.failures)} part(s) failed: {', '.join(done.failures)}")
        raise typer.Exit(1)
    typer.echo(f"wrote {out / 'index.html'}")


def run_in_process(args: list[str]) -> int | None:
    """``twin-service ARGS`` in this process, its exit code returned rather than exiting: the report's runner of
    its steps (:data:`twin_service.report.pipeline.CommandRunner`)."""
    return app(args=args, prog_name="twin-service", standalone_mode=False)
