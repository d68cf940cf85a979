#!/usr/bin/env python
"""The workload predictor's cost per tick: forecasting every server's load, against the tick it serves.

Two engines replay the same stretch of a recorded city day at its peak with the default policies (the
tick the bridge and the environments run, without the twin frame's lon/lat): one with persistence (the
current load, no predictor) and one with the predictor. They run in turn, a block of ``--block`` ticks
each, so that a slow spell of this shared machine falls on both alike; each figure is the median over
blocks (single forecasts: the median over all). Printed: the tick with and without the predictor, their
ratio, the CPU time of one forecast of all servers (this thread's: what the forecast costs whatever else
runs on the machine) and last ``forecast_ms_per_tick=<its wall time>`` (the issue's target: at most 1 ms).

    .venv/bin/python scripts/bench_predictor.py [--predictor city-predictor] [--recording data/recordings/city-s8.npz]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from twin_service.config import MODELS_DIR
from twin_service.engine import Engine
from twin_service.engine.recording import Recording
from twin_service.envs.load_series import replay_engine
from twin_service.envs.sim import scenario_of
from twin_service.predict.registry import load_forecaster

BEGIN_S = 1500.0
WARM_TICKS = 10


def engine(recording: Path, forecaster) -> Engine:  # noqa: ANN001
    """The bridge's tick over the recording from BEGIN_S: default policies, paper B on, no twin frame."""
    return replay_engine(
        scenario_of([recording]), Recording(recording), begin_s=BEGIN_S, offload=True, forecaster=forecaster
    )


def tick_block(eng: Engine, ticks: int) -> float:
    start = time.perf_counter()
    for _ in range(ticks):
        _, ctx = eng.tick()
        eng.apply(eng.decisions.decide(ctx))
    return (time.perf_counter() - start) / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictor", default="city-predictor", help="a predictor in models/")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--recording", type=Path, default=Path("data/recordings/city-s8.npz"))
    parser.add_argument("--ticks", type=int, default=400, help="ticks timed per engine")
    parser.add_argument("--block", type=int, default=20)
    args = parser.parse_args()
    if not args.recording.is_file():
        sys.exit(f"error: no recording at {args.recording}: record the city's days first (./scripts/record_days.sh)")
    sc = scenario_of([args.recording])
    forecaster = load_forecaster(args.predictor, sc.params, args.models_dir)
    plain = engine(args.recording, None)
    predicted = engine(args.recording, forecaster)
    for eng in (plain, predicted):
        tick_block(eng, WARM_TICKS)
    plain_s, predicted_s, forecast_s, forecast_cpu_s = [], [], [], []
    for _ in range(max(1, args.ticks // args.block)):
        plain_s.append(tick_block(plain, args.block))
        predicted_s.append(tick_block(predicted, args.block))
        window = predicted.load_history.window(forecaster.window)
        for _ in range(args.block):
            start, cpu = time.perf_counter(), time.thread_time()
            forecaster.forecast(window)
            forecast_s.append(time.perf_counter() - start)
            forecast_cpu_s.append(time.thread_time() - cpu)
    tick_plain = 1e3 * statistics.median(plain_s)
    tick_pred = 1e3 * statistics.median(predicted_s)
    forecast_ms = 1e3 * statistics.median(forecast_s)
    forecast_cpu_ms = 1e3 * statistics.median(forecast_cpu_s)
    algorithm = getattr(getattr(forecaster, "manifest", None), "algorithm", forecaster.name)
    print(f"predictor {forecaster.name} ({algorithm}): {len(sc.layout)} servers, window {forecaster.window}")
    print(f"torch threads {torch.get_num_threads()}; {args.recording.name} from {BEGIN_S:g} s, blocks of {args.block}")
    print(f"tick_ms_persistence={tick_plain:.3f}")
    print(f"tick_ms_predictor={tick_pred:.3f}")
    print(f"tick_ratio={tick_pred / tick_plain:.3f}")
    print(f"forecast_share_of_tick={forecast_ms / tick_pred:.3f}")
    print(f"forecast_cpu_ms_per_tick={forecast_cpu_ms:.3f}")
    print(f"forecast_ms_per_tick={forecast_ms:.3f}")


if __name__ == "__main__":
    main()
