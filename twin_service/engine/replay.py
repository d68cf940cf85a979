"""A recorded SUMO run replayed as a tick source (:mod:`twin_service.engine.recording` is the file)."""

from __future__ import annotations

from pathlib import Path

from twin_service.engine.recording import Recording, RecordingError
from twin_service.engine.types import SumoTick


class ReplayBackend:
    """A recording as a tick source: ``step`` moves to the next recorded tick, as SUMO would have.

    It stands where a live SUMO backend stands (the engine, the bridge's run loop and ``twin-service run
    --replay``). ``begin_s`` starts the replay later in the recording: the sim time before the first step,
    as SUMO's ``--begin``. The UAVs' clock still counts from the recording's own start (:attr:`epoch_s`), so
    they fly where they flew live. Stepping past ``end_s`` (default: the end of the recording) raises.
    ``roads=False`` skips decoding road ids (only the twin frame stores them).
    """

    name = "replay"
    has_gui = False

    def __init__(
        self,
        recording: Recording | str | Path,
        begin_s: float | None = None,
        end_s: float | None = None,
        *,
        roads: bool = True,
    ):
        self.recording = recording if isinstance(recording, Recording) else Recording(recording)
        rec = self.recording
        if len(rec) == 0:
            raise RecordingError(f"{rec.path.name} holds no ticks")
        tick_s = rec.meta.tick_s
        self.epoch_s = rec.begin_s
        self._time_s = rec.begin_s if begin_s is None else float(begin_s)
        self._next = 0 if begin_s is None or begin_s <= rec.begin_s else rec.index_of(self._time_s + tick_s)
        last = len(rec) - 1 if end_s is None else rec.index_of(float(end_s))
        if last < self._next - 1:
            raise RecordingError(f"replay window ends ({end_s} s) before it begins ({begin_s} s)")
        self._last = last
        self._current: SumoTick | None = None
        self._expected = int(rec._expected[self._next - 1]) if self._next > 0 else max(rec.vehicles_at(0), 1)
        self.last_step_s = 0.0
        self._roads = roads

    @property
    def time_s(self) -> float:
        return float(self._time_s)

    @property
    def delta_t_s(self) -> float:
        return float(self.recording.meta.tick_s)

    @property
    def end_s(self) -> float:
        return float(self.recording.time_s[self._last])

    @property
    def position(self) -> int:
        """Index of the next tick :meth:`step` will give."""
        return self._next

    def remaining_ticks(self) -> int:
        return self._last + 1 - self._next

    def step(self) -> None:
        if self._next > self._last:
            raise RecordingError(f"the replay of {self.recording.path.name} ended at {self.end_s:g} s")
        self._current = self.recording.tick(self._next, roads=self._roads)
        self._time_s = self._current.time_s
        self._expected = self._current.expected_remaining
        self._next += 1

    def observe_tick(self) -> SumoTick:
        if self._current is None:
            raise RecordingError("no step has been taken yet")
        return self._current

    def expected_remaining(self) -> int:
        return int(self._expected)

    def vehicle_count(self) -> int:
        return len(self._current.vehicles) if self._current is not None else 0

    def close(self) -> None:
        self.recording.close()
