"""Per-server load series of recorded days, for the workload predictor (paper A, section V).

Each recorded day is replayed through the engine (the bridge's own physics) under the scenario's default
hosting policy and the persistence forecast, as the service runs without a predictor. Every tick gives
each server's load S'_m (Eq. 8, backlog included, bits: ``ctx.load_bits``) and the number of twins it hosts
(paper A's flow c_m(t)). A day is one part of the data: days never mix inside a window, and train,
validation and test sets are whole days (the project's convention: days 1-6 train, 7 validates, 8 and 9
are held out).

Replaying a day takes about a quarter of a minute, so the series of each day are cached under ``series/`` of
the data folder (``TWIN_DATA_DIR``, or ``data/`` of the checkout: :func:`twin_service.config.data_dir`), keyed by
the recording file, the scenario parameters and the policy.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from twin_service.config import data_dir
from twin_service.engine import Engine, EngineOutputs, PolicyDecisions
from twin_service.engine.recording import Recording, RecordingError
from twin_service.engine.replay import ReplayBackend
from twin_service.files import write_bytes_atomic
from twin_service.policies import DEFAULT_MIGRATION_POLICY
from twin_service.policies.fit import PREDICTOR_INPUTS, scenario_values
from twin_service.predict import LoadForecaster
from twin_service.predict.features import CITY_FEATURES
from twin_service.predict.manifest import DataSpec, SplitSpec
from twin_service.predict.series import SeriesData, SeriesPart
from twin_service.scenario.folder import Scenario

DEFAULT_CACHE = "default"
"""``cache_dir`` that means ``series/`` of the data folder (:func:`twin_service.config.data_dir`)."""


def series_cache_dir() -> Path:
    return data_dir() / "series"


CACHE_VERSION = "2"
"""Bump when what a replay yields changes (the cached series are then made again)."""
VALIDATION_DAYS = (7,)
TEST_DAYS = (8, 9)


def replay_engine(
    scenario: Scenario,
    recording: Recording,
    *,
    begin_s: float | None = None,
    migration_policy: str = DEFAULT_MIGRATION_POLICY,
    offload: bool = False,
    frame: bool = False,
    forecaster: LoadForecaster | None = None,
) -> Engine:
    """The engine over a recorded day with the default policies deciding in-process."""
    params = scenario.params
    m = len(scenario.layout)
    seed = int(recording.meta.seed)
    decisions = PolicyDecisions(params, m, migration_policy, seed=seed, check_param_hash=False)
    return Engine(
        params,
        scenario.layout,
        scenario.projection,
        ReplayBackend(recording, begin_s=begin_s, roads=False),
        decisions,
        seed=seed,
        outputs=EngineOutputs(frame=frame, offload=offload),
        forecaster=forecaster,
    )


def day_series(
    scenario: Scenario,
    recording: str | Path,
    *,
    migration_policy: str = DEFAULT_MIGRATION_POLICY,
    on_tick: Callable[[int, int], None] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(T, M)`` loads S'_m (bits) and ``(T, M)`` hosted twins of every tick of one recorded day."""
    with Recording(recording) as rec:
        scenario.check_recording(recording, rec.meta.mobility_hash, rec.meta.param_hash, rec.meta.scenario)
        engine = replay_engine(scenario, rec, migration_policy=migration_policy)
        decisions = engine.decisions
        m = len(scenario.layout)
        total = engine.backend.remaining_ticks()
        load = np.zeros((total, m))
        hosted = np.zeros((total, m))
        for t in range(total):
            _, ctx = engine.tick()
            engine.apply(decisions.decide(ctx))
            assert ctx.load_bits is not None
            load[t] = ctx.load_bits
            hosted[t] = np.bincount(ctx.host, minlength=m)
            if on_tick is not None:
                on_tick(t + 1, total)
    return load, hosted


