"""The live bridge: SUMO ticks -> engine -> twin store -> decisions, until the scenario ends or is stopped.

Redis going away mid-run never tears a tick: the frame of tick N is rewritten as a whole (writes are
idempotent per tick) and SUMO does not step again until it is stored. The bridge retries with
exponential backoff for ``redis_retry_s`` and then stops with a clear message. A Redis that comes back
empty (restarted, or emptied by FLUSHALL while the bridge never saw an error) gets the run's records back
with the next tick: the twin store checks the run marker in every tick's transaction
(:meth:`twin_service.twins.TwinStore.begin_run`).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from twin_service.bridge.backends import BackendName, SumoError, open_backend, sumo_version
from twin_service.bridge.decisions import DEFAULT_DEADLINE_S, HttpDecisions, PolicyDecisions
from twin_service.bridge.events import EventRunner
from twin_service.bridge.gui import GuiOverlay
from twin_service.bridge.pipeline import PipelinedTicks
from twin_service.bridge.worker import ProcessBackend
from twin_service.bridge.writer import BridgeError, TickWriter, write_with_retry
from twin_service.config import ScenarioError, ScenarioParams, Settings
from twin_service.engine import DecisionSource, Engine, TickSource
from twin_service.engine.recording import Recording, RecordingMeta, RecordingWriter
from twin_service.engine.replay import ReplayBackend
from twin_service.events import EventSpec
from twin_service.policies import DEFAULT_MIGRATION_POLICY, DEFAULT_OFFLOAD_POLICY, PolicyError
from twin_service.predict import LoadForecaster
from twin_service.scenario.days import Day, scenario_day
from twin_service.scenario.folder import Scenario
from twin_service.twins import TwinStore, TwinStoreUnavailable
from twin_service.twins.declog import DecisionLogEntry
from twin_service.twins.frames import TickFrame
from twin_service.twins.server import RedisHandle, open_redis


def sumo_options(
    scenario: Scenario,
    *,
    seed: int,
    begin_s: float | None = None,
    end_s: float | None = None,
    scale: float = 1.0,
) -> tuple[dict[str, Any], Day]:
    """How SUMO is started for day ``seed`` of a scenario: the options of :func:`open_backend`, and the day."""
    if not scale > 0:
        raise ScenarioError(f"the demand scale must be > 0, got {scale}")
    meta = scenario.params.scenario
    first = meta.begin_s if begin_s is None else begin_s
    last = meta.end_s if end_s is None else end_s
    if not first < last:
        raise ScenarioError(
            f"begin {first:g} s is not before end {last:g} s"
            + ("" if end_s is not None else f" (scenario {meta.name!r} ends at {meta.end_s:g} s)")
        )
    day = scenario_day(scenario.folder, scenario.params, seed)
    extra = day.sumo_args()
    if scale != 1.0:
        extra += ["--scale", repr(float(scale))]
    options: dict[str, Any] = {
        "seed": seed,
        "step_length_s": scenario.params.simulation.tick_s,
        "begin_s": begin_s,
        "end_s": end_s,
        "extra_args": extra,
    }
    return options, day


class RunFailed(BridgeError):
    """The run stopped on an error after some ticks: the message says why, ``summary`` covers the ticks stored."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class Progress:
    tick: int
    sim_time_s: float
    vehicles: int
    ticks_per_s: float
    hosts: dict[str, int]
    fallback: bool
    sumo_ms: float = 0.0
    """SUMO's own wall time per tick (step and read) over the interval: what the bridge cannot go below."""


@dataclass
class RunOptions:
    """What ``twin-service run`` asks for."""

    scenario: str | Path = "city"
    backend: BackendName = "libsumo"
    gui: bool = False
    ticks: int | None = None
    """Stop after this many ticks (default: when the scenario has no vehicles left)."""
    speed: float | None = None
    """Pace ticks to the wall clock at this many sim seconds per wall second (1 = real time);
    None runs as fast as possible."""
    redis_url: str | None = None
    redis_cluster: bool = field(default_factory=lambda: Settings().redis_cluster)
    """``redis_url`` names a node of a Redis Cluster."""
    seed: int | None = None
    begin_s: float | None = None
    end_s: float | None = None
    redis_retry_s: float = 30.0
    kpi_csv: Path | None = None
    key_prefix: str = field(default_factory=lambda: Settings().key_prefix)
    overlay: bool = True
    """With --gui: colour vehicles by host tier, draw vehicle-host lines, shade servers by load."""
    migration_policy: str = DEFAULT_MIGRATION_POLICY
    offload_policy: str = DEFAULT_OFFLOAD_POLICY
    decision_url: str | None = None
    """Ask this decision service each tick (``POST /v1/decisions/batch``); None decides in-process."""
    api_key: str | None = None
    decision_deadline_s: float = DEFAULT_DEADLINE_S
    """With a decision service: the longest a tick waits for its answer before deciding locally."""
    models_dir: Path | None = None
    scale: float = 1.0
    """SUMO's demand scale (``--scale``)."""
    replay: Path | None = None
    """Replay this recording instead of running SUMO (``twin-service record`` makes one)."""
    forecaster: str | None = None
    """Workload predictor for the migration observation and mask (None: the current load)."""
    parallel: bool = False
    """libsumo only: run SUMO in a worker process that steps up to two ticks ahead while this one is
    computed (both cores busy; identical results). Off by default for library use, on for ``twin-service run``."""
    events: Sequence[EventSpec] = ()
    """What-if events scheduled by their ``at_s`` (``run --events FILE``), besides those posted to the API."""
    record: Path | None = None
    """Also write the run's mobility and the events it applied to this recording (``run --record``)."""
    decision_log_ticks: int = field(default_factory=lambda: Settings().decision_log_ticks)
    """Ticks kept in the decision log (``P:decisions``); 0: no log."""
    command: str = ""
    """The command line, for a recording's metadata."""


