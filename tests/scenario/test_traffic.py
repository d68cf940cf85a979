"""Counting vehicles per edge from every kind of SUMO demand."""

from __future__ import annotations

import gzip

import pytest
import sumolib

from twin_service.scenario.traffic import edge_traffic

ROUTES = """<routes>
    <vType id="car"/>
    <route id="r0" edges="A0A1 A1A2"/>
    <vehicle id="v0" type="car" depart="0" route="r0"/>
    <vehicle id="v1" type="car" depart="1"><route edges="A0B0 B0C0"/></vehicle>
    <flow id="f0" type="car" begin="0" number="3" from="A0B0" to="B0C0"/>
    <trip id="t0" type="car" depart="2" from="A0A1" to="A1A2"/>
    <flow id="f1" type="car" begin="0" end="10" period="2" route="r0"/>
    <person id="p0" depart="0"><walk edges="A0A1 A1A2"/></person>
</routes>
"""


@pytest.mark.parametrize("gz", [False, True])
def test_counts_every_demand_kind(tiny_net, tmp_path, gz):
    path = tmp_path / ("r.rou.xml.gz" if gz else "r.rou.xml")
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(ROUTES)
    else:
        path.write_text(ROUTES)
    counts = edge_traffic(sumolib.net.readNet(str(tiny_net)), [path])
    # v0 + t0 + f1 (5 vehicles) on A0A1 and A1A2; v1 + f0 (3 vehicles) on A0B0 and B0C0
    assert counts == pytest.approx({"A0A1": 7.0, "A1A2": 7.0, "A0B0": 4.0, "B0C0": 4.0})
