"""capacity_aware_nearest: tiny exact cases, then what must always hold (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_service.policies import capacity_aware_nearest

SAT = 2
T = True
F = False


def test_a_full_server_sends_its_farthest_picker_to_the_next_nearest():
    dist = np.array([[10.0, 50.0, 1.0], [20.0, 30.0, 1.0], [30.0, 40.0, 1.0]])
    mask = np.ones((3, 3), dtype=bool)
    target = capacity_aware_nearest(dist, mask, free_bits=[2.0, 5.0, np.inf], incoming_bits=1.0, satellite_index=SAT)
    assert target.tolist() == [0, 0, 1]  # rsu 0 takes its two nearest pickers; the third goes to rsu 1


def test_with_no_room_anywhere_the_satellite_takes_the_rest():
    dist = np.array([[10.0, 50.0, 1.0], [20.0, 30.0, 1.0], [30.0, 40.0, 1.0]])
    mask = np.ones((3, 3), dtype=bool)
    target = capacity_aware_nearest(dist, mask, [1.0, 0.0, 0.0], 1.0, SAT)
    assert target.tolist() == [0, SAT, SAT]


def test_sizes_count_and_the_mask_is_respected():
    dist = np.array([[10.0, 50.0, 1.0], [20.0, 30.0, 1.0], [30.0, 40.0, 1.0], [5.0, 6.0, 1.0]])
    mask = np.array([[T, T, T], [T, T, T], [T, T, T], [F, F, T]])
    # rsu 0 (2 bits free) takes vehicle 0 (2 bits); 1 and 2 then find it full and go to rsu 1 (5 bits).
    target = capacity_aware_nearest(dist, mask, [2.0, 5.0, 0.0], [2.0, 1.0, 1.0, 1.0], SAT)
    assert target.tolist() == [0, 1, 1, SAT]


def test_equal_distances_keep_vehicle_order_and_zero_sized_twins_always_fit():
    dist = np.array([[10.0, 20.0, 1.0], [10.0, 20.0, 1.0]])
    mask = np.ones((2, 3), dtype=bool)
    assert capacity_aware_nearest(dist, mask, [1.0, 1.0, 0.0], 1.0, SAT).tolist() == [0, 1]
    assert capacity_aware_nearest(dist, mask, [0.0, 0.0, 0.0], 0.0, SAT).tolist() == [0, 0]


def test_the_satellite_is_never_picked_as_nearest_and_shapes_are_checked():
    dist = np.array([[10.0, 20.0, 0.5]])  # the satellite is "nearest" only on paper
    assert capacity_aware_nearest(dist, np.ones((1, 3), bool), [5.0, 5.0, 0.0], 1.0, SAT).tolist() == [0]
    assert capacity_aware_nearest(np.zeros((0, 3)), np.zeros((0, 3), bool), [1, 1, 1], 1.0, SAT).tolist() == []
    with pytest.raises(ValueError):
        capacity_aware_nearest(dist, np.ones((2, 3), bool), [1, 1, 1], 1.0, SAT)


@st.composite
def assignment_problems(draw):
    n_veh = draw(st.integers(0, 14))
    n_srv = draw(st.integers(2, 6))
    sat = draw(st.integers(0, n_srv - 1))
    dist = np.array(draw(st.lists(st.floats(0, 2000), min_size=n_veh * n_srv, max_size=n_veh * n_srv)))
    mask = np.array(draw(st.lists(st.booleans(), min_size=n_veh * n_srv, max_size=n_veh * n_srv)), dtype=bool)
    free = np.array(draw(st.lists(st.sampled_from([-1.0, 0.0, 1.0, 2.0, 3.0, 5.0]), min_size=n_srv, max_size=n_srv)))
    incoming = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=n_veh, max_size=n_veh)))
    mask = mask.reshape(n_veh, n_srv)
    mask[:, sat] = True
    return dist.reshape(n_veh, n_srv), mask, free, incoming, sat


@settings(max_examples=300, deadline=None)
@given(assignment_problems())
def test_assignments_are_feasible_within_capacity_and_nearest_with_room(problem):
    dist, mask, free, incoming, sat = problem
    target = capacity_aware_nearest(dist, mask, free, incoming, sat)
    n, m = dist.shape
    assert target.shape == (n,)
    assert mask[np.arange(n), target].all(), "a masked target"
    used = np.bincount(target, weights=incoming, minlength=m)
    left = free - used
    for s in range(m):
        if s != sat and (target == s).any():
            assert used[s] <= free[s], "a server took more than its free capacity"
    for v in range(n):
        # Every feasible ground/air server nearer than the chosen one (all of them, for a twin on the
        # satellite) ended with too little room for this twin.
        chosen = np.inf if target[v] == sat else dist[v, target[v]]
        for s in range(m):
            if s != sat and mask[v, s] and dist[v, s] < chosen:
                assert left[s] < incoming[v], f"vehicle {v} skipped server {s} that had room"