@contextmanager
def open_bridge(
    options: RunOptions,
    decisions: DecisionSource | None = None,
    redis: RedisHandle | None = None,
) -> Iterator[tuple[Engine, TwinStore, RedisHandle]]:
    """Start Redis (embedded unless a URL is given), SUMO and the engine; stop them on exit."""
    scenario = Scenario.load(options.scenario)
    params = scenario.params
    with ExitStack() as stack:
        recording = stack.enter_context(open_recording(options.replay, scenario)) if options.replay else None
        handle = redis or stack.enter_context(open_redis(options.redis_url, cluster=options.redis_cluster))
        store = TwinStore(
            handle.client,
            options.key_prefix,
            window=params.simulation.history_window,
            decision_log_maxlen=options.decision_log_ticks,
        )
        seed = params.scenario.seed if options.seed is None else options.seed
        backend: TickSource
        if recording is not None:
            backend = ReplayBackend(recording, begin_s=options.begin_s, end_s=options.end_s)
        else:
            sumo, _ = sumo_options(
                scenario, seed=seed, begin_s=options.begin_s, end_s=options.end_s, scale=options.scale
            )
            if options.parallel and options.backend == "libsumo" and not options.gui:
                backend = ProcessBackend(scenario.sumocfg, **sumo)
            else:
                backend = open_backend(options.backend, scenario.sumocfg, gui=options.gui, **sumo)
        stack.callback(backend.close)
        if decisions is None:
            decisions = PolicyDecisions(
                params,
                len(scenario.layout),
                options.migration_policy,
                options.offload_policy,
                seed=seed,
                models_dir=options.models_dir,
                explain=options.decision_log_ticks > 0,
            )
            if options.decision_url:
                decisions = HttpDecisions(
                    options.decision_url, decisions, api_key=options.api_key, deadline_s=options.decision_deadline_s
                )
        forecaster = load_forecaster(options.forecaster, params, options.models_dir, n_servers=len(scenario.layout))
        engine = Engine(
            params, scenario.layout, scenario.projection, backend, decisions, seed=seed, forecaster=forecaster
        )
        try:
            store.clear()
            write_run_records(engine, store, options, scenario.folder)
        except TwinStoreUnavailable as exc:
            raise BridgeError(f"Redis at {handle.url} is unreachable: {exc}") from exc
        yield engine, store, handle


@contextmanager
def open_recording(path: Path, scenario: Scenario) -> Iterator[Recording]:
    """Open a recording to replay on a scenario; refuse one made of another city or demand."""
    recording = Recording(path)
    try:
        m = recording.meta
        scenario.check_recording(path, m.mobility_hash, m.param_hash, m.scenario)
        yield recording
    finally:
        recording.close()


def load_forecaster(
    name: str | None, params: ScenarioParams, models_dir: Path | None, n_servers: int | None = None
) -> LoadForecaster | None:
    """The workload predictor called ``name`` (None or ``persistence``: the current load, no forecaster)."""
    if name is None or name == "persistence":
        return None
    from twin_service.predict.registry import load_forecaster as load_named

    return load_named(name, params, models_dir, n_servers=n_servers)


