"""The per-server actor on layouts denser than the one it learned on (issue 17): a site of several stacked units is
one candidate, and a layout whose sites reach more others gets more candidates in proportion.

The committed city keeps its decisions: no stacked units, the count it learned with (``dm-mappo-city`` weighs its
eight nearest servers there, as trained).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from twin_service.config import BITS_PER_MB
from twin_service.observe import ServerTable, VehicleMotion, migration_observation
from twin_service.policies import ModelRegistry
from twin_service.policies.learned import build_migration_policy
from twin_service.policies.per_server import (
    TurnScorer,
    candidates_for,
    layout_reach,
    layout_sites_in_reach,
    sites_in_reach,
    trained_reach,
)
from twin_service.scenario.folder import Scenario

REPO = Path(__file__).resolve().parents[2]


def test_sites_in_reach_counts_other_sites_within_range_once_per_site():
    # Four sites on a line 500 m apart, the second with three stacked units; range 1,000 m.
    xy = np.array([[0, 0], [500, 0], [500, 0], [500, 0], [1000, 0], [1500, 0]], dtype=float)
    rng = np.full(len(xy), 1000.0)
    # Site reaches: 0 -> 500, 1000 (2); 500 -> 0, 1000, 1500 (3); 1000 -> 3; 1500 -> 2: median 2.5.
    assert sites_in_reach(xy, rng) == 2.5
    assert sites_in_reach(xy[:1], rng[:1]) == 0.0


def test_the_count_grows_with_the_layout_density_and_never_falls_below_the_trained_one():
    assert candidates_for(8, 14.0, 14.0) == 8  # the layout it learned on
    assert candidates_for(8, 14.0, 0.0) == 8  # a sparser one (rural)
    assert candidates_for(8, 14.0, None) == 8  # no positions in the observation
    assert candidates_for(8, None, 105.0) == 8  # unknown training layout
    assert candidates_for(8, 14.0, 28.0) == 16
    assert candidates_for(8, 14.0, 105.0) == 60


def test_the_served_model_weighs_the_count_it_learned_with_on_the_city():
    """``dm-mappo-city`` learned on the city: its reach there, computed from the scenario it names, gives back the
    eight candidates it was trained with; the rebuilt rural scenario (sparser) the same."""
    loaded = ModelRegistry(REPO / "models").load("dm-mappo-city")
    city = Scenario.load("city")
    reach = trained_reach(loaded.manifest)
    assert reach == layout_sites_in_reach(city.layout) > 0
    policy = build_migration_policy(loaded.manifest, loaded.state_dict, city.params.task)
    for name in ("city", "rural"):
        layout = Scenario.load(name).layout
        assert candidates_for(policy.nearest, reach, layout_sites_in_reach(layout)) == policy.nearest == 8


def _dense_tick(spacing_m: float, n: int = 300, seed: int = 3):
    """A grid of 49 RSU sites ``spacing_m`` apart (range 1,200 m), a UAV and the satellite, ``n`` vehicles."""
    rng = np.random.default_rng(seed)
    g = np.arange(7) * spacing_m
    sxy = np.array([[x, y] for x in g for y in g] + [[g.mean(), g.mean()], [g.mean(), g.mean()]])
    m = len(sxy)
    tiers = ("rsu",) * 49 + ("uav", "satellite")
    servers = ServerTable(
        tuple(f"s{k}" for k in range(m)), tiers, np.array([1200.0] * 49 + [1500.0, 1e12]),
        np.array([300 * BITS_PER_MB] * 50 + [1e15]), np.array([32e9] * 50 + [80e9]),
        np.array([0.0] * 49 + [50.0, 550e3]),
    )  # fmt: skip
    vxy = rng.uniform(0, g[-1], size=(n, 2))
    dist = np.hypot(np.hypot(*(vxy[:, None, :] - sxy[None]).transpose(2, 0, 1)), servers.altitude_m).astype(np.float32)
    host = np.argmin(np.where(servers.is_satellite[None, :], np.inf, dist), axis=1)
    loads = rng.uniform(50, 150, m) * BITS_PER_MB
    loads[-1] = 0.0
    motion = VehicleMotion.from_twins(
        vxy[:, 0], vxy[:, 1], rng.uniform(0, 14, n), rng.uniform(0, 360, n), sxy[:, 0], sxy[:, 1]
    )
    return migration_observation(dist, loads, 2 * BITS_PER_MB, servers, host, motion=motion), host


def test_a_dense_layout_gets_more_candidates_and_decides_as_the_reference():
    """On a grid whose sites are 200 m apart (each reaches dozens) the served actor weighs more than eight servers
    per vehicle, in both paths, and the fast path still gives the reference's decisions; 1 km apart, eight."""
    loaded = ModelRegistry(REPO / "models").load("dm-mappo-city")
    params = Scenario.load("city").params

    def build():  # noqa: ANN202
        return build_migration_policy(loaded.manifest, loaded.state_dict, params.task, params.channel, params.satellite)

    reference, fast = build(), build()
    sparse, _ = _dense_tick(1000.0)
    assert fast.nearest_for(sparse) == 8
    obs, host = _dense_tick(200.0)
    k = fast.nearest_for(obs)
    assert k == candidates_for(8, trained_reach(loaded.manifest), layout_reach(obs)) > 8
    scorer = TurnScorer(fast)
    first = scorer(obs, host, np.arange(obs.mask.shape[0]))
    per_vehicle = np.bincount(first.rows, minlength=obs.mask.shape[0])
    assert per_vehicle.max() > 10 and scorer.nearest == k
    ref = reference.decide_reference(obs, obs.servers, host)
    got = fast.decide(obs, obs.servers, host)
    np.testing.assert_array_equal(got.target, ref.target)
    np.testing.assert_allclose(got.probabilities, ref.probabilities, atol=1e-5)
