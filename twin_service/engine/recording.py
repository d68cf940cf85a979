"""Recorded SUMO runs: a compact columnar file of every tick's vehicles, and a tick source that replays it.

Hosting and offloading decisions never change how vehicles drive, so one SUMO run can be replayed through
the engine as often as training needs, with exactly the physics the live bridge computes. A recording holds,
per tick, what a :class:`~twin_service.engine.types.SumoTick` holds: the sim time, the vehicles that arrived,
SUMO's count of vehicles still expected, and every running vehicle's id, x, y, speed, heading and road.

File format (``.npz``: a zip of ``.npy`` arrays, read without pickle):

* ``meta``: a JSON string, :class:`RecordingMeta` (format, version, SUMO version, scenario, its parameter
  hash, seed, scale, time span, sizes, the command that made it);
* per tick ``time_s`` (float64), ``expected`` (int64), ``row_offsets`` (int64, T+1: the rows of tick t are
  ``row_offsets[t]:row_offsets[t+1]``), ``arrived_offsets`` (int64, T+1) into ``arrived`` (int32 vehicle
  numbers);
* ``vehicle_names`` and ``road_names``: the id tables;
* the rows, in chunks of ``chunk_ticks`` ticks (``c00012_x`` ...): ``vid`` and ``road`` (int32 numbers
  into the tables) and ``x``, ``y``, ``speed``, ``heading`` in hundredths (int32: cm, cm/s, centidegrees,
  the precision the bridge reads SUMO at, so a replayed tick is the live tick bit for bit).

Members are deflated one by one, so a window of a long recording is read by opening only its chunks. An
hour of the city (about 3.6 million vehicle-ticks) takes a few tens of MB.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from twin_service.engine.types import SumoTick, VehicleBatch, from_units, to_units

FORMAT = "twin-service-recording"
VERSION = 1
CHUNK_TICKS = 60
_COLUMNS = ("vid", "road", "x", "y", "speed", "heading")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same run gives the same bytes


class RecordingError(ValueError):
    """A recording file is missing, unreadable, or does not fit what it is used for."""


@dataclass(frozen=True)
class RecordingMeta:
    """What a recording is of, and how it was made."""

    scenario: str
    """The scenario's name (``params.toml`` ``[scenario] name``)."""
    scenario_dir: str
    param_hash: str
    """``ScenarioParams.param_hash`` of the scenario it was recorded on (for the record)."""
    seed: int
    """The day: SUMO's seed (and, for the built scenarios, the seed of the day's demand)."""
    scale: float
    """SUMO's demand scale (``--scale``)."""
    begin_s: float
    """Sim time before the first step (the UAVs' patrol clock counts from here)."""
    end_s: float
    """Sim time of the last recorded tick."""
    tick_s: float
    sumo_version: str
    demand: str = ""
    """Where the day's routes came from (the scenario's own, or regenerated for this seed)."""
    command: str = ""
    mobility_hash: str = ""
    """``Scenario.mobility_hash``: the net, routes and demand it recorded (a replay checks this, not the physics)."""
    ticks: int = 0
    rows: int = 0
    """Vehicle-ticks recorded."""
    vehicles: int = 0
    """Distinct vehicles seen."""
    chunk_ticks: int = CHUNK_TICKS
    format: str = FORMAT
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RecordingMeta:
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise RecordingError(f"not a twin-service recording (format {raw.get('format')!r})")
        if raw.get("version") != VERSION:
            raise RecordingError(f"recording format version {raw.get('version')}, this build reads {VERSION}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


def _write_array(zf: zipfile.ZipFile, name: str, array: NDArray) -> None:
    info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    zf.writestr(info, buffer.getvalue(), compresslevel=6)


class RecordingWriter:
    """Write ticks as they come; :meth:`close` adds the index and the metadata.

    The file is written to ``path.partial`` and renamed when closed, so an interrupted recording never
    leaves a file that looks complete.
    """

    def __init__(self, path: str | Path, meta: RecordingMeta, chunk_ticks: int = CHUNK_TICKS) -> None:
        self.path = Path(path)
        self.meta = meta
        self.chunk_ticks = chunk_ticks
        self._partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._zip = zipfile.ZipFile(self._partial, "w", allowZip64=True)
        self._vehicle_number: dict[str, int] = {}
        self._road_number: dict[str, int] = {}
        self._times: list[float] = []
        self._expected: list[int] = []
        self._rows = [0]
        self._arrived: list[int] = []
        self._arrived_offsets = [0]
        self._chunk: dict[str, list[NDArray]] = {c: [] for c in _COLUMNS}
        self._chunk_index = 0
        self._closed = False

    def _numbers(self, names: list[str] | tuple[str, ...], table: dict[str, int]) -> NDArray[np.int32]:
        out = np.empty(len(names), dtype=np.int32)
        for k, name in enumerate(names):
            number = table.get(name)
            if number is None:
                number = table[name] = len(table)
            out[k] = number
        return out

    def add(self, tick: SumoTick) -> None:
        """Append one tick (ticks must come in sim-time order, one step apart)."""
        if self._times and tick.time_s <= self._times[-1]:
            raise RecordingError(f"tick at {tick.time_s} s does not follow {self._times[-1]} s")
        v = tick.vehicles
        self._times.append(float(tick.time_s))
        self._expected.append(int(tick.expected_remaining))
        self._rows.append(self._rows[-1] + len(v))
        arrived = self._numbers(tick.arrived, self._vehicle_number)
        self._arrived.extend(arrived.tolist())
        self._arrived_offsets.append(len(self._arrived))
        c = self._chunk
        c["vid"].append(self._numbers(v.ids, self._vehicle_number))
        c["road"].append(self._numbers(v.road_ids, self._road_number))
        for name, values in (("x", v.x_m), ("y", v.y_m), ("speed", v.speed_mps), ("heading", v.heading_deg)):
            c[name].append(to_units(values).astype(np.int32))
        if len(c["vid"]) == self.chunk_ticks:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        if not self._chunk["vid"]:
            return
        for name, parts in self._chunk.items():
            _write_array(self._zip, f"c{self._chunk_index:05d}_{name}", np.concatenate(parts).astype(np.int32))
            parts.clear()
        self._chunk_index += 1

    @property
    def ticks(self) -> int:
        return len(self._times)

    def close(self, **meta_updates: Any) -> RecordingMeta:
        """Finish the file (index, id tables, metadata) and move it into place; returns the metadata."""
        if self._closed:
            return self.meta
        self._flush_chunk()
        names = list(self._vehicle_number)
        roads = list(self._road_number)
        end_s = self._times[-1] if self._times else self.meta.begin_s
        self.meta = RecordingMeta(
            **{
                **asdict(self.meta),
                "end_s": end_s,
                "ticks": len(self._times),
                "rows": self._rows[-1],
                "vehicles": len(names),
                "chunk_ticks": self.chunk_ticks,
                **meta_updates,
            }
        )
        arrays = {
            "time_s": np.asarray(self._times, dtype=np.float64),
            "expected": np.asarray(self._expected, dtype=np.int64),
            "row_offsets": np.asarray(self._rows, dtype=np.int64),
            "arrived": np.asarray(self._arrived, dtype=np.int32),
            "arrived_offsets": np.asarray(self._arrived_offsets, dtype=np.int64),
            "vehicle_names": np.asarray(names, dtype=str) if names else np.zeros(0, dtype="<U1"),
            "road_names": np.asarray(roads, dtype=str) if roads else np.zeros(0, dtype="<U1"),
            "meta": np.asarray(self.meta.to_json()),
        }
        for name, array in arrays.items():
            _write_array(self._zip, name, array)
        self._zip.close()
        self._partial.replace(self.path)
        self._closed = True
        return self.meta

    def abort(self) -> None:
        """Drop the partial file (an interrupted or failed recording)."""
        if not self._closed:
            self._zip.close()
            self._partial.unlink(missing_ok=True)
            self._closed = True


class Recording:
    """A recording opened for reading; ticks are decoded chunk by chunk, on demand."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RecordingError(f"no recording at {self.path}")
        try:
            self._npz = np.load(self.path, allow_pickle=False)
            self.meta = RecordingMeta.from_json(self._npz["meta"].item())
            self.time_s: NDArray[np.float64] = self._npz["time_s"]
            self._expected: NDArray[np.int64] = self._npz["expected"]
            self._rows: NDArray[np.int64] = self._npz["row_offsets"]
            self._arrived: NDArray[np.int32] = self._npz["arrived"]
            self._arrived_offsets: NDArray[np.int64] = self._npz["arrived_offsets"]
            self.vehicle_names: NDArray[np.str_] = self._npz["vehicle_names"]
            self.road_names: NDArray[np.str_] = self._npz["road_names"]
        except RecordingError:
            raise
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, TypeError) as exc:
            raise RecordingError(f"{self.path}: not a readable twin-service recording ({exc})") from exc
        if len(self.time_s) != self.meta.ticks or len(self._rows) != self.meta.ticks + 1:
            raise RecordingError(f"{self.path}: the index does not match its metadata (truncated file?)")
        self._chunk_cache: tuple[int, dict[str, NDArray]] | None = None

    def __len__(self) -> int:
        return int(self.meta.ticks)

    def close(self) -> None:
        self._npz.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def begin_s(self) -> float:
        return float(self.meta.begin_s)

    @property
    def end_s(self) -> float:
        return float(self.meta.end_s)

    def index_of(self, time_s: float) -> int:
        """Index of the tick at sim time ``time_s`` (:class:`RecordingError` if there is none)."""
        k = int(np.searchsorted(self.time_s, time_s - 1e-6))
        if k >= len(self.time_s) or abs(self.time_s[k] - time_s) > 1e-6:
            raise RecordingError(
                f"{self.path.name} has no tick at {time_s:g} s (it holds {self.time_s[0]:g}-{self.time_s[-1]:g} s)"
                if len(self.time_s)
                else f"{self.path.name} holds no ticks"
            )
        return k

    def vehicles_at(self, index: int) -> int:
        return int(self._rows[index + 1] - self._rows[index])

    def _chunk(self, k: int) -> dict[str, NDArray]:
        if self._chunk_cache is not None and self._chunk_cache[0] == k:
            return self._chunk_cache[1]
        try:
            raw = {c: self._npz[f"c{k:05d}_{c}"] for c in _COLUMNS}
        except (KeyError, ValueError, EOFError, zipfile.BadZipFile, OSError) as exc:
            raise RecordingError(f"{self.path}: chunk {k} is unreadable ({exc})") from exc
        chunk: dict[str, NDArray] = {"vid": raw["vid"], "road": raw["road"]}
        for c in ("x", "y", "speed", "heading"):
            chunk[c] = from_units(raw[c])
        self._chunk_cache = (k, chunk)
        return chunk

    def tick(self, index: int, roads: bool = True) -> SumoTick:
        """The tick at ``index`` as the live bridge read it (``roads=False``: road ids left empty, for the
        environments, which never store a frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"tick index {index} outside 0..{len(self) - 1}")
        per = self.meta.chunk_ticks
        k = index // per
        chunk = self._chunk(k)
        base = self._rows[k * per]
        lo, hi = int(self._rows[index] - base), int(self._rows[index + 1] - base)
        vid = chunk["vid"][lo:hi]
        a0, a1 = self._arrived_offsets[index], self._arrived_offsets[index + 1]
        batch = VehicleBatch(
            ids=self.vehicle_names[vid].tolist(),
            x_m=chunk["x"][lo:hi],
            y_m=chunk["y"][lo:hi],
            speed_mps=chunk["speed"][lo:hi],
            heading_deg=chunk["heading"][lo:hi],
            road_ids=self.road_names[chunk["road"][lo:hi]].tolist() if roads else [""] * (hi - lo),
            numbers=vid,
        )
        return SumoTick(
            time_s=float(self.time_s[index]),
            wall_time=time.time(),
            arrived=tuple(self.vehicle_names[self._arrived[a0:a1]].tolist()),
            vehicles=batch,
            expected_remaining=int(self._expected[index]),
        )

    def vehicle_numbers(self, index: int) -> NDArray[np.int32]:
        """The vehicles of tick ``index`` as numbers into :attr:`vehicle_names` (stable within the recording)."""
        per = self.meta.chunk_ticks
        k = index // per
        base = self._rows[k * per]
        return self._chunk(k)["vid"][int(self._rows[index] - base) : int(self._rows[index + 1] - base)]

    def ticks(self, start: int = 0, stop: int | None = None) -> Iterator[SumoTick]:
        for index in range(start, len(self) if stop is None else min(stop, len(self))):
            yield self.tick(index)


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
