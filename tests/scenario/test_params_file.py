"""params.toml: written with comments, read back to the same ScenarioParams."""

from __future__ import annotations

import math
import tomllib

from hypothesis import given
from hypothesis import strategies as st

from twin_service.config import ScenarioParams, load_params
from twin_service.scenario.calibrate import CITY_CYCLES_PER_BIT
from twin_service.scenario.params_file import render_params, toml_float


@given(st.floats(allow_nan=False))
def test_toml_float_reads_back_exactly(value):
    text = toml_float(value)
    parsed = tomllib.loads(f"x = {text}")["x"]
    assert parsed == value and math.copysign(1, parsed) == math.copysign(1, value)


def test_render_reads_back_to_the_same_params(city_dir, rural_dir):
    for folder in (city_dir, rural_dir):
        params = load_params(folder)
        again = ScenarioParams.model_validate(tomllib.loads(render_params(params)))
        assert again == params
        assert again.param_hash == params.param_hash


def test_every_constant_is_written_with_the_papers_beside(city_dir):
    text = (city_dir / "params.toml").read_text()
    raw = tomllib.loads(text)
    defaults = ScenarioParams.model_validate({"scenario": {"name": "x"}}).model_dump()
    for section, fields in defaults.items():
        if isinstance(fields, dict) and section not in ("layout", "calibration", "scenario"):
            missing = {k for k, v in fields.items() if v is not None} - set(raw[section])
            assert not missing, f"[{section}] lacks {missing}"
    commented = ("simulation", "demand", "channel", "task", "rsu", "uav", "satellite", "reward", "offload")
    section = None
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section in commented and " = " in line:
            assert "  # " in line, f"[{section}] {line.split(' = ')[0]} has no comment"
    assert f"cycles_per_bit = {toml_float(CITY_CYCLES_PER_BIT)}  # paper A Table I: 1000" in text
    assert "# paper A Table I: C_s 80 GHz" in text
    assert raw["calibration"]["overloaded_rsu_share_at_peak"] >= 0.1