def _cache_key(scenario: Scenario, recording: Path, policy: str) -> str:
    stat = recording.stat()
    blob = json.dumps(
        [CACHE_VERSION, str(recording.resolve()), stat.st_size, stat.st_mtime_ns, scenario.params.param_hash, policy]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_day_series(
    scenario: Scenario,
    recording: str | Path,
    *,
    migration_policy: str = DEFAULT_MIGRATION_POLICY,
    cache_dir: Path | Literal["default"] | None = DEFAULT_CACHE,
    on_tick: Callable[[int, int], None] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`day_series`, read from (or written to) the cache when ``cache_dir`` is given."""
    path = Path(recording)
    if cache_dir is None:
        return day_series(scenario, path, migration_policy=migration_policy, on_tick=on_tick)
    folder = series_cache_dir() if cache_dir == DEFAULT_CACHE else Path(cache_dir)
    cached = folder / f"{path.stem}-{_cache_key(scenario, path, migration_policy)}.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as npz:
                load, hosted = npz["load_bits"], npz["hosted"]
            if load.ndim == 2 and load.shape == hosted.shape and load.shape[1] == len(scenario.layout):
                return load, hosted
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
            pass  # a damaged cache entry is made again
    load, hosted = day_series(scenario, path, migration_policy=migration_policy, on_tick=on_tick)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, load_bits=load, hosted=hosted)
    write_bytes_atomic(cached, buffer.getvalue())
    return load, hosted


def city_series(
    recordings: Sequence[str | Path],
    scenario: str | Path | None = None,
    *,
    val_days: Sequence[int] = VALIDATION_DAYS,
    test_days: Sequence[int] = TEST_DAYS,
    migration_policy: str = DEFAULT_MIGRATION_POLICY,
    cache_dir: Path | Literal["default"] | None = DEFAULT_CACHE,
    progress: bool = True,
) -> SeriesData:
    """The load series of recorded days, split by day: ``val_days`` and ``test_days`` by seed, the rest train."""
    from tqdm import tqdm

    from twin_service.envs.sim import scenario_of

    if not recordings:
        raise RecordingError("no recording given")
    paths = [Path(r) for r in recordings]
    sc = scenario_of(paths, scenario)
    seeds = []
    for p in paths:
        with Recording(p) as rec:
            seeds.append(int(rec.meta.seed))
            sc.check_recording(p, rec.meta.mobility_hash, rec.meta.param_hash, rec.meta.scenario)
    if len(set(seeds)) != len(seeds):
        raise RecordingError(f"two recordings of the same day (seeds {seeds}): each day once")
    split: dict[str, list[SeriesPart]] = {"train": [], "val": [], "test": []}
    refs = []
    outer = tqdm(total=len(paths), desc="load series", unit="day", disable=not progress, leave=False)
    for path, seed in sorted(zip(paths, seeds, strict=True), key=lambda ps: ps[1]):
        inner = tqdm(desc=f"replay {path.name}", unit="tick", disable=not progress, leave=False)

        def tick(done: int, total: int, bar=inner) -> None:  # noqa: ANN001
            bar.total = total
            bar.update(done - bar.n)

        load, hosted = cached_day_series(sc, path, migration_policy=migration_policy, cache_dir=cache_dir, on_tick=tick)
        inner.close()
        outer.update(1)
        which = "val" if seed in val_days else "test" if seed in test_days else "train"
        name = f"{sc.params.scenario.name}-s{seed}"
        split[which].append(SeriesPart(name, np.stack([load, hosted], axis=-1)))
        refs.append(
            {"path": str(path), "seed": seed, "part": which, "ticks": int(load.shape[0]), "mobility": sc.mobility_hash}
        )
    outer.close()
    spec = DataSpec(
        source="city",
        step_s=sc.params.simulation.tick_s,
        n_series=len(sc.layout),
        series_names=list(sc.layout.ids),
        scenario=sc.params.scenario.name,
        scenario_param_hash=sc.params.param_hash,
        scenario_inputs=scenario_values(sc.params, PREDICTOR_INPUTS),
        migration_policy=migration_policy,
        recordings=refs,
        split=SplitSpec(
            method="days",
            train=[p.name for p in split["train"]],
            val=[p.name for p in split["val"]],
            # The held-out days by name even when not loaded (training never loads them): what evaluation reads.
            test=sorted({p.name for p in split["test"]} | {f"{sc.params.scenario.name}-s{d}" for d in test_days}),
        ),
    )
    return SeriesData(CITY_FEATURES, split["train"], split["val"], split["test"], spec)
