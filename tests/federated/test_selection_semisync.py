"""Client selection (Eq. 24) and the semi-synchronous RSU server (Sec. V-E)."""

from __future__ import annotations

import numpy as np
import pytest

from twin_service.federated.aggregate import Thresholds
from twin_service.federated.selection import SelectionCriteria, eligible, predicted_stay_s
from twin_service.federated.semisync import ClientUpdate, SemiSyncServer


def test_predicted_stay_worst_case() -> None:
    stay = predicted_stay_s([900.0, 1000.0, 1300.0, 500.0], [1000.0, 1000.0, 1000.0, 1000.0], [10.0, 5.0, 5.0, 0.0])
    np.testing.assert_allclose(stay[:3], [10.0, 0.0, 0.0])  # (1000 - 900) / 10; at the edge; outside
    assert np.isinf(stay[3])  # standing inside the range


def test_eligibility_eq24_thresholds_are_inclusive() -> None:
    c = SelectionCriteria()  # 1.5 GHz, 150 Wh, 2 s
    ok = eligible([1.5e9, 1.49e9, 2e9, 2e9], [150.0, 200.0, 149.9, 200.0], [2.0, 5.0, 5.0, 1.99], c)
    np.testing.assert_array_equal(ok, [True, False, False, False])


def _update(client: int, value: float, n: int, score: float = 1.0) -> ClientUpdate:
    return ClientUpdate(client, [np.array([value])], n, score)


def test_rsu_aggregates_by_count_before_time() -> None:
    server = SemiSyncServer(Thresholds(tau_agg_s=5.0, n_agg=3), adaptive=False)
    server.receive(7, _update(1, 1.0, 1), 0.0)
    server.receive(7, _update(2, 2.0, 1), 1.0)
    assert server.step(1.0) == []
    server.receive(7, _update(3, 6.0, 2), 2.0)
    (agg,) = server.step(2.0)
    assert agg.reason == "count" and agg.received == 3
    assert agg.delta[0][0] == pytest.approx((1.0 + 2.0 + 2 * 6.0) / 4)  # Eq. 31 with |D_n| = 1, 1, 2
    assert server.step(3.0) == []  # the buffer was emptied


def test_rsu_aggregates_by_time_and_rsus_are_independent() -> None:
    server = SemiSyncServer(Thresholds(tau_agg_s=5.0, n_agg=10), adaptive=False)
    server.receive(1, _update(1, 4.0, 1), 0.0)
    server.receive(2, _update(2, 8.0, 1), 3.0)
    assert server.step(4.9) == []
    fired = server.step(5.0)
    assert [(a.rsu, a.reason) for a in fired] == [(1, "time")]
    assert [a.rsu for a in server.step(8.0)] == [2]


def test_low_scores_are_left_out() -> None:
    server = SemiSyncServer(Thresholds(sigma_min=0.5, tau_agg_s=5.0, n_agg=2), adaptive=False)
    server.receive(1, _update(1, 10.0, 1, score=0.1), 0.0)
    server.receive(1, _update(2, 2.0, 1, score=0.9), 0.0)
    (agg,) = server.step(0.0)
    assert agg.admitted == 1 and agg.delta[0][0] == pytest.approx(2.0)


def test_adaptive_thresholds_move_per_rsu() -> None:
    server = SemiSyncServer(Thresholds(tau_agg_s=5.0, n_agg=4))
    for k in range(4):
        server.receive(1, _update(k, 1.0, 1), 0.0)
    server.step(0.5)  # a fast count trigger: N_agg + 1, tau_agg - 0.5
    th = server.rsus[1].thresholds
    assert th.n_agg == 5 and th.tau_agg_s == pytest.approx(4.5)
    server.receive(1, _update(9, 1.0, 1), 1.0)
    server.step(5.5)  # a slow time trigger: N_agg - 1, tau_agg + 0.5
    assert server.rsus[1].thresholds.n_agg == 4 and server.rsus[1].thresholds.tau_agg_s == pytest.approx(5.0)
