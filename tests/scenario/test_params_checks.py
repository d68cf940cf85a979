"""A bad params.toml is refused by name before anything runs: non-finite or non-positive physics, backwards
ranges, and RSU/UAV/satellite values that disagree with the layout file."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_service.bridge.runner import Scenario
from twin_service.config import ScenarioError, load_params


def _edited_city(city_dir: Path, folder: Path, old: str, new: str) -> Path:
    """The committed city's params.toml with one line changed, every file it names taken from the city."""
    text = (city_dir / "params.toml").read_text()
    assert text.count(old) >= 1, old
    text = text.replace(old, new, 1)
    for name in ("net.net.xml.gz", "routes.rou.xml.gz", "edge_servers.add.xml", "scenario.sumocfg"):
        text = text.replace(f'"{name}"', f'"{city_dir / name}"')
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.toml").write_text(text)
    return folder


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("deadline_s = [0.1, 1.0]", "deadline_s = [1.0, -0.1]", "offload.deadline_s.1: Input should be greater than 0"),
        (
            "task_size_mb = [0.5, 2.0]",
            "task_size_mb = [2.0, 0.5]",
            "offload.task_size_mb: the range [2, 0.5] is backwards",
        ),
        ("cycles_per_bit = 72.3", "cycles_per_bit = nan", "task.cycles_per_bit: Input should be a finite number"),
        ("cycles_per_bit = 72.3", "cycles_per_bit = inf", "task.cycles_per_bit: Input should be a finite number"),
        ("cycles_per_bit = 72.3", "cycles_per_bit = 0.0", "task.cycles_per_bit: Input should be greater than 0"),
        ("range_m = 1200.0", "range_m = -1200.0", "rsu.range_m: Input should be greater than 0"),
        ("cpu_hz = 3.2e10", "cpu_hz = 0", "rsu.cpu_hz: Input should be greater than 0"),
        ("count = 10", "count = -3", "uav.count: Input should be greater than or equal to 0"),
        ("noise_w = 1.0e-13", "noise_w = -inf", "channel.noise_w: Input should be a finite number"),
        ("seed = 1\n", "seed = -1\n", "scenario.seed: Input should be greater than or equal to 0"),
        ("end_s = 3600.0", "end_s = 0.0", "scenario.end_s: Input should be greater than 0"),
    ],
)
def test_bad_physics_is_refused_naming_the_key(city_dir: Path, tmp_path: Path, old: str, new: str, message: str):
    folder = _edited_city(city_dir, tmp_path / "s", old, new)
    with pytest.raises(ScenarioError) as err:
        load_params(folder)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("range_m = 1200.0", "range_m = 1000.0",
         "rsu 'rsu_00' has range_m = 1200 but params.toml [rsu] range_m = 1000"),
        ("cache_mb = 300.0  # paper A Table I: L_max 300 MB\ncpu_hz = 3.2e10", "cache_mb = 250.0\ncpu_hz = 3.2e10",
         "rsu 'rsu_00' has cache_mb = 300 but params.toml [rsu] cache_mb = 250"),
        ("speed_mps = 3.7", "speed_mps = 5.0", "uav 'uav_00' has speed_mps = 3.7 but params.toml [uav] speed_mps = 5"),
        ("count = 10", "count = 4", "has 10 UAVs but params.toml [uav] count = 4"),
        ("cpu_hz = 8.0e10", "cpu_hz = 9.0e10",
         "satellite 'sat_0' has cpu_hz = 8e+10 but params.toml [satellite] cpu_hz"),
    ],
)  # fmt: skip
def test_params_and_layout_must_agree(city_dir: Path, tmp_path: Path, old: str, new: str, message: str):
    """params.toml is the one source of each tier's values; the layout file repeating them must match."""
    folder = _edited_city(city_dir, tmp_path / "s", old, new)
    load_params(folder)  # valid on its own
    with pytest.raises(ScenarioError, match="must agree|params.toml is the source") as err:
        Scenario.load(folder)
    assert message in str(err.value), str(err.value)


def test_the_committed_scenarios_agree_with_their_layouts():
    for name in ("city", "rural"):
        scenario = Scenario.load(name)
        assert len(scenario.layout.uavs) == scenario.params.uav.count
