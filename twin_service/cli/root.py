"""The ``twin-service`` command's root and its groups (``scenario``, ``predictor``, ``train``), and ``main``.

The commands register themselves on these from their own modules (``twin_service/cli/run.py``, ...), which
``twin_service/cli/__init__.py`` imports in the order ``--help`` lists them.
"""

from __future__ import annotations

import typer

from twin_service.cli.options import CheckedTyper, fail

app = CheckedTyper(
    name="twin-service",
    help="SUMO co-simulation digital twins for the Internet of Vehicles: "
    "build scenarios, run the live bridge into Redis, serve migration and offloading decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
scenario_app = CheckedTyper(help="Build the committed scenarios or import a real SUMO city.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")
predictor_app = CheckedTyper(
    help="Workload predictors (paper A, section V): train on recorded city days or any series, evaluate (Table II).",
    no_args_is_help=True,
)
app.add_typer(predictor_app, name="predictor")
train_app = CheckedTyper(help="Train decision policies on recorded days (saved to models/NAME).", no_args_is_help=True)
app.add_typer(train_app, name="train")


def require_full_install() -> None:
    """Refuse, before any work, a command that needs what the Docker image leaves out (see ``main``)."""
    from importlib.util import find_spec

    missing = sorted(name for name in ("matplotlib", "scipy", "pettingzoo", "gymnasium") if find_spec(name) is None)
    if missing:
        fail(
            f"this command needs {', '.join(missing)}, which this installation leaves out (the Docker image runs the "
            "live stack: bridge, API, dashboard); run it from a full install of twin-service (./scripts/test or "
            "./scripts/demo make one)"
        )


@train_app.callback()
def _train_group() -> None:
    require_full_install()


@predictor_app.callback()
def _predictor_group() -> None:
    require_full_install()


LEFT_OUT_OF_THE_IMAGE = {"matplotlib", "scipy", "pettingzoo", "gymnasium", "sympy", "networkx", "PIL"}
"""Packages the Docker image leaves out (it runs the live stack): training, evaluation and plots need them."""


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except ModuleNotFoundError as exc:  # a command that needs what the image leaves out, past its own check
        if (exc.name or "").split(".")[0] not in LEFT_OUT_OF_THE_IMAGE:
            raise
        typer.echo(
            f"error: this command needs {exc.name}, which this installation leaves out (the Docker image runs the "
            "live stack: bridge, API, dashboard); run it from a full install of twin-service",
            err=True,
        )
        raise SystemExit(2) from None
