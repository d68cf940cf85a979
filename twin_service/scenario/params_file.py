"""Writing a scenario's ``params.toml``: every constant of ScenarioParams, with the papers beside ours.

``tomllib`` only reads TOML, and the file needs comments (the paper's value and why ours differs),
so it is rendered here by hand. :func:`render_params` is deterministic (no timestamps), and what it
writes reads back (:func:`twin_service.config.load_params`) to the same ScenarioParams.
"""

from __future__ import annotations

import json
import math

import numpy as np

from twin_service.config import ScenarioParams

SECTIONS = (
    "scenario",
    "simulation",
    "demand",
    "channel",
    "task",
    "rsu",
    "uav",
    "satellite",
    "reward",
    "offload",
    "layout",
    "calibration",
)

# (section, key) -> "paper X: value; why ours differs", or what ours is where the paper is silent.
COMMENTS: dict[tuple[str, str], str] = {
    ("simulation", "tick_s"): "paper B: twins synced every 1 s",
    ("simulation", "decision_interval_s"): "paper A: 30 s slot; the service decides every tick",
    ("simulation", "history_window"): "paper B Eq. 37: 10 s window at 1 s",
    ("demand", "offpeak_veh_per_km2"): "paper B: 20 off-peak",
    ("demand", "peak_veh_per_km2"): "paper B: 60 at peak",
    ("demand", "peak_time_s"): "papers: not given; mid-run so the peak has a ramp either side",
    ("demand", "mean_trip_s"): "papers: not given; measured (seed 1) at the off-peak density",
    ("demand", "peak_mean_trip_s"): "papers: not given; measured (seed 1) at the peak density",
    ("demand", "segment_s"): "ours: insertion rate steps every segment",
    ("demand", "min_trip_m"): "ours: randomTrips --min-distance",
    ("demand", "downtown_gain"): "ours: trip ends concentrate downtown",
    ("demand", "downtown_sigma_m"): "ours: width of the downtown bump",
    ("channel", "carrier_hz"): "paper A: f not given; 2.4 GHz (NOTES.md)",
    ("channel", "gain_coefficient"): "paper A: A not given; 1 (NOTES.md)",
    ("channel", "noise_w"): "paper A Table I: sigma^2 = 1e-13 W",
    ("channel", "vehicle_tx_power_w"): "paper A Table I: '1000 W', read as 1000 mW (NOTES.md)",
    ("channel", "server_tx_power_w"): "paper A: p_m not given; 1 W like the vehicles",
    ("channel", "bandwidth_up_hz"): "paper A Table I: 300 MHz",
    ("channel", "bandwidth_down_hz"): "paper A Table I: 300 MHz",
    ("channel", "bandwidth_mig_hz"): "paper A: B_mig not given; 300 MHz like up/down",
    ("channel", "satellite_rate_bps"): "paper A: R_SAT not given; Starlink-like 150 Mbit/s",
    ("task", "data_size_mb"): "paper A: S_v 2 MB (gives its 8.42 ms per transmission)",
    ("task", "migration_size_mb"): "paper A Table I: S_mig 60 MB",
    ("task", "cycles_per_bit"): (
        "paper A Table I: 1000; calibrated (see [calibration]): S_v arrives every 1 s tick, not per 30 s"
    ),
    ("rsu", "range_m"): "paper A Table I: D_max 1200 m",
    ("rsu", "cache_mb"): "paper A Table I: L_max 300 MB",
    ("rsu", "cpu_hz"): "paper A Table I: C_m 32 GHz",
    ("uav", "count"): "paper A Table I: 10 UAVs",
    ("uav", "altitude_m"): "paper A Table I: 50 m",
    ("uav", "speed_mps"): "paper A Table I: 3.7 m/s",
    ("uav", "range_m"): "paper A Table I: D_max 1500 m",
    ("uav", "cache_mb"): "paper A Table I: L_max 300 MB",
    ("uav", "cpu_hz"): "paper A Table I: C_m 32 GHz",
    ("satellite", "altitude_m"): "paper A: LEO, altitude not given; 550 km (Starlink shell)",
    ("satellite", "cpu_hz"): "paper A Table I: C_s 80 GHz",
    ("satellite", "cache_mb"): "paper A: no limit; effectively unlimited, never masked (Eq. 23)",
    ("satellite", "queue_mb"): (
        "paper A: unbounded; ours: as long a wait as a full RSU cache (300 MB x 80 / 32 GHz); overflow fails (Eq. 14)"
    ),
    ("reward", "w_latency"): "paper A Eq. 21: 2",
    ("reward", "w_load"): "paper A Eq. 21: 1",
    ("reward", "w_failure"): "paper A Eq. 21: 1",
    ("offload", "vehicle_cpu_hz"): "paper B Table IV: 1.5-2.5 GHz",
    ("offload", "rsu_cpu_hz"): "paper B Table IV: 2.5-3.5 GHz",
    ("offload", "rsu_rate_bps"): "paper B Table IV: 100-150 Mbit/s",
    ("offload", "vehicle_energy_wh"): "paper B Table IV: 200-300 Wh",
    ("offload", "rsu_energy_wh"): "paper B: not given",
    ("offload", "deadline_s"): "paper B Table IV: 0.1-1.0 s",
    ("offload", "task_cycles"): "paper B Table IV: 0.5-1.5 Gcycles",
    ("offload", "task_size_mb"): "paper B Table IV: 0.5-2.0 MB",
    ("offload", "tx_power_w"): "paper B Table IV: 0.1 W",
    ("offload", "bandwidth_hz"): "paper B Table IV: 10 MHz",
    ("offload", "path_loss_exponent"): "paper B Table IV: 3",
    ("offload", "channel_gain"): (
        "paper B: h_n = 1e-7 gives r ~ 0; h^2 = 1.2e-3 gives r(1000 m) = 20 Mbit/s (physics.channel)"
    ),
    ("offload", "max_rate_bps"): "paper B: no cap; Eq. 8 truncated at Table IV's top rate, 50 Mbit/s",
    ("offload", "noise_dbm_per_hz"): "paper B Table IV: -174 dBm/Hz",
    ("offload", "interference_w"): "paper B: I not given; 0",
    ("offload", "kappa_local"): "paper B Table IV: 1e-6",
    ("offload", "kappa_edge"): "paper B: kappa' not given; an MEC server's cycle costs a tenth of an OBU's",
    ("offload", "output_ratio"): "paper B Table IV: delta 0.1",
    ("offload", "twin_sync_energy_j"): "paper B: E_DT not given; 0",
    ("offload", "twin_sync_delay_s"): "paper B: not given; 0",
    ("offload", "price_per_task"): "paper B: p_n not given; a full offload uses half the price budget",
    ("offload", "energy_max_j"): "paper B: E_max not given; local energy of the largest task",
    ("offload", "price_max"): "paper B: P_max not given; the price budget per task",
}


