"""libsumo in a worker process, so that SUMO steps on one core while the bridge computes on the other.

libsumo is the fastest way to run SUMO, but it holds Python's GIL while it steps: in one process, SUMO
and the bridge's own work (physics, twin writes, decisions) take turns on one core. Here the worker
process owns libsumo; after each step it reads every vehicle and sends the tick to the bridge over a
pipe. The bridge asks for ticks t+1 and t+2 before it computes tick t, so SUMO steps meanwhile (see
:class:`twin_service.bridge.pipeline.PipelinedTicks`). SUMO and what is read from it are exactly those of
an in-process run; only the wall time per tick changes. An ``advance`` request steps without reading (a
fast-forward, or the bare-step baseline of ``scripts/bench_bridge.py``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from twin_service.bridge.backends import BackendName, SumoError, open_backend
from twin_service.engine.types import SumoTick

START_TIMEOUT_S = 120.0
STEP_TIMEOUT_S = 600.0


def _serve(conn: Connection, sumocfg: str, options: dict[str, Any]) -> None:
    """The worker's loop: open libsumo, then step (and read, or not) on request until told to close."""
    # The bridge alone decides when to stop. A terminal's Ctrl-C goes to the whole foreground process
    # group; leave it, so that the bridge can finish its tick and close this worker itself. If the
    # bridge dies instead, ``recv`` sees the pipe close and the worker exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setsid()
    try:
        backend = open_backend("libsumo", sumocfg, **options)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", str(exc)))
        return
    try:
        conn.send(("ready", backend.time_s, backend.delta_t_s, backend.expected_remaining()))
        while True:
            request = conn.recv()
            if isinstance(request, tuple) and request[0] == "scale":  # applied with the next step; no reply
                backend.set_scale(float(request[1]))
                continue
            if request not in ("step", "advance"):
                break
            try:
                backend.step()
                if request == "step":
                    conn.send(("tick", backend.observe_tick()))
                else:  # stepped without reading the vehicles
                    conn.send(
                        (
                            "advanced",
                            backend.time_s,
                            backend.expected_remaining(),
                            backend.vehicle_count(),
                            backend.last_step_s,
                        )
                    )
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
                conn.send(("error", str(exc)))
    except (EOFError, OSError):
        pass  # the parent went away; close SUMO below
    finally:
        backend.close()


