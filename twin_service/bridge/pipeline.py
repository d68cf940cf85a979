"""Step SUMO for the next tick while this tick is computed.

A bridge tick is: SUMO steps, the bridge reads the vehicles, then computes physics, twins and decisions.
Only the first two touch SUMO, and SUMO never depends on the bridge's results (twins do not change the
traffic). So once tick t is read, SUMO can step to t+1 while tick t is computed. The results are exactly
those of sequential ticks; only the wall time per tick changes.

* With a :class:`~twin_service.bridge.worker.ProcessBackend` (libsumo in a worker process) the requests for
  the next steps go down its pipe and the worker steps on the other core. Two steps are kept in flight, so
  the worker never waits for this process to ask: it steps, reads and sends without a pause, and a slow
  tick here (a garbage collection, a slow Redis reply) is absorbed instead of stalling SUMO.
* Over TraCI, SUMO is another process too: a helper thread sends the step and waits on the socket.
* Not with in-process libsumo: it holds the GIL inside ``simulationStep`` (measured: a thread doing Python
  work beside it makes both slower than running them one after the other). Not for sumo-gui runs: the GUI
  overlay talks to SUMO while the tick is computed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from twin_service.engine import Engine, SumoTick
from twin_service.twins.frames import TickFrame


class PipelinedTicks:
    """``tick()`` like :meth:`Engine.tick`, with the next SUMO steps overlapping the computation.

    ``may_step(k)`` says whether the run will want the tick ``k`` after the one being collected; no step
    is taken that it refuses.
    """

    REMOTE_DEPTH = 2
    """Steps a worker process may be ahead of the tick being computed."""

    def __init__(self, engine: Engine, may_step: Callable[[int], bool] | None = None) -> None:
        self.engine = engine
        self._may_step = may_step or (lambda ahead: True)
        self._ready: SumoTick | None = None
        self._error: BaseException | None = None
        self._go = threading.Event()
        self._done = threading.Event()
        self._stop = False
        self._in_flight = 0
        backend = engine.backend
        self._remote = hasattr(backend, "start_step")  # a worker process steps by itself
        self.depth = self.REMOTE_DEPTH if self._remote else 1
        self._thread: threading.Thread | None = None
        if not self._remote:
            self._thread = threading.Thread(target=self._loop, name="sumo-step", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._go.wait()
            self._go.clear()
            if self._stop:
                return
            try:
                self.engine.backend.step()
                self._ready = self.engine.observe()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc
            self._done.set()

    def _start(self) -> None:
        self._in_flight += 1
        if self._remote:
            self.engine.backend.start_step()
        else:
            self._go.set()

    def _collect(self) -> SumoTick:
        self._in_flight -= 1
        if self._remote:
            return self.engine.backend.finish_step()
        self._done.wait()
        self._done.clear()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        ready, self._ready = self._ready, None
        assert ready is not None
        return ready

    def tick(self) -> tuple[TickFrame, object]:
        engine = self.engine
        if not self._in_flight:
            self._start()
        sumo = self._collect()
        # Start the next steps now if the run will want them; they run while this tick is computed.
        while self._in_flight < self.depth and sumo.expected_remaining > 0 and self._may_step(self._in_flight + 1):
            self._start()
        return engine.compute(sumo)

    def close(self) -> None:
        """Wait for a step in flight, then stop the worker; SUMO is idle afterwards."""
        while self._in_flight:
            # The run is ending: an error of a step it was taking does not matter any more.
            with contextlib.suppress(BaseException):
                self._collect()
        if self._thread is not None:
            self._stop = True
            self._go.set()
            self._thread.join(timeout=30)
