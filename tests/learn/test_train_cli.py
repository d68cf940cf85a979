"""``twin-service train af-marl|afl-maddpg|sfl-ppo|ddqn``: bad input is a clear message and exit code 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from twin_service.cli import app

runner = CliRunner()


def test_paper_b_trainers_are_on_the_train_sub_app() -> None:
    out = runner.invoke(app, ["train", "--help"])
    assert out.exit_code == 0
    for name in ("af-marl", "afl-maddpg", "sfl-ppo", "ddqn"):
        assert name in out.output


def test_missing_recording_is_named(tmp_path: Path) -> None:
    out = runner.invoke(
        app, ["train", "af-marl", "--recordings", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "m")]
    )
    assert out.exit_code == 2
    assert "no such recording" in out.output and "nope.npz" in out.output


def test_unknown_or_mistyped_hyperparameter(tmp_path: Path) -> None:
    rec = tmp_path / "day.npz"
    rec.write_bytes(b"")
    out = runner.invoke(
        app, ["train", "ddqn", "--recordings", str(rec), "--out", str(tmp_path / "m"), "--hp", "nope=1"]
    )
    assert out.exit_code == 2 and "nope=1" in out.output
    out = runner.invoke(
        app, ["train", "ddqn", "--recordings", str(rec), "--out", str(tmp_path / "m"), "--hp", "batch_size=big"]
    )
    assert out.exit_code == 2 and "expected a number" in out.output


def test_federation_must_be_known(tmp_path: Path) -> None:
    rec = tmp_path / "day.npz"
    rec.write_bytes(b"")
    out = runner.invoke(
        app, ["train", "af-marl", "--recordings", str(rec), "--out", str(tmp_path / "m"), "--federation", "ray"]
    )
    assert out.exit_code == 2 and "inprocess or flower" in out.output


def test_a_model_name_the_registry_would_refuse_fails_before_training(tmp_path: Path) -> None:
    rec = tmp_path / "day.npz"
    rec.write_bytes(b"")
    out = runner.invoke(app, ["train", "af-marl", "--recordings", str(rec), "--out", str(tmp_path / "Bad_Name")])
    assert out.exit_code == 2 and "model's name" in out.output
