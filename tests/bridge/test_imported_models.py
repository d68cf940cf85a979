"""The city's trained models serve an imported city: its servers keep the city's physics, so their inputs mean
the same (``twin_service.policies.fit``); before, AF-MARL was refused on any scenario hash but the city's."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from twin_service.bridge.runner import RunOptions, open_bridge, run_loop
from twin_service.config import MODELS_DIR


@pytest.mark.timeout(300)
def test_trained_models_serve_an_imported_city(dense_import, redis_server, key_prefix, tmp_path):
    kpi_csv = tmp_path / "ticks.csv"
    options = RunOptions(
        scenario=dense_import.out,
        key_prefix=key_prefix,
        ticks=40,
        kpi_csv=kpi_csv,
        migration_policy="dm-mappo-city",
        offload_policy="af-marl-city",
        forecaster="city-predictor",
        models_dir=MODELS_DIR,
    )
    with open_bridge(options, redis=redis_server) as (engine, store, handle):
        decisions = engine.decisions
        assert (decisions.migration.name, decisions.offload.name) == ("dm-mappo-city", "af-marl-city")
        decided = []
        decide = decisions.decide

        def spy(ctx):  # noqa: ANN001, ANN202
            decided.append(decide(ctx))
            return decided[-1]

        decisions.decide = spy
        summary = run_loop(engine, store, options, url=handle.url)
    rho = np.concatenate([np.asarray(d.rho) for d in decided[5:]])
    assert summary["ticks"] == 40 and summary["fallback_ticks"] == 0
    with kpi_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert float(rows[-1]["vehicles"]) > 100 and float(rows[-1]["task_success_rate"]) > 0
    fractional = (rho > 0) & (rho < 1)
    assert fractional.mean() > 0.5  # the actor's fractions, not nearest-least-loaded's all-or-nothing
