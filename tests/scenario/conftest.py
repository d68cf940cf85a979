"""Fixtures for the scenario tests: the committed scenarios, a tiny net without projection, Hamburg."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared_data import HAMBURG_CFG, HAMBURG_DIR, folder_fingerprint
from twin_service.config import SCENARIOS_DIR
from twin_service.scenario.tools import run_tool, tool_path

__all__ = ["folder_fingerprint"]  # the importer tests check the original folder with it


@pytest.fixture(scope="session")
def city_dir() -> Path:
    return SCENARIOS_DIR / "city"


@pytest.fixture(scope="session")
def rural_dir() -> Path:
    return SCENARIOS_DIR / "rural"


@pytest.fixture(scope="session")
def tiny_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 x 3 netgenerate grid (100 m blocks) with no geo-reference; node ids A0..C2."""
    folder = tmp_path_factory.mktemp("tiny")
    net = folder / "tiny.net.xml"
    run_tool(
        [tool_path("netgenerate"), "--grid", "--grid.number", "3", "--grid.length", "100", "-o", net],
        "netgenerate",
    )
    return net


@pytest.fixture(scope="session")
def hamburg_cfg() -> Path:
    if not HAMBURG_CFG.is_file():
        pytest.skip(f"the Hamburg test field is not available at {HAMBURG_DIR}")
    return HAMBURG_CFG
