"""What the Docker image leaves out (training and analysis packages) is named by the commands that need it,
before they do any work; the live stack's commands do not need it."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from twin_service import cli


@pytest.fixture
def image_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installation without the packages the Dockerfile uninstalls."""
    real = importlib.util.find_spec
    left_out = {"matplotlib", "scipy", "pettingzoo", "gymnasium"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in left_out else real(name, *a))


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--recordings", "x.npz", "--out", "out"],
        ["train", "dm-mappo", "--recordings", "x.npz", "--out", "models/x"],
        ["train", "af-marl", "--recordings", "x.npz", "--out", "models/x"],
        ["predictor", "evaluate", "--models", "a", "--out", "out"],
    ],
)
def test_commands_that_need_the_training_packages_say_so(image_install: None, argv: list[str]):
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 2
    assert "leaves out (the Docker image runs the live stack" in result.output
    assert "matplotlib, pettingzoo, scipy" in result.output.replace("gymnasium, ", "")


def test_the_live_stack_commands_do_not_need_them(image_install: None):
    result = CliRunner().invoke(cli.app, ["run", "--scenario", "nowhere-city"])
    assert result.exit_code == 2 and "leaves out" not in result.output  # refused for its scenario, not the install
