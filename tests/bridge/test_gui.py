"""sumo-gui under Xvfb shows the overlay: vehicle-host lines and load-coloured servers.

The fixture starts Xvfb, installing it first with apt-get when it is missing and we are root (as on CI).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.debian import ensure_debian_tool
from twin_service.bridge.runner import RunOptions, open_bridge, run_loop
from twin_service.twins.server import RedisHandle

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    xvfb = ensure_debian_tool("Xvfb", "xvfb")
    for number in range(90, 110):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            break
    name = f":{number}"
    proc = subprocess.Popen([xvfb, name, "-screen", "0", "1280x1024x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Xvfb did not start on {name}")
        time.sleep(0.05)
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = name
    try:
        yield name
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
        proc.terminate()
        proc.wait(timeout=10)


def _screenshot(scenario: Path, redis: RedisHandle, prefix: str, out: Path, overlay: bool) -> np.ndarray:
    from PIL import Image

    options = RunOptions(scenario=scenario, backend="traci", gui=True, ticks=60, key_prefix=prefix, overlay=overlay)
    with open_bridge(options, redis=redis) as (engine, store, _):
        run_loop(engine, store, options)
        engine.backend.api.gui.screenshot("View #0", str(out))
        engine.backend.step()  # sumo-gui writes the picture after the next step
        store.clear()
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def _count(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(img - np.array(rgb)).max(axis=2) <= tol).sum())


def test_screenshot_shows_host_lines_and_load_colours(
    display: str, small_scenario: Path, redis_server: RedisHandle, key_prefix: str, tmp_path: Path
):
    plain = _screenshot(small_scenario, redis_server, key_prefix + "-plain", tmp_path / "plain.png", overlay=False)
    shown = _screenshot(small_scenario, redis_server, key_prefix + "-overlay", tmp_path / "overlay.png", overlay=True)
    rsu_blue = (0, 90, 255)
    # Without the overlay the only RSU-blue pixels are the RSU markers of the additional file; with it, every
    # vehicle hosted on an RSU has a blue line to it, and the markers turn green-to-red with load.
    assert _count(shown, rsu_blue) > 3 * max(_count(plain, rsu_blue), 1)
    idle_green = (0, 200, 0)
    assert _count(shown, idle_green, tol=60) + _count(shown, (255, 200, 0), tol=60) > _count(plain, idle_green, tol=60)


def test_sumo_gui_shows_a_server_out_of_service_in_grey(
    display: str, small_scenario: Path, redis_server: RedisHandle, key_prefix: str
):
    from twin_service.bridge.gui import OUT_OF_SERVICE_COLOUR
    from twin_service.config import load_params
    from twin_service.events import ServerOutage

    begin = load_params(small_scenario).scenario.begin_s
    options = RunOptions(scenario=small_scenario, backend="traci", gui=True, ticks=8, key_prefix=key_prefix)
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        rsu = next(sid for sid, tier in zip(engine.server_ids, engine.layout.tiers, strict=True) if tier == "rsu")
        other = next(sid for sid in engine.server_ids if sid not in (rsu, "sat") and not sid.startswith("sat"))
        outage = ServerOutage(kind="server_outage", server=rsu, at_s=begin + 2, duration_s=3)
        options.events = (outage,)
        colours = []
        run_loop(
            engine, store, options, should_stop=lambda: colours.append(engine.backend.api.poi.getColor(rsu)) and False
        )
        assert tuple(engine.backend.api.poi.getColor(other)) != OUT_OF_SERVICE_COLOUR
        store.clear()
    grey = [tuple(c) == OUT_OF_SERVICE_COLOUR for c in colours]
    assert grey.count(True) == 3 and grey.index(True) >= 2 and not grey[-1], colours  # in, then out of, service
