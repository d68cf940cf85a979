"""The live bridge: SUMO ticks -> engine -> twin store -> decisions, until the scenario ends or is stopped.

Redis going away mid-run never tears a tick: the frame of tick N is rewritten as a whole (writes are
idempotent per tick) and SUMO does not step again until it is stored. The bridge retries with
exponential backoff for ``redis_retry_s`` and then stops with a clear message.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from twin_service.bridge.backends import BackendName, SumoBackend, open_backend
from twin_service.bridge.engine import DecisionSource, Engine
from twin_service.bridge.gui import GuiOverlay
from twin_service.config import ScenarioError, ScenarioParams, Settings, load_params, resolve_scenario
from twin_service.scenario.edge_servers import EdgeLayout, read_edge_servers
from twin_service.scenario.geo import NetProjection, read_projection
from twin_service.twins import TwinStore, TwinStoreUnavailable
from twin_service.twins.frames import TickFrame
from twin_service.twins.server import RedisHandle, open_redis


class BridgeError(RuntimeError):
    """The bridge had to stop; the message says why and what to do."""


@dataclass(frozen=True)
class Scenario:
    """A scenario folder resolved into what the bridge needs."""

    folder: Path
    params: ScenarioParams
    layout: EdgeLayout
    projection: NetProjection
    sumocfg: Path

    @classmethod
    def load(cls, name_or_path: str | Path) -> Scenario:
        folder = resolve_scenario(name_or_path)
        params = load_params(folder)
        meta = params.scenario
        layout = read_edge_servers(folder / meta.edge_servers_file)
        projection = read_projection(_resolve(folder, meta.net_file))
        sumocfg = folder / meta.sumocfg
        if not sumocfg.is_file():
            raise ScenarioError(f"{folder}: no SUMO configuration {meta.sumocfg}")
        return cls(folder, params, layout, projection, sumocfg)


def _resolve(folder: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else folder / p


@dataclass
class Progress:
    tick: int
    sim_time_s: float
    vehicles: int
    ticks_per_s: float
    hosts: dict[str, int]
    fallback: bool


@dataclass
class RunOptions:
    """What ``twin-service run`` asks for."""

    scenario: str | Path = "city"
    backend: BackendName = "libsumo"
    gui: bool = False
    ticks: int | None = None
    """Stop after this many ticks (default: when the scenario has no vehicles left)."""
    realtime: bool = False
    """Pace ticks to the wall clock (one tick per tick_s); default is as fast as possible."""
    redis_url: str | None = None
    seed: int | None = None
    begin_s: float | None = None
    end_s: float | None = None
    redis_retry_s: float = 30.0
    kpi_csv: Path | None = None
    key_prefix: str = field(default_factory=lambda: Settings().key_prefix)
    overlay: bool = True
    """With --gui: colour vehicles by host tier, draw vehicle-host lines, shade servers by load."""


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
        handle = redis or stack.enter_context(open_redis(options.redis_url))
        store = TwinStore(handle.client, options.key_prefix, window=params.simulation.history_window)
        backend: SumoBackend = open_backend(
            options.backend,
            scenario.sumocfg,
            gui=options.gui,
            seed=params.scenario.seed if options.seed is None else options.seed,
            step_length_s=params.simulation.tick_s,
            begin_s=options.begin_s,
            end_s=options.end_s,
        )
        stack.callback(backend.close)
        engine = Engine(params, scenario.layout, scenario.projection, backend, decisions, seed=options.seed)
        try:
            store.clear()
            store.write_run_meta(
                params.scenario.name,
                params.param_hash,
                backend=options.backend,
                seed=engine.seed,
                tick_s=params.simulation.tick_s,
                scenario_dir=str(scenario.folder),
            )
            store.write_layout(engine.layout_records())
        except TwinStoreUnavailable as exc:
            raise BridgeError(f"Redis at {handle.url} is unreachable: {exc}") from exc
        yield engine, store, handle


def write_with_retry(store: TwinStore, frame: TickFrame, retry_s: float, url: str = "") -> int:
    """Store a tick, retrying with backoff while Redis is away; returns the number of retries."""
    delay = 0.05
    deadline = time.monotonic() + retry_s
    retries = 0
    while True:
        try:
            store.write_tick(frame)
            return retries
        except TwinStoreUnavailable as exc:
            if time.monotonic() + delay > deadline:
                raise BridgeError(
                    f"Redis{' at ' + url if url else ''} unreachable for {retry_s:.0f} s; "
                    f"stopped before tick {frame.tick} was stored ({exc})"
                ) from exc
            time.sleep(delay)
            retries += 1
            delay = min(delay * 2, 2.0)


def run_loop(
    engine: Engine,
    store: TwinStore,
    options: RunOptions,
    *,
    url: str = "",
    on_progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Tick until the scenario ends, ``options.ticks`` is reached or ``should_stop()``; return the summary."""
    tick_s = engine.params.simulation.tick_s
    overlay = GuiOverlay(engine) if engine.backend.has_gui and options.overlay else None
    started = time.monotonic()
    last_report = started
    last_report_tick = 0
    redis_retries = 0
    csv_file: IO[str] | None = None
    writer: Any = None
    if options.kpi_csv is not None:
        options.kpi_csv.parent.mkdir(parents=True, exist_ok=True)
        csv_file = options.kpi_csv.open("w", newline="")
    try:
        while True:
            if options.ticks is not None and engine.tick_number >= options.ticks:
                break
            if should_stop is not None and should_stop():
                break
            if engine.tick_number > 0 and engine.backend.expected_remaining() == 0:
                break
            tick_started = time.monotonic()
            frame, ctx = engine.tick()
            redis_retries += write_with_retry(store, frame, options.redis_retry_s, url)
            if overlay is not None:
                overlay.update(frame)
            engine.apply(engine.decisions.decide(ctx))
            if csv_file is not None:
                row = {"tick": frame.tick, "sim_time_s": frame.sim_time_s, **frame.kpis}
                if writer is None:
                    writer = csv.DictWriter(csv_file, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
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
                    )
                )
                last_report, last_report_tick = now, engine.tick_number
            if options.realtime:
                time.sleep(max(0.0, tick_s - (time.monotonic() - tick_started)))
    finally:
        if csv_file is not None:
            csv_file.close()
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {
        "scenario": engine.params.scenario.name,
        "backend": engine.backend.name,
        **engine.totals.summary(),
        "sim_time_s": engine.backend.time_s,
        "wall_time_s": elapsed,
        "ticks_per_s": engine.tick_number / elapsed if elapsed > 0 else 0.0,
        "redis_retries": redis_retries,
    }
    return summary