class ProcessBackend:
    """A libsumo simulation in a worker process, driven step by step over a pipe.

    ``start_step`` asks for the next step without waiting; ``finish_step`` waits for its tick. ``step``
    and ``observe_tick`` give the same sequential interface as the in-process backends.
    """

    name: BackendName = "libsumo"
    has_gui = False

    def __init__(self, sumocfg: str | Path, **options: Any) -> None:
        if options.get("gui"):
            raise SumoError("sumo-gui runs over TraCI, not in a libsumo worker")
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited SUMO or threads
        self._conn, child = context.Pipe()
        self._proc = context.Process(
            target=_serve, args=(child, str(sumocfg), options), name="sumo-worker", daemon=True
        )
        self._proc.start()
        child.close()
        self._in_flight = 0
        self._send_error: SumoError | None = None
        """A request that could not be sent (the worker died): raised where its reply would be awaited."""
        self._last: SumoTick | None = None
        self._count = 0
        self.last_step_s = 0.0
        """Wall seconds the worker's last ``simulationStep`` took."""
        self.last_read_s = 0.0
        """Wall seconds the worker's last read of the vehicles took."""
        reply = self._receive(START_TIMEOUT_S)
        if reply[0] == "error":
            self.close()
            raise SumoError(reply[1])
        _, self._time_s, self._delta_t_s, self._expected = reply
        self.epoch_s = float(self._time_s)
        """Sim time the run started at (the UAVs' patrol clock counts from here)."""

    def _stopped(self) -> str:
        """How the worker ended, for messages."""
        self._proc.join(timeout=1.0)
        code = self._proc.exitcode
        if code is None:
            return "the SUMO worker process stopped answering"
        if code < 0:
            return f"the SUMO worker process was killed ({signal.Signals(-code).name})"
        return f"the SUMO worker process stopped (exit code {code})"

    def set_scale(self, scale: float) -> None:
        """SUMO's demand scale from the worker's next step on (steps already asked for keep the old one)."""
        if self._send_error is None:
            try:
                self._conn.send(("scale", float(scale)))
            except OSError as exc:
                self._send_error = SumoError(self._stopped())
                raise self._send_error from exc

    def _send(self, request: str) -> None:
        try:
            self._conn.send(request)
        except OSError as exc:  # BrokenPipeError: the worker is gone
            raise SumoError(self._stopped()) from exc

    def _receive(self, timeout_s: float) -> tuple:
        if not self._conn.poll(timeout_s):
            if not self._proc.is_alive():
                raise SumoError(self._stopped())
            raise SumoError(f"the SUMO worker did not answer within {timeout_s:.0f} s")
        try:
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            raise SumoError(self._stopped()) from exc

    # -- asynchronous stepping ----------------------------------------------------------------
    def start_step(self) -> None:
        """Ask for the next step. If the worker is gone, :meth:`finish_step` of this step says so: the ticks
        it sent before are still collected first."""
        if self._send_error is None:
            try:
                self._send("step")
            except SumoError as exc:
                self._send_error = exc
        self._in_flight += 1

    def finish_step(self) -> SumoTick:
        if self._in_flight == 0:
            raise SumoError("no step in flight")
        try:
            if self._send_error is not None and not self._conn.poll(0):
                raise self._send_error
            reply = self._receive(STEP_TIMEOUT_S)
        except SumoError as exc:
            raise SumoError(f"SUMO step failed: {exc}") from exc
        self._in_flight -= 1
        if reply[0] == "error":
            raise SumoError(f"SUMO step failed: {reply[1]}")
        tick: SumoTick = reply[1]
        self._time_s, self._expected = tick.time_s, tick.expected_remaining
        self._last, self._count, self.last_step_s = tick, len(tick.vehicles), tick.step_s
        self.last_read_s = tick.read_s
        return tick

    def advance(self) -> float:
        """Step without reading the vehicles (fast-forward, or a bare-step baseline); returns SUMO's step seconds.

        Afterwards :meth:`observe_tick` has nothing to give until the next :meth:`step`.
        """
        if self._in_flight:
            raise SumoError("a step is in flight")
        try:
            self._send("advance")
            reply = self._receive(STEP_TIMEOUT_S)
        except SumoError as exc:
            raise SumoError(f"SUMO step failed: {exc}") from exc
        if reply[0] == "error":
            raise SumoError(f"SUMO step failed: {reply[1]}")
        _, self._time_s, self._expected, self._count, self.last_step_s = reply
        self._last = None
        return float(self.last_step_s)

    # -- the sequential interface of SumoBackend -----------------------------------------------
    def step(self) -> None:
        self.start_step()
        self.finish_step()

    def observe_tick(self) -> SumoTick:
        if self._last is None:
            raise SumoError("no step has been taken yet")
        return self._last

    @property
    def time_s(self) -> float:
        return float(self._time_s)

    @property
    def delta_t_s(self) -> float:
        return float(self._delta_t_s)

    def expected_remaining(self) -> int:
        return int(self._expected)

    def vehicle_count(self) -> int:
        """Vehicles running after the last step."""
        return int(self._count)

    def close(self) -> None:
        """Stop the worker (waiting for a step in flight); SUMO closes in the worker."""
        try:
            while self._in_flight and self._send_error is None:
                self._receive(STEP_TIMEOUT_S)
                self._in_flight -= 1
            self._conn.send("close")
        except (OSError, SumoError):
            pass
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        self._conn.close()
