"""A scenario folder resolved into what a run needs: parameters, edge-server layout, projection, SUMO config."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from twin_service.config import ScenarioError, ScenarioParams, load_params, resolve_scenario
from twin_service.scenario.edge_servers import EdgeLayout, read_edge_servers
from twin_service.scenario.geo import NetProjection, read_projection


@dataclass(frozen=True)
class Scenario:
    """A scenario folder resolved into what the bridge needs."""

    folder: Path
    params: ScenarioParams
    layout: EdgeLayout
    projection: NetProjection
    sumocfg: Path

    @classmethod
    def load(cls, name_or_path: str | Path) -> Scenario:
        folder = resolve_scenario(name_or_path)
        params = load_params(folder)
        meta = params.scenario
        layout = read_edge_servers(folder / meta.edge_servers_file)
        projection = read_projection(_resolve(folder, meta.net_file))
        sumocfg = folder / meta.sumocfg
        if not sumocfg.is_file():
            raise ScenarioError(f"{folder}: no SUMO configuration {meta.sumocfg}")
        return cls(folder, params, layout, projection, sumocfg)

    def with_params(self, params: ScenarioParams) -> Scenario:
        """The same folder with other parameters (an evaluation sweep: migration size, task size...)."""
        return replace(self, params=params)


def _resolve(folder: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else folder / p
