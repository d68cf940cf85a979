"""The simulation under both environments: episodes of recorded days replayed through the bridge's engine.

An episode is a window of one recording: ``episode_s`` seconds from a start time, after ``warmup_s`` seconds
in which the scenario's default policies run (so that server backlogs and twins are those of a running
city, not of an empty one). Everything of a tick is the engine's own code (``twin_service.engine``), with
what only serving needs switched off.

Options for the papers' sweeps and ablations (:class:`EnvOptions`): no UAVs, no satellite, UAVs that join
and leave mid-episode, an RSU outage over a time window, scheduled what-if events (``events``: the same events
``POST /v1/events`` takes, at their ``at_s``), and any scenario parameter (migration size, generated data, task
size, RSU CPU...). All of them reach the engine through one :class:`~twin_service.engine.schedule.EventSchedule`,
as a live run's events do; a recording's own events (a live run's, kept by ``run --record``) apply as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin_service.config import ScenarioError, with_overrides
from twin_service.engine import Decisions, Engine, EngineOutputs, PolicyDecisions, TickContext
from twin_service.engine.recording import Recording, RecordingError
from twin_service.engine.replay import ReplayBackend
from twin_service.engine.schedule import EventSchedule, scheduled_spans
from twin_service.events import EventError, EventSpec, ServerInfo, check_event
from twin_service.predict import LoadForecaster
from twin_service.predict.registry import load_forecaster
from twin_service.scenario.folder import Scenario


@dataclass(frozen=True)
class RsuOutage:
    """Some RSUs out of service over a window of each episode (seconds from the episode's start)."""

    count: int = 5
    """How many RSUs fail: the busiest ones at the episode's start (where an outage hurts)."""
    start_s: float = 120.0
    end_s: float = 300.0


@dataclass(frozen=True)
class UavChurn:
    """UAVs joining and leaving mid-episode (paper A Fig. 10: 5 appear, 6 leave)."""

    appear: int = 5
    """UAVs out of service at the episode's start that arrive at a random time in its first half."""
    leave: int = 6
    """UAVs that leave at a random time in its second half (a UAV may both arrive and leave)."""


@dataclass(frozen=True)
class EnvOptions:
    """How episodes are drawn and what the scenario looks like in them."""

    episode_s: float = 600.0
    """Length of an episode (ticks of ``tick_s``)."""
    warmup_s: float = 60.0
    """Ticks run with the default policies before the episode starts (backlogs, twins, windows fill)."""
    starts_s: tuple[float, ...] | None = None
    """Episode start times to cycle through (sim seconds); None draws them uniformly from the recording."""
    no_uavs: bool = False
    no_satellite: bool = False
    """The satellite is out of service: twins left on it are not served (it stays the action of last resort)."""
    uav_churn: UavChurn | None = None
    rsu_outage: RsuOutage | None = None
    events: tuple[EventSpec, ...] = ()
    """What-if events at their ``at_s`` (sim seconds of the recorded day): outages, UAV recalls and launches,
    channel factors. Not ``demand_scale``: a recording's traffic is fixed (record the day under it instead)."""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Scenario parameters to change, by section: ``{"task": {"migration_size_mb": 80.0}}``."""
    dynamic_mask: bool = True
    """False removes paper A's dynamic mask (Eq. 23) from the observation: the Fig. 9 ablation."""
    predictor: str | None = None
    """Workload predictor for the observation and mask (None or ``persistence``: the current load)."""
    models_dir: Path | None = None
    migration_policy: str = "least-loaded"
    """Who decides hosts where the learner does not (warm-up; every tick of the offloading environment)."""
    offload_policy: str = "local-only"
    """Who decides rho where the learner does not (warm-up; the migration environment)."""


@dataclass(frozen=True)
class Episode:
    recording: Path
    start_s: float
    """Sim time before the episode's first tick."""
    ticks: int


ServerSchedule = EventSchedule
"""The name the environments used for the schedule before what-if events (kept for callers)."""


def check_replayable(events: Sequence[EventSpec], servers: ServerInfo) -> None:
    """Refuse events that do not fit the scenario's servers (``EventError``), and those a recording cannot replay:
    a demand scale changes SUMO's traffic, which a recording holds fixed (``ScenarioError``)."""
    for k, event in enumerate(events, start=1):
        try:
            check_event(event, servers)
        except EventError as exc:
            raise ScenarioError(f"event {k}: {exc.field}: {exc}") from None
        if event.kind == "demand_scale":
            raise ScenarioError(
                f"event {k}: demand_scale changes SUMO's traffic, which a recording holds fixed; record the day "
                "under it (twin-service run --events FILE --record OUT) and replay that recording"
            )


def recording_schedule(
    schedule: EventSchedule, recording: Recording, servers: ServerInfo, events: Sequence[EventSpec] = ()
) -> EventSchedule:
    """Add to ``schedule`` the events a recording kept (its live run's) and the scheduled ``events``."""
    for span in recording.events:
        schedule.add_span(span, servers, tag=f"rec:{span.event_id}")
    for span in scheduled_spans(events):
        schedule.add_span(span, servers)
    return schedule


class ReplaySim:
    """Episodes of recorded days through the engine; ``reset`` and ``step`` return the engine's tick context."""

    def __init__(
        self,
        scenario: Scenario,
        recordings: Sequence[str | Path],
        options: EnvOptions,
        *,
        offload: bool,
    ) -> None:
        if not recordings:
            raise RecordingError("no recording given")
        try:
            params = with_overrides(scenario.params, options.overrides)
        except ScenarioError:
            raise
        self.scenario = scenario.with_params(params)
        self.base_param_hash = scenario.params.param_hash
        self.options = options
        self.recordings = [Path(r) for r in recordings]
        self._open: dict[Path, Recording] = {}
        for path in self.recordings:
            rec = self._recording(path)
            scenario.check_recording(path, rec.meta.mobility_hash, rec.meta.param_hash, rec.meta.scenario)
            if rec.end_s - rec.begin_s < options.warmup_s + options.episode_s:
                raise RecordingError(
                    f"{path} holds {rec.end_s - rec.begin_s:g} s: too short for a {options.warmup_s:g} s warm-up "
                    f"and a {options.episode_s:g} s episode"
                )
        self.outputs = EngineOutputs(frame=False, offload=offload)
        self.forecaster: LoadForecaster | None = (
            None
            if options.predictor in (None, "persistence")
            else load_forecaster(options.predictor, params, options.models_dir)
        )
        self.tick_s = params.simulation.tick_s
        self.episode_ticks = int(round(options.episode_s / self.tick_s))
        self.n_servers = len(scenario.layout)
        self.engine: Engine | None = None
        self.servers = ServerInfo(tuple(scenario.layout.ids), tuple(str(t) for t in scenario.layout.tiers))
        check_replayable(options.events, self.servers)
        self.schedule = EventSchedule(self.n_servers)
        self.episode: Episode | None = None
        self.t = 0
        """Ticks of the episode taken so far."""
        self._starts = 0
        self._background: PolicyDecisions | None = None

    # ------------------------------------------------------------------------------------------
    def _recording(self, path: Path) -> Recording:
        rec = self._open.get(path)
        if rec is None:
            rec = self._open[path] = Recording(path)
        return rec

    def close(self) -> None:
        for rec in self._open.values():
            rec.close()
        self._open.clear()

    def draw_episode(self, rng: np.random.Generator, recording: int | None = None) -> Episode:
        """The next episode: a recording (by length, or the ``recording``-th) and a start time, from ``rng`` or
        ``options.starts_s``."""
        o = self.options
        if recording is not None:
            k = recording
        elif len(self.recordings) > 1:
            lengths = np.array([self._recording(p).end_s - self._recording(p).begin_s for p in self.recordings])
            k = int(rng.choice(len(self.recordings), p=lengths / lengths.sum()))
        else:
            k = 0
        rec = self._recording(self.recordings[k])
        earliest = rec.begin_s + o.warmup_s
        latest = rec.end_s - o.episode_s
        if o.starts_s:
            start = float(o.starts_s[self._starts % len(o.starts_s)])
            self._starts += 1
            if not earliest <= start <= latest:
                raise RecordingError(
                    f"episode start {start:g} s is outside {earliest:g}-{latest:g} s of {rec.path.name} "
                    f"(warm-up {o.warmup_s:g} s, episode {o.episode_s:g} s)"
                )
        else:
            start = float(earliest + self.tick_s * rng.integers(0, int((latest - earliest) / self.tick_s) + 1))
        return Episode(rec.path, start, self.episode_ticks)

    def reset(self, rng: np.random.Generator, episode: Episode | None = None) -> TickContext:
        """Start an episode: warm up with the default policies, then return the context of its first tick."""
        ep = episode or self.draw_episode(rng)
        rec = self._recording(ep.recording)
        sc = self.scenario
        params = sc.params
        warm_begin = ep.start_s - self.options.warmup_s
        backend = ReplayBackend(rec, begin_s=warm_begin, end_s=ep.start_s + ep.ticks * self.tick_s, roads=False)
        seed = int(rng.integers(0, 2**31 - 1))
        background = PolicyDecisions(
            params,
            self.n_servers,
            self.options.migration_policy,
            self.options.offload_policy,
            seed=seed,
            models_dir=self.options.models_dir,
            check_param_hash=False,
        )
        self._background = background
        self.engine = Engine(
            params,
            sc.layout,
            sc.projection,
            backend,
            background,
            seed=int(rec.meta.seed),
            outputs=self.outputs,
            forecaster=self.forecaster,
            dynamic_mask=self.options.dynamic_mask,
        )
        self.schedule = self._schedule(rng, ep)
        self.episode = ep
        for _ in range(int(round(self.options.warmup_s / self.tick_s))):
            ctx = self._tick()
            self.engine.apply(background.decide(ctx))
        if self.options.rsu_outage is not None:
            self._outage(self.options.rsu_outage, ep)
        self.t = 0
        ctx = self._tick()
        self.t = 1
        return ctx

    def _tick(self) -> TickContext:
        engine = self.engine
        assert engine is not None
        self.schedule.apply(engine, engine.backend.time_s + self.tick_s)
        _, ctx = engine.tick()
        return ctx

    def step(self, decisions: Decisions) -> TickContext:
        """Apply the decisions made on the last context and compute the next tick."""
        if self.engine is None or self.done:
            raise RuntimeError("the episode is over: call reset()")
        self.engine.apply(decisions)
        ctx = self._tick()
        self.t += 1
        return ctx

    @property
    def done(self) -> bool:
        return self.episode is None or self.t >= self.episode.ticks

    @property
    def background(self) -> PolicyDecisions:
        assert self._background is not None
        return self._background

    # ------------------------------------------------------------------------------------------
    def _schedule(self, rng: np.random.Generator, ep: Episode) -> EventSchedule:
        o = self.options
        layout = self.scenario.layout
        schedule = recording_schedule(
            EventSchedule(self.n_servers), self._recording(ep.recording), self.servers, o.events
        )
        uavs = [int(i) for i in layout.uav_indices]
        start, length = ep.start_s, ep.ticks * self.tick_s
        if o.no_uavs:
            for i in uavs:
                schedule.switch_off(i)
        elif o.uav_churn is not None and uavs:
            appear = rng.choice(uavs, size=min(o.uav_churn.appear, len(uavs)), replace=False)
            leave = rng.choice(uavs, size=min(o.uav_churn.leave, len(uavs)), replace=False)
            for i in appear:
                schedule.switch_off(int(i), -np.inf, start + rng.uniform(0.0, 0.5) * length)
            for i in leave:
                schedule.switch_off(int(i), start + rng.uniform(0.5, 1.0) * length, np.inf)
        if o.no_satellite:
            schedule.switch_off(int(layout.satellite_index))
        return schedule

    def _outage(self, outage: RsuOutage, ep: Episode) -> None:
        """The busiest RSUs at the episode's start (after the warm-up) fail over the outage window."""
        assert self.engine is not None
        layout = self.scenario.layout
        rsus = np.flatnonzero(np.array([t == "rsu" for t in layout.tiers]))
        load = self.engine.load_bits
        busiest = rsus[np.argsort(-load[rsus], kind="stable")][: outage.count]
        for i in busiest:
            self.schedule.switch_off(int(i), ep.start_s + outage.start_s, ep.start_s + outage.end_s)


def scenario_of(recordings: Sequence[str | Path], scenario: str | Path | None = None) -> Scenario:
    """The scenario a set of recordings was made on (``scenario`` overrides the recordings' own folder)."""
    if scenario is None:
        if not recordings:
            raise RecordingError("no recording given")
        with Recording(recordings[0]) as rec:
            scenario = rec.meta.scenario_dir
    return Scenario.load(scenario)
