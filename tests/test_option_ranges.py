"""Every numeric option and trainer hyperparameter has a range in ``option_ranges`` and is checked against it before
any work: one line, exit 2. The reproducers of issue 19 (``--hp batch_size=0``, ``gamma=nan``, ``--threads
100000``, ``--uav-churn 50,-1``, ``--rollout-ticks`` over ``--total-ticks``, ``--out`` over a model...) included."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from twin_service.cli import app
from twin_service.option_ranges import (
    HYPERPARAMETERS,
    Bound,
    hyperparameter_problems,
    option_bound,
)

runner = CliRunner()


def _commands(command, path=()):  # noqa: ANN001, ANN202
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


def test_every_numeric_option_of_every_command_has_a_range():
    seen = {p.name for _, c in _commands(typer.main.get_command(app)) for p in c.params}
    assert {"ticks", "seed", "threads", "episode_s"} <= seen  # the walk finds the options
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            numeric = annotation in (int, float) or (
                isinstance(param.default, int | float) and not isinstance(param.default, bool)
            )
            if numeric and option_bound(path, param.name) is None:
                missing.append(f"{path} --{param.name}")
    assert not missing, missing


def test_every_numeric_field_of_every_trainer_has_a_range():
    from twin_service.learn import afl_maddpg, ddqn, dm_mappo, masac, sfl_ppo
    from twin_service.learn.af_marl import AfMarlArgs
    from twin_service.predict.train import TrainArgs

    for cls in (dm_mappo.Args, masac.Args, AfMarlArgs, afl_maddpg.AflMaddpgArgs, sfl_ppo.SflPpoArgs, ddqn.DdqnArgs):
        args = cls(recordings=[], out=Path("m")) if "out" in {f.name for f in dataclasses.fields(cls)} else cls()
        assert hyperparameter_problems(args) == [], cls.__name__  # every default lies in its range
    assert hyperparameter_problems(TrainArgs()) == []
    for name, bound in HYPERPARAMETERS.items():
        assert bound.low is None or bound.high is None or bound.low <= bound.high, name


def test_a_bound_refuses_what_lies_outside_and_every_non_finite_number():
    rate = Bound(0, 1, low_open=True)
    assert rate.contains(1e-4) and rate.contains(1)
    for bad in (0, -1, 1.5, math.nan, math.inf, True, "0.1", None):
        assert not rate.contains(bad), bad
    count = Bound(1, 10, integer=True)
    assert count.contains(3) and count.contains(3.0) and not count.contains(3.5) and not count.contains(0)
    assert count.describe() == "an integer in [1, 10]" and rate.describe() == "a finite number in (0, 1]"


@pytest.mark.parametrize(
    "args, message",
    [
        (["record", "--seed", "-1", "--out", "x.npz"], "--seed -1: expected an integer in [0, 2147483647]"),
        (["record", "--begin", "-5", "--out", "x.npz"], "--begin -5.0: expected a finite number in [0, 10000000]"),
        (["record", "--begin", "50", "--end", "40", "--out", "x.npz"], "--end 40 must be after --begin 50"),
        (["run", "--ticks", "0"], "--ticks 0: expected an integer in [1, 1000000000]"),
        (["run", "--speed", "inf"], "--speed inf: expected a finite number in [0.01, 10000]"),
        (["run", "--api-port", "70000"], "--api-port 70000: expected an integer in [1, 65535]"),
        (["api", "--workers", "0"], "--workers 0: expected an integer in [1, 64]"),
        (
            ["predictor", "train", "--out", "m", "--threads", "100000"],
            "--threads 100000: expected an integer in [1, 256]",
        ),
        (["predictor", "train", "--out", "m", "--max-train-s", "nan"], "--max-train-s nan"),
        (["evaluate", "--recordings", "r.npz", "--out", "o", "--episode-s", "0.5"], "--episode-s 0.5"),
        (["evaluate", "--recordings", "r.npz", "--out", "o", "--uav-churn", "50,-1"], "LEAVE -1: expected an integer"),
        (["train", "dm-mappo", "--recordings", "r.npz", "--out", "m", "--episode-s", "5"], "--episode-s 5.0"),
        (
            [
                "train",
                "dm-mappo",
                "--recordings",
                "r.npz",
                "--out",
                "m",
                "--rollout-ticks",
                "100",
                "--total-ticks",
                "50",
            ],
            "--rollout-ticks 100 is more than --total-ticks 50",
        ),
        (["train", "af-marl", "--recordings", "r.npz", "--out", "m", "--episodes", "0"], "--episodes 0"),
        (["run", "--seed", "x"], "Invalid value for '--seed'"),
        (["run", "--no-such-option"], "No such option: --no-such-option"),
    ],
)
def test_an_option_out_of_range_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path):
    done = runner.invoke(app, args)
    assert done.exit_code == 2, (args, done.output)
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.output


@pytest.mark.parametrize(
    "hp, message",
    [
        ("batch_size=0", "--hp batch_size=0: expected an integer in [1, 1000000]"),
        ("gamma=nan", "--hp gamma=nan: expected a finite number in [0, 1]"),
        ("buffer_size=0", "--hp buffer_size=0: expected an integer in [1, 100000000]"),
        ("lr_critic=1e300", "--hp lr_critic=1e+300: expected a finite number in (0, 1]"),
        ("batch_size=inf", "--hp batch_size: expected an integer, got 'inf'"),
        ("tau=0", "--hp tau=0.0: expected a finite number in (0, 1]"),
    ],
)
def test_a_hyperparameter_out_of_range_is_refused_before_training(hp: str, message: str, tmp_path: Path):
    rec = tmp_path / "day.npz"
    rec.write_bytes(b"")
    done = runner.invoke(app, ["train", "af-marl", "--recordings", str(rec), "--out", str(tmp_path / "m"), "--hp", hp])
    assert done.exit_code == 2 and message in done.output, done.output
    assert not (tmp_path / "m").exists()


def test_an_existing_model_is_replaced_only_with_force(tmp_path: Path):
    rec = tmp_path / "day.npz"
    rec.write_bytes(b"")
    model = tmp_path / "models" / "kept"
    model.mkdir(parents=True)
    (model / "manifest.json").write_text("{}")
    for args in (
        ["train", "af-marl", "--recordings", str(rec), "--out", str(model)],
        ["train", "dm-mappo", "--recordings", str(rec), "--out", str(model)],
        ["predictor", "train", "--recordings", str(rec), "--out", str(model)],
    ):
        done = runner.invoke(app, args)
        assert done.exit_code == 2 and "the model exists; give --force" in done.output, (args, done.output)
    assert (model / "manifest.json").read_text() == "{}"
    for name in ("random", "persistence"):  # a built-in's name would shadow it: refused before any work
        done = runner.invoke(app, ["train", "ddqn", "--recordings", str(rec), "--out", str(tmp_path / name)])
        assert done.exit_code == 2 and "name of a built-in" in done.output, done.output


def test_the_ranges_show_in_help():
    done = runner.invoke(app, ["record", "--help"])
    assert done.exit_code == 0 and "range: an integer in" in done.output
