"""Days of a scenario: the same city and demand profile, with other trips.

A seed is a day. For the built scenarios (``city``, ``rural``) the day's demand is regenerated with
randomTrips from the same density profile (:mod:`twin_service.scenario.demand`) and that seed; the
scenario's own seed is the committed routes file. For an imported scenario the routes are the city's own
files and a seed changes only SUMO's randomness (departure lanes, speed factors, ``--scale`` sampling).

Generated routes are cached under ``days/`` of the data folder (:func:`twin_service.config.data_dir`:
``TWIN_DATA_DIR``, or ``data/`` of the checkout; the same seed gives the same file).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from twin_service.config import ScenarioError, ScenarioParams, data_dir
from twin_service.scenario.build import ROUTES_FILE, SPECS
from twin_service.scenario.demand import build_demand
from twin_service.scenario.geo import read_projection
from twin_service.scenario.tools import write_reproducible


def days_dir() -> Path:
    """Where generated days are cached: ``days/`` of the data folder."""
    return data_dir() / "days"


@dataclass(frozen=True)
class Day:
    """The route files SUMO runs a day with (None: the scenario configuration's own) and where they came from."""

    seed: int
    route_files: tuple[Path, ...] | None
    description: str

    def sumo_args(self) -> list[str]:
        """Extra SUMO options that load this day's routes instead of the configuration's."""
        if self.route_files is None:
            return []
        return ["--route-files", ",".join(str(p) for p in self.route_files)]


def is_built(params: ScenarioParams) -> bool:
    """Whether the scenario is one of the built kinds with its generated routes (not an imported city)."""
    return params.scenario.name in SPECS and list(params.scenario.route_files) == [ROUTES_FILE]


def scenario_day(folder: Path, params: ScenarioParams, seed: int, cache_dir: Path | None = None) -> Day:
    """The routes of day ``seed`` of the scenario in ``folder`` (generated and cached on first use)."""
    if not 0 <= seed <= 2**31 - 1:
        raise ScenarioError(f"a day's seed must be an integer in [0, 2147483647], got {seed}")
    if not is_built(params):
        return Day(seed, None, f"the scenario's own routes; SUMO seed {seed}")
    if seed == params.scenario.seed:
        return Day(seed, None, f"the scenario's committed routes (its seed {seed})")
    cache = (cache_dir or days_dir()) / f"{params.scenario.name}-{params.param_hash}"
    routes = cache / f"day-{seed}.rou.xml.gz"
    if not routes.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        net = (folder / params.scenario.net_file).resolve()
        area_km2 = read_projection(net).area_km2
        with tempfile.TemporaryDirectory(prefix=f"twin-day-{seed}-") as tmp:
            generated = build_demand(net, params.demand, params.scenario.end_s, area_km2, seed, Path(tmp))
            partial = routes.with_name(f"day-{seed}.partial.rou.xml.gz")
            write_reproducible(generated, partial)
            partial.replace(routes)
    return Day(seed, (routes,), f"demand regenerated with seed {seed} (same density profile)")
