"""A scenario folder resolved into what a run needs: parameters, edge-server layout, projection, SUMO config."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from twin_service.config import ScenarioError, ScenarioParams, load_params, resolve_scenario
from twin_service.scenario.edge_servers import EdgeLayout, check_layout_matches_params, read_edge_servers
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
        check_layout_matches_params(layout, params, folder / meta.edge_servers_file)
        projection = read_projection(_resolve(folder, meta.net_file))
        sumocfg = folder / meta.sumocfg
        if not sumocfg.is_file():
            raise ScenarioError(f"{folder}: no SUMO configuration {meta.sumocfg}")
        return cls(folder, params, layout, projection, sumocfg)

    @cached_property
    def mobility_hash(self) -> str:
        """Hash of what decides how vehicles drive: the net, the routes, the SUMO configuration's time span and
        (for days regenerated from it) the demand profile; not the edge servers' physics.

        A recording stays valid for any physics of the same city: hosting and offloading never change the
        traffic, so changing a server's queue or a task's size does not call for new recordings.
        """
        h = hashlib.sha256()
        meta = self.params.scenario
        files = [_resolve(self.folder, meta.net_file)] + [_resolve(self.folder, r) for r in meta.route_files]
        for path in files:
            h.update(path.name.encode())
            h.update(path.read_bytes() if path.is_file() else b"missing")
        try:
            inputs = {e.tag: e.get("value", e.get("v", "")) for e in ET.parse(self.sumocfg).getroot().iter()}
        except (ET.ParseError, OSError):
            inputs = {}
        spans = {k: inputs.get(k, "") for k in ("begin", "end", "step-length", "route-files", "net-file")}
        h.update(json.dumps(spans, sort_keys=True).encode())
        h.update(json.dumps(self.params.demand.model_dump(mode="json"), sort_keys=True).encode())
        h.update(json.dumps([meta.name, meta.begin_s, meta.end_s, self.params.simulation.tick_s]).encode())
        return h.hexdigest()[:16]

    def check_recording(self, path: str | Path, mobility_hash: str, param_hash: str, recorded_on: str) -> None:
        """Raise :class:`ScenarioError` unless a recording was made of this scenario's mobility."""
        if mobility_hash:
            if mobility_hash != self.mobility_hash:
                raise ScenarioError(
                    f"{path} was recorded on another city or demand ({recorded_on}, mobility {mobility_hash}); "
                    f"scenario {self.params.scenario.name!r} has mobility {self.mobility_hash}"
                )
        elif param_hash != self.params.param_hash:  # recordings older than the mobility hash
            raise ScenarioError(
                f"{path} was recorded on scenario parameters {param_hash} ({recorded_on}); "
                f"scenario {self.params.scenario.name!r} has {self.params.param_hash}"
            )

    def with_params(self, params: ScenarioParams) -> Scenario:
        """The same folder with other parameters (an evaluation sweep: migration size, task size...)."""
        return replace(self, params=params)


def _resolve(folder: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else folder / p
