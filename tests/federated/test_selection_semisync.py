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


def _update(client: int, value: float, n: int, score: float = 1.0, version: int = 0) -> ClientUpdate:
    return ClientUpdate(client, [np.array([value])], n, score, version)


def test_round_closes_by_count_before_time_and_rsus_aggregate_eq31() -> None:
    server = SemiSyncServer(Thresholds(tau_agg_s=5.0, n_agg=3), adaptive=False)
    server.receive(7, _update(1, 1.0, 1))
    server.receive(7, _update(2, 2.0, 1))
    assert server.step(1.0) is None
    server.receive(9, _update(3, 6.0, 2))
    agg = server.step(2.0)
    assert agg is not None and agg.reason == "count" and agg.received == 3 and agg.rsus == 2
    # RSU 7: (1 + 2) / 2 = 1.5 with weight 2; RSU 9: 6 with weight 2; global (1.5 * 2 + 6 * 2) / 4 = 3.75,
    # the same as Eq. 31 over the three vehicles: (1 + 2 + 2 * 6) / 4
    assert agg.delta[0][0] == pytest.approx(3.75)
    assert server.version == 1 and server.received == 0
    assert server.step(3.0) is None  # a new round, nothing pending


def test_round_closes_by_time_with_few_updates() -> None:
    server = SemiSyncServer(Thresholds(tau_agg_s=5.0, n_agg=10), adaptive=False)
    server.restart_clock(100.0)
    server.receive(1, _update(1, 4.0, 1))
    assert server.step(104.9) is None
    agg = server.step(105.0)
    assert agg is not None and agg.reason == "time" and agg.delta[0][0] == pytest.approx(4.0)
    assert server.step(200.0) is None  # time alone never aggregates nothing


def test_low_scores_are_left_out_and_late_updates_counted_stale() -> None:
    server = SemiSyncServer(Thresholds(sigma_min=0.5, tau_agg_s=5.0, n_agg=2), adaptive=False)
    server.version = 3
    server.receive(1, _update(1, 10.0, 1, score=0.1, version=3))
    server.receive(1, _update(2, 2.0, 1, score=0.9, version=2))
    agg = server.step(0.0)
    assert agg is not None and agg.admitted == 1 and agg.delta[0][0] == pytest.approx(2.0) and agg.stale == 1


def test_adaptive_thresholds_eq45() -> None:
    server = SemiSyncServer(Thresholds(tau_agg_s=5.0, n_agg=4))
    for k in range(4):
        server.receive(1, _update(k, 1.0, 1))
    server.step(0.5)  # a fast count trigger: N_agg + 1, tau_agg - 0.5
    assert server.thresholds.n_agg == 5 and server.thresholds.tau_agg_s == pytest.approx(4.5)
    server.receive(1, _update(9, 1.0, 1))
    server.step(5.0)  # a slow time trigger: N_agg - 1, tau_agg + 0.5
    assert server.thresholds.n_agg == 4 and server.thresholds.tau_agg_s == pytest.approx(5.0)


def test_flush_closes_a_partial_round() -> None:
    server = SemiSyncServer()
    assert server.flush(1.0) is None
    server.receive(2, _update(1, 3.0, 5))
    agg = server.flush(1.0)
    assert agg is not None and agg.delta[0][0] == pytest.approx(3.0)
