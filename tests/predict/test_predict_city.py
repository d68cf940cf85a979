"""The city's load series: recorded days replayed through the engine under the default policy, split by day."""

from __future__ import annotations

import numpy as np
import pytest

from twin_service.config import BITS_PER_MB
from twin_service.envs.load_series import city_series
from twin_service.policies import DEFAULT_MIGRATION_POLICY
from twin_service.predict.features import CITY_FEATURES
from twin_service.scenario.folder import Scenario


def test_a_recorded_day_gives_every_servers_load_and_hosted_twins(small_scenario, small_recording, tmp_path):
    data = city_series(
        [small_recording], small_scenario, val_days=(), test_days=(3,), cache_dir=tmp_path, progress=False
    )
    sc = Scenario.load(small_scenario)
    assert data.features == CITY_FEATURES and not data.train and not data.val
    (day,) = data.test
    assert day.name == "test-grid-s3" and day.values.shape == (300, len(sc.layout), 2)
    load, hosted = day.values[..., 0], day.values[..., 1]
    s_v = sc.params.task.data_size_mb * BITS_PER_MB
    assert (load >= s_v * hosted - 1e-6).all()  # Eq. 8: backlog + S_v per hosted twin
    assert hosted.sum(axis=1).max() > 20 and load.max() > 0
    assert np.array_equal(hosted, np.round(hosted))
    spec = data.spec
    assert spec.source == "city" and spec.split.method == "days" and spec.split.test == ["test-grid-s3"]
    assert spec.scenario_param_hash == sc.params.param_hash and spec.migration_policy == DEFAULT_MIGRATION_POLICY
    assert spec.recordings[0]["seed"] == 3 and spec.recordings[0]["part"] == "test"
    # The cache gives the same series back.
    (cached,) = list(tmp_path.glob("*.npz"))
    again = city_series([small_recording], small_scenario, val_days=(3,), cache_dir=tmp_path, progress=False)
    assert np.array_equal(again.val[0].values, day.values) and list(tmp_path.glob("*.npz")) == [cached]


def test_a_day_twice_is_refused(small_scenario, small_recording, tmp_path):
    from twin_service.engine.recording import RecordingError

    with pytest.raises(RecordingError, match="same day"):
        city_series([small_recording, small_recording], small_scenario, cache_dir=tmp_path, progress=False)
