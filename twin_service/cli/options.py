"""How every ``twin-service`` command checks its options: one line on stderr and exit 2, before any work.

:class:`CheckedTyper` is ``typer.Typer`` whose commands are :class:`CheckedCommand`: a command that

* turns a usage error (an unknown option, a value that is not a number, a missing option) into one line,
  ``error: Invalid value for '--seed': ... (twin-service run --help)``, instead of a box of text;
* checks every numeric option against :mod:`twin_service.option_ranges` (the one table of ranges) once the
  command line is parsed and before the command runs, and shows each option's range in ``--help``.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand

from twin_service.option_ranges import option_bound, option_problems

try:  # typer >= 0.20 vendors click; older typer uses click itself
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[no-redef]

EXIT_USAGE = 2


def one_line(message: str) -> str:
    """A message on one line: its lines joined, runs of blanks squeezed (torch and pydantic write several)."""
    return " ".join(message.split())


def _say(message: str) -> None:
    typer.secho(f"error: {one_line(message)}", err=True, fg=typer.colors.RED)


def _command_name(ctx: Any) -> str:
    """``train dm-mappo`` from the context's ``twin-service train dm-mappo``."""
    return " ".join(ctx.command_path.split()[1:])


class CheckedCommand(TyperCommand):
    """A typer command whose option errors are one line and whose numeric options are range-checked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ranges_shown = False

    def _show_ranges(self, ctx: Any) -> None:
        if self._ranges_shown:
            return
        self._ranges_shown = True
        command = _command_name(ctx)
        for param in self.params:
            bound = option_bound(command, param.name or "")
            help_text = getattr(param, "help", None)
            if bound is not None and help_text is not None and "[range" not in help_text:
                param.help = f"{help_text} [range: {bound.describe()}]"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        self._show_ranges(ctx)
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            _say(f"{exc.format_message()} ({ctx.command_path} --help)")
            raise typer.Exit(EXIT_USAGE) from None

    def invoke(self, ctx: Any) -> Any:
        problems = option_problems(_command_name(ctx), ctx.params)
        if problems:
            _say("; ".join(problems))
            raise typer.Exit(EXIT_USAGE)
        return super().invoke(ctx)


class CheckedTyper(typer.Typer):
    """``typer.Typer`` whose commands are :class:`CheckedCommand` unless told otherwise."""

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(name, cls=cls or CheckedCommand, **kwargs)
