"""Record a SUMO run (``twin-service record``): every tick's vehicles, as the bridge reads them, to a file.

SUMO runs exactly as ``twin-service run`` runs it (same backend, options, seed, day and scale), in a worker
process that steps ahead while the file is written; no twins, physics or decisions are computed. The file
(:mod:`twin_service.engine.recording`) replays through the engine as the live run would have gone.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twin_service.bridge.backends import SumoError, sumo_version
from twin_service.bridge.runner import Scenario, sumo_options
from twin_service.bridge.worker import ProcessBackend
from twin_service.engine.recording import RecordingInterrupted, RecordingMeta, RecordingWriter


@dataclass(frozen=True)
class RecordProgress:
    tick: int
    sim_time_s: float
    vehicles: int
    begin_s: float
    end_s: float


def record_scenario(
    scenario: str | Path,
    out: str | Path,
    *,
    seed: int | None = None,
    begin_s: float | None = None,
    end_s: float | None = None,
    scale: float = 1.0,
    command: str = "",
    on_progress: Callable[[RecordProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RecordingMeta:
    """Run SUMO on ``scenario`` from ``begin_s`` to ``end_s`` and write every tick to ``out``.

    Returns the recording's metadata. The file appears only when the span is recorded to its end (or SUMO has no
    vehicle left to run): a stopped run (``should_stop``) raises :class:`RecordingInterrupted` and, like an error,
    leaves no file behind, so that a short day is never taken for a whole one.
    """
    sc = Scenario.load(scenario)
    params = sc.params
    seed = params.scenario.seed if seed is None else seed
    options, day = sumo_options(sc, seed=seed, begin_s=begin_s, end_s=end_s, scale=scale)
    tick_s = params.simulation.tick_s
    stop_s = params.scenario.end_s if end_s is None else end_s
    backend = ProcessBackend(sc.sumocfg, **options)
    meta = RecordingMeta(
        scenario=params.scenario.name,
        scenario_dir=str(sc.folder),
        param_hash=params.param_hash,
        mobility_hash=sc.mobility_hash,
        seed=seed,
        scale=scale,
        begin_s=backend.time_s,
        end_s=backend.time_s,
        span_end_s=float(stop_s),
        tick_s=tick_s,
        sumo_version=sumo_version(),
        demand=day.description,
        command=command,
        extra={"python": platform.python_version()},
    )
    writer = RecordingWriter(out, meta)
    try:
        now = backend.time_s
        expected = backend.expected_remaining()
        in_flight = 0

        def wanted(ahead: int) -> bool:
            return now + ahead * tick_s <= stop_s + 1e-9

        while True:
            while in_flight < 2 and expected > 0 and wanted(in_flight + 1):
                backend.start_step()
                in_flight += 1
            if in_flight == 0:
                break
            tick = backend.finish_step()
            in_flight -= 1
            now, expected = tick.time_s, tick.expected_remaining
            writer.add(tick)
            if on_progress is not None:
                on_progress(RecordProgress(writer.ticks, now, len(tick.vehicles), meta.begin_s, stop_s))
            if should_stop is not None and should_stop():
                raise RecordingInterrupted(
                    f"stopped at sim {now:g} s of {meta.begin_s:g}-{stop_s:g} s: {out} was not written "
                    "(a recording is kept only when complete)"
                )
            if expected == 0:
                break
        return writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        backend.close()


__all__ = ["RecordProgress", "RecordingInterrupted", "SumoError", "record_scenario"]