def write_run_records(engine: Engine, store: TwinStore, options: RunOptions, folder: Path | None = None) -> str:
    """What readers need besides the ticks: the run's metadata and the edge-server layout, kept by the store
    and put back whenever a tick's write finds them missing. Returns the run id (the run marker)."""
    params = engine.params
    extra: dict[str, str | int | float] = {
        "backend": engine.backend.name,
        "seed": engine.seed,
        "tick_s": params.simulation.tick_s,
    }
    if folder is not None:
        extra["scenario_dir"] = str(folder)
    if options.replay is not None:
        extra["replay"] = str(options.replay)
    extra["predictor"] = engine.forecaster.name if engine.forecaster is not None else "persistence"
    return store.begin_run(params.scenario.name, params.param_hash, engine.layout_records(), **extra)


def run_loop(
    engine: Engine,
    store: TwinStore,
    options: RunOptions,
    *,
    url: str = "",
    on_progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Tick until the scenario ends, ``options.ticks`` is reached or ``should_stop()``; return the summary.

    ``on_notice`` gets one line when the bridge starts holding a tick for Redis and one when it goes on, one
    when it put the run's records back into a Redis that lost them, and (with a decision service) one when it
    starts deciding locally and one when it goes back to the service.
    An error that stops the run after it started raises :class:`RunFailed`, which carries the summary.
    """
    if on_notice is not None and isinstance(engine.decisions, HttpDecisions):
        engine.decisions.notify = on_notice
    log_decisions = options.decision_log_ticks > 0 and store.decision_log_maxlen > 0
    _explain(engine.decisions, log_decisions)
    tick_s = engine.params.simulation.tick_s
    events = EventRunner(engine, store, base_scale=options.scale, notify=on_notice)
    try:
        if options.events:
            events.post_schedule(options.events)
        if isinstance(engine.backend, ReplayBackend) and engine.backend.recording.events:
            events.post_recorded(engine.backend.recording.events)
    except TwinStoreUnavailable as exc:
        raise BridgeError(f"Redis at {url} is unreachable: {exc}") from exc
    recorder = _recorder(engine, options) if options.record is not None else None
    pending_log: DecisionLogEntry | None = None
    overlay = GuiOverlay(engine) if engine.backend.has_gui and options.overlay else None
    started = time.monotonic()
    last_report = started
    last_report_tick = 0
    last_report_sumo_s = 0.0

    def write(frame: TickFrame) -> int:
        return write_with_retry(store, frame, options.redis_retry_s, url, notify=on_notice)

    end_s = options.end_s if options.end_s is not None else engine.params.scenario.end_s
    if isinstance(engine.backend, ReplayBackend):
        end_s = min(end_s, engine.backend.end_s)  # a recording ends where it was cut

    def wants_another_tick(ahead: int = 0) -> bool:
        """Whether the run goes on for ``ahead`` ticks beyond the next one."""
        if options.ticks is not None and engine.tick_number + 1 + ahead > options.ticks:
            return False
        return engine.last_sim_time_s + (1 + ahead) * tick_s <= end_s + 1e-9

    # With SUMO in another process (TraCI, or libsumo in a worker) the next tick steps while this one is
    # computed and stored. In-process libsumo holds the GIL while it steps, so there overlapping only adds
    # thread switches (measured), and the GUI overlay talks to SUMO while a tick is computed: both tick
    # sequentially.
    remote = isinstance(engine.backend, ProcessBackend)
    overlap = (engine.backend.name == "traci" or remote) and overlay is None
    ticker = PipelinedTicks(engine, may_step=wants_another_tick) if overlap else engine
    # Over TraCI the main thread mostly waits on SUMO's socket, so a writer thread stores ticks meanwhile;
    # with a worker process the main process has a core of its own and writes in line.
    writer = TickWriter(write) if overlap and not remote else None
    redis_retries = 0
    reads_twins = bool(getattr(engine.decisions, "reads_twins", False))
    csv_file: IO[str] | None = None
    csv_writer: Any = None
    if options.kpi_csv is not None:
        options.kpi_csv.parent.mkdir(parents=True, exist_ok=True)
        csv_file = options.kpi_csv.open("w", newline="")

    def summarise() -> dict[str, Any]:
        elapsed = time.monotonic() - started
        return {
            "scenario": engine.params.scenario.name,
            "backend": engine.backend.name,
            **engine.totals.summary(),
            "sim_time_s": engine.last_sim_time_s,
            "wall_time_s": elapsed,
            "ticks_per_s": engine.tick_number / elapsed if elapsed > 0 else 0.0,
            "sumo_ms_per_tick": 1e3 * engine.sumo_wall_s / max(engine.tick_number, 1),
            "redis_retries": redis_retries + (writer.retries if writer is not None else 0),
        }

    try:
        while True:
            if not wants_another_tick():
                break
            if should_stop is not None and should_stop():
                break
            if engine.tick_number > 0 and engine.expected_remaining == 0:
                break
            tick_started = time.monotonic()
            states = events.before_tick(engine.tick_number + 1, engine.last_sim_time_s + tick_s)
            frame, ctx = ticker.tick()
            frame.event_states = states
            frame.decision_log, pending_log = pending_log, None
            if recorder is not None and engine.last_sumo is not None:
                recorder.add(engine.last_sumo)
            if writer is not None:
                writer.submit(frame)
            else:
                redis_retries += write(frame)
            if overlay is not None:
                overlay.update(frame)
            if reads_twins and writer is not None:
                writer.flush()
            decided = engine.decisions.decide(ctx)
            engine.apply(decided)
            if log_decisions and decided.log is not None:
                pending_log = DecisionLogEntry(ctx.tick, ctx.sim_time_s, decided.source, decided.fallback, decided.log)
            if csv_file is not None:
                row = {"tick": frame.tick, "sim_time_s": frame.sim_time_s, **frame.kpis}
                if csv_writer is None:
                    csv_writer = csv.DictWriter(csv_file, fieldnames=list(row))
                    csv_writer.writeheader()
                csv_writer.writerow(row)
            now = time.monotonic()
            if on_progress is not None and (now - last_report >= progress_every_s):
                rate = (engine.tick_number - last_report_tick) / max(now - last_report, 1e-9)
                k = frame.kpis
                on_progress(
                    Progress(
                        tick=frame.tick,
                        sim_time_s=frame.sim_time_s,
                        vehicles=len(frame.vehicle_ids),
                        ticks_per_s=rate,
                        hosts={
                            "rsu": int(k["hosts_rsu"]),
                            "uav": int(k["hosts_uav"]),
                            "satellite": int(k["hosts_satellite"]),
                        },
                        fallback=bool(k.get("fallback", 0.0)),
                        sumo_ms=1e3
                        * (engine.sumo_wall_s - last_report_sumo_s)
                        / max(engine.tick_number - last_report_tick, 1),
                    )
                )
                last_report, last_report_tick = now, engine.tick_number
                last_report_sumo_s = engine.sumo_wall_s
            if options.speed:
                time.sleep(max(0.0, tick_s / options.speed - (time.monotonic() - tick_started)))
        if writer is not None:
            writer.flush()
        if pending_log is not None:  # the last tick's decisions: logged, though no tick follows them
            with suppress(TwinStoreUnavailable):
                store.append_decisions(pending_log)
        if recorder is not None:
            meta = recorder.close(
                span_end_s=engine.last_sim_time_s, extra={**recorder.meta.extra, "events": _event_spans(events)}
            )
            recorder = None
            if on_notice is not None:
                on_notice(
                    f"wrote {options.record}: {meta.ticks} ticks {meta.begin_s:g}-{meta.end_s:g} s, "
                    f"{len(meta.extra['events'])} what-if events"
                )
    except (SumoError, BridgeError, PolicyError) as exc:
        # SUMO failed before its tick was computed, Redis stayed away (the message names the tick not stored), or
        # a model refused to decide (its outputs were not finite): the ticks done are still summarised.
        raise RunFailed(str(exc), summarise()) from exc
    finally:
        if recorder is not None:  # stopped on an error: no recording that looks complete
            recorder.abort()
        if isinstance(ticker, PipelinedTicks):
            ticker.close()
        if writer is not None:
            writer.close()
        if csv_file is not None:
            csv_file.close()
    return summarise()


def _explain(decisions: DecisionSource, on: bool) -> None:
    """Ask a decision source (and the local fallback of a decision service) to pack its decisions for the log."""
    for source in (decisions, getattr(decisions, "fallback", None)):
        if source is not None and hasattr(source, "explain"):
            source.explain = on


def _event_spans(events: EventRunner) -> list[dict[str, Any]]:
    return [span.to_json() for span in events.spans()]


def _recorder(engine: Engine, options: RunOptions) -> RecordingWriter:
    """A recording of this live run (``run --record``): its mobility tick by tick, and at the end its events."""
    if isinstance(engine.backend, ReplayBackend):
        raise BridgeError("--record: this run replays a recording already; record a live run")
    scenario = Scenario.load(options.scenario)
    params = scenario.params
    day = scenario_day(scenario.folder, params, engine.seed)
    meta = RecordingMeta(
        scenario=params.scenario.name,
        scenario_dir=str(scenario.folder),
        param_hash=params.param_hash,
        mobility_hash=scenario.mobility_hash,
        seed=engine.seed,
        scale=options.scale,
        begin_s=engine.last_sim_time_s,
        end_s=engine.last_sim_time_s,
        span_end_s=engine.last_sim_time_s,
        tick_s=params.simulation.tick_s,
        sumo_version=sumo_version(),
        demand=day.description,
        command=options.command,
        extra={"recorded_by": "run"},
    )
    return RecordingWriter(options.record, meta)
