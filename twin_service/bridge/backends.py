"""SUMO backends behind one interface: libsumo (in-process) and TraCI (socket, needed for sumo-gui).

This module and the rest of ``twin_service.bridge`` are the only code that imports ``traci`` or ``libsumo``;
both are imported inside functions, so importing the package never looks for SUMO.

How vehicles are read is chosen per backend, by measurement (see ``scripts/bench_bridge.py``):

* libsumo: plain getters per vehicle. In-process calls cost well under a microsecond, and subscriptions
  make ``simulationStep`` itself slower (about +35 % at 1,100 vehicles) while returning a dict of dicts.
* TraCI: variable subscriptions, so one socket round trip returns every vehicle's values.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from twin_service.engine.types import SumoTick, VehicleBatch, quantise_batch

BackendName = Literal["libsumo", "traci"]

_label_counter = itertools.count()


class SumoError(RuntimeError):
    """SUMO could not be started or failed while stepping."""


def sumo_binary(gui: bool = False) -> str:
    """Path of sumo or sumo-gui from the eclipse-sumo wheel (or SUMO_HOME, or PATH)."""
    name = "sumo-gui" if gui else "sumo"
    homes: list[str] = []
    try:
        import sumo  # the eclipse-sumo wheel

        homes.append(sumo.SUMO_HOME)
    except ImportError:  # pragma: no cover - the wheel is a dependency
        pass
    if os.environ.get("SUMO_HOME"):
        homes.append(os.environ["SUMO_HOME"])
    for home in homes:
        candidate = Path(home) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise SumoError(f"{name} not found: install eclipse-sumo==1.28.0 (a project dependency) or set SUMO_HOME")


class SumoBackend:
    """A running SUMO simulation. Use :func:`open_backend` to make one."""

    name: BackendName

    def __init__(self, module: Any) -> None:
        self._m = module  # the libsumo module or a traci Connection: they share one API
        self.constants = _constants()
        self.last_step_s = 0.0
        """Wall seconds the last ``simulationStep`` took."""
        self.epoch_s = self.time_s
        """Sim time the run started at (the UAVs' patrol clock counts from here)."""
        self._pending_scale: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def set_scale(self, scale: float) -> None:
        """SUMO's demand scale from the next step on (``simulation.setScale``; a ``demand_scale`` event). Applied by
        :meth:`step`, so that over TraCI it happens on the thread that steps, never beside a step in flight."""
        self._pending_scale = float(scale)

    def step(self) -> None:
        t0 = time.perf_counter()
        try:
            if self._pending_scale is not None:
                scale, self._pending_scale = self._pending_scale, None
                self._m.simulation.setScale(scale)
            self._m.simulationStep()
            self.last_step_s = time.perf_counter() - t0
        except Exception as exc:  # libsumo raises TraCIException, traci FatalTraCIError
            raise SumoError(f"SUMO step failed: {exc}") from exc

    def close(self) -> None:
        # Closing a dead connection must not mask the error that killed it.
        with contextlib.suppress(Exception):
            self._m.close()

    # -- simulation --------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        return float(self._m.simulation.getTime())

    @property
    def delta_t_s(self) -> float:
        return float(self._m.simulation.getDeltaT())

    def expected_remaining(self) -> int:
        """Vehicles running plus those still to be inserted; 0 means the scenario is over."""
        return int(self._m.simulation.getMinExpectedNumber())

    def departed_ids(self) -> tuple[str, ...]:
        return tuple(self._m.simulation.getDepartedIDList())

    def arrived_ids(self) -> tuple[str, ...]:
        return tuple(self._m.simulation.getArrivedIDList())

    def vehicle_count(self) -> int:
        return int(self._m.vehicle.getIDCount())

    def read_vehicles(self) -> VehicleBatch:
        """Every running vehicle, at SUMO's output precision (``engine.types.quantise_batch``)."""
        raise NotImplementedError

    def observe_tick(self) -> SumoTick:
        """Everything the bridge reads after a step (the only part of a tick that talks to SUMO)."""
        t0 = time.perf_counter()
        vehicles = self.read_vehicles()
        read_s = time.perf_counter() - t0
        return SumoTick(
            time_s=self.time_s,
            wall_time=time.time(),
            arrived=self.arrived_ids(),
            vehicles=vehicles,
            expected_remaining=self.expected_remaining(),
            step_s=self.last_step_s,
            read_s=read_s,
        )

    def convert_geo(self, x_m: float, y_m: float) -> tuple[float, float]:
        """SUMO's own x/y -> lon/lat (slow per call; used to cross-check the vectorised converter)."""
        lon, lat = self._m.simulation.convertGeo(x_m, y_m)
        return float(lon), float(lat)

    # -- GUI overlay (sumo-gui over TraCI only) ------------------------------------------------
    @property
    def has_gui(self) -> bool:
        return False

    @property
    def api(self) -> Any:
        """The raw libsumo module or traci connection (for the GUI overlay and tests)."""
        return self._m


class LibsumoBackend(SumoBackend):
    name: BackendName = "libsumo"

    def __init__(self, module: Any) -> None:
        super().__init__(module)
        # The SWIG extension's functions, without the Python wrapper frame libsumo.vehicle adds to each call:
        # a third of the read's cost at a thousand vehicles.
        raw = getattr(module, "_libsumo", None)
        veh = module.vehicle
        if raw is not None and hasattr(raw, "vehicle_getPosition"):
            self._getters = (raw.vehicle_getPosition, raw.vehicle_getSpeed, raw.vehicle_getAngle, raw.vehicle_getRoadID)
        else:  # pragma: no cover - other libsumo builds
            self._getters = (veh.getPosition, veh.getSpeed, veh.getAngle, veh.getRoadID)

    def read_vehicles(self) -> VehicleBatch:
        ids = list(self._m.vehicle.getIDList())
        n = len(ids)
        get_pos, get_speed, get_angle, get_road = self._getters
        xy = np.fromiter(itertools.chain.from_iterable(map(get_pos, ids)), np.float64, 2 * n).reshape(n, 2)
        speed = np.fromiter(map(get_speed, ids), np.float64, n)
        angle = np.fromiter(map(get_angle, ids), np.float64, n)
        roads = list(map(get_road, ids))
        return quantise_batch(VehicleBatch(ids, xy[:, 0], xy[:, 1], speed, angle, roads))


class TraciBackend(SumoBackend):
    name: BackendName = "traci"

    def __init__(self, module: Any, gui: bool) -> None:
        super().__init__(module)
        self._gui = gui
        c = self.constants
        self._vars = (c.VAR_POSITION, c.VAR_SPEED, c.VAR_ANGLE, c.VAR_ROAD_ID)

    @property
    def has_gui(self) -> bool:
        return self._gui

    def step(self) -> None:
        super().step()
        subscribe = self._m.vehicle.subscribe
        for vid in self._m.simulation.getDepartedIDList():
            subscribe(vid, self._vars)

    def read_vehicles(self) -> VehicleBatch:
        ids = list(self._m.vehicle.getIDList())
        results = self._m.vehicle.getAllSubscriptionResults()
        pos_k, speed_k, angle_k, road_k = self._vars
        n = len(ids)
        rows = [results[v] for v in ids]
        xy = np.fromiter(itertools.chain.from_iterable(r[pos_k] for r in rows), np.float64, 2 * n).reshape(n, 2)
        speed = np.fromiter((r[speed_k] for r in rows), np.float64, n)
        angle = np.fromiter((r[angle_k] for r in rows), np.float64, n)
        roads = [r[road_k] for r in rows]
        return quantise_batch(VehicleBatch(ids, xy[:, 0], xy[:, 1], speed, angle, roads))


def _constants() -> Any:
    import traci.constants as tc  # same values as libsumo.constants; traci is pure Python

    return tc


def sumo_command(
    sumocfg: str | Path,
    *,
    gui: bool = False,
    seed: int | None = None,
    step_length_s: float = 1.0,
    begin_s: float | None = None,
    end_s: float | None = None,
    extra_args: list[str] | None = None,
) -> list[str]:
    """The command line that starts SUMO on a scenario config, quiet and deterministic."""
    cmd = [
        sumo_binary(gui),
        "-c",
        str(sumocfg),
        "--step-length",
        repr(float(step_length_s)),
        "--no-step-log",
        "true",
        "--no-warnings",
        "true",
        "--duration-log.disable",
        "true",
    ]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if begin_s is not None:
        cmd += ["--begin", repr(float(begin_s))]
    if end_s is not None:
        cmd += ["--end", repr(float(end_s))]
    if gui:
        cmd += ["--start", "true", "--quit-on-end", "true", "--window-size", "1280,960", "--delay", "0"]
    return cmd + list(extra_args or [])


def open_backend(
    name: BackendName,
    sumocfg: str | Path,
    *,
    gui: bool = False,
    seed: int | None = None,
    step_length_s: float = 1.0,
    begin_s: float | None = None,
    end_s: float | None = None,
    extra_args: list[str] | None = None,
) -> SumoBackend:
    """Start SUMO on ``sumocfg`` with the chosen backend. ``gui`` needs the traci backend."""
    if gui and name != "traci":
        raise SumoError("--gui needs the traci backend (sumo-gui is a separate process)")
    if not Path(sumocfg).is_file():
        raise SumoError(f"no SUMO configuration at {sumocfg}")
    cmd = sumo_command(
        sumocfg,
        gui=gui,
        seed=seed,
        step_length_s=step_length_s,
        begin_s=begin_s,
        end_s=end_s,
        extra_args=extra_args,
    )
    if name == "libsumo":
        import libsumo

        try:
            libsumo.start(cmd)
        except Exception as exc:
            raise SumoError(f"libsumo could not start SUMO: {exc}") from exc
        return LibsumoBackend(libsumo)
    if name == "traci":
        import traci

        label = f"twin-{os.getpid()}-{next(_label_counter)}"
        try:
            traci.start(cmd, label=label)
        except Exception as exc:
            raise SumoError(f"could not start {Path(cmd[0]).name} over TraCI: {exc}") from exc
        return TraciBackend(traci.getConnection(label), gui=gui)
    raise SumoError(f"unknown backend {name!r}; choose libsumo or traci")


def sumo_version() -> str:
    """The eclipse-sumo release installed (what a recording notes it was made with); ``unknown`` if none."""
    try:
        from importlib.metadata import version

        return version("eclipse-sumo")
    except Exception:  # noqa: BLE001 - only informative
        return "unknown"
