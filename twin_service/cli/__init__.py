"""The ``twin-service`` command.

Each command is a thin shell over a function in the package: it parses options, calls the function and
turns the package's own errors into a one-line message and a non-zero exit, never a traceback.

One module per command group (``run``, ``record``, ``evaluate``, ``api``, ``report``, ``scenario``, ``predictor``,
``train``); the root and its groups are in ``root.py``, the option plumbing every command shares in ``options.py``.
"""

from __future__ import annotations

# Each module registers its commands on the root (or its group) when imported, so the order here is the order of
# the commands in ``twin-service --help``.
# isort: off
from twin_service.cli import run, record, evaluate, api, report, scenario, predictor, train  # noqa: F401

# isort: on
from twin_service.cli.root import app, main

__all__ = ["app", "main"]