def toml_float(value: float) -> str:
    """Shortest TOML float that reads back to exactly ``value``."""
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        text = np.format_float_scientific(v, unique=True, trim="-", exp_digits=1)
        text = text.replace("e+", "e")
        if "." not in text.split("e")[0]:
            text = text.replace("e", ".0e", 1)
    else:
        text = repr(v)
    if float(text) != v:  # pragma: no cover - format_float_scientific(unique=True) round-trips
        text = repr(v)
    return text


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return toml_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


SHARED_CYCLES_PER_BIT_COMMENT = "paper A Table I: 1000; the city's calibrated e_v (shared physics), see [calibration]"


def render_params(
    params: ScenarioParams, header: str | None = None, comments: dict[tuple[str, str], str] | None = None
) -> str:
    """``params.toml`` text for ``params``, with the papers' values as comments.

    ``comments`` overrides entries of :data:`COMMENTS` for this file.
    """
    notes = {**COMMENTS, **(comments or {})}
    data = params.model_dump(mode="python")
    name = params.scenario.name
    lines = [
        header
        or (
            f"# Parameters of scenario '{name}' (twin_service.config.ScenarioParams).\n"
            f"# Written by 'twin-service scenario build {name} --seed {params.scenario.seed}': "
            "rebuild rather than edit.\n"
            "# SI units (m, s, Hz, W, bit/s) unless a name says otherwise "
            "(_mb: 10^6 bytes, _wh: watt-hours).\n"
            "# A comment gives the paper's value where it differs from ours, with the reason."
        ),
    ]
    for section in SECTIONS:
        table = data.get(section) or {}
        lines.append("")
        lines.append(f"[{section}]")
        for key, value in table.items():
            if value is None:
                continue  # TOML has no null: an absent key takes the default (None)
            text = f"{key} = {toml_value(value)}"
            comment = notes.get((section, key))
            lines.append(f"{text}  # {comment}" if comment else text)
    return "\n".join(lines) + "\n"
