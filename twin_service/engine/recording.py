"""Recorded SUMO runs: a compact columnar file of every tick's vehicles, written and read back.

Hosting and offloading decisions never change how vehicles drive, so one SUMO run can be replayed through
the engine as often as training needs, with exactly the physics the live bridge computes. A recording holds,
per tick, what a :class:`~twin_service.engine.types.SumoTick` holds: the sim time, the vehicles that arrived,
SUMO's count of vehicles still expected, and every running vehicle's id, x, y, speed, heading and road.

The tick source that replays one is :class:`twin_service.engine.replay.ReplayBackend`.

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
import math
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from twin_service.engine.types import SumoTick, VehicleBatch, from_units, to_units
from twin_service.events import EventSpan, spans_from_json
from twin_service.files import publish, temporary_sibling

FORMAT = "twin-service-recording"
VERSION = 1
CHUNK_TICKS = 60
_COLUMNS = ("vid", "road", "x", "y", "speed", "heading")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same run gives the same bytes

# What a reader accepts before it inflates or allocates anything (a file is checked against these on open).
MAX_VEHICLES_PER_TICK = 100_000
"""More vehicles in one tick than this is not a recording of a city (the city's peak is about 1,000): a chunk of
60 such ticks decodes to about 330 MB, so a crafted file cannot make a reader allocate more."""
MAX_CHUNK_TICKS = 3_600
MAX_ID_CHARS = 1_024
"""Longest vehicle or road id (SUMO's are a few tens of characters)."""
MAX_META_BYTES = 1 << 20
_MAX_DEFLATE_RATIO = 1_100
"""Deflate cannot expand data more than 1032:1, so a member that claims more is lying about its size."""
_INDEX_DTYPES = {
    "time_s": "<f8",
    "expected": "<i8",
    "row_offsets": "<i8",
    "arrived": "<i4",
    "arrived_offsets": "<i8",
}


class RecordingError(ValueError):
    """A recording file is missing, unreadable, or does not fit what it is used for."""


class RecordingInterrupted(RecordingError):
    """A recording was stopped before its end: nothing was written."""


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
    span_end_s: float = 0.0
    """The end the recording was asked to reach (0 in files older than this field): a file that stops short of it
    while SUMO still expected vehicles was interrupted, and is refused."""
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
        """The metadata of a file, every field checked for its type and range (:class:`RecordingError` if not)."""
        try:
            raw = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise RecordingError(f"the metadata is not JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise RecordingError(f"the metadata is a JSON {type(raw).__name__}, not an object")
        if raw.get("format") != FORMAT:
            raise RecordingError(f"not a twin-service recording (format {raw.get('format')!r})")
        if raw.get("version") != VERSION:
            raise RecordingError(f"recording format version {raw.get('version')!r}, this build reads {VERSION}")
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        problems = [p for name, value in known.items() if (p := _meta_field_problem(name, value))]
        missing = [f.name for f in fields(cls) if f.name not in known and f.default is MISSING]
        missing += [f.name for f in fields(cls) if f.name not in known and f.name in _REQUIRED_WITH_DEFAULT]
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if problems:
            raise RecordingError("bad metadata: " + "; ".join(problems))
        return cls(**known)


_REQUIRED_WITH_DEFAULT = ("ticks", "rows", "vehicles", "chunk_ticks")
"""Fields with a default for the writer that every file records, and a reader cannot do without."""


def _meta_field_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the metadata field ``name`` (None if it can)."""
    integer = name in ("seed", "ticks", "rows", "vehicles", "chunk_ticks", "version")
    number = name in ("scale", "begin_s", "end_s", "span_end_s", "tick_s")
    if name == "extra":
        return None if isinstance(value, dict) else f"extra must be an object, got {type(value).__name__}"
    if integer:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{name} must be an integer, got {value!r}"
        if value < 0 or (name == "chunk_ticks" and not 1 <= value <= MAX_CHUNK_TICKS):
            return f"{name} {value} is out of range" + (f" (1-{MAX_CHUNK_TICKS})" if name == "chunk_ticks" else "")
        return None
    if number:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            return f"{name} must be a finite number, got {value!r}"
        if name in ("scale", "tick_s") and value <= 0:
            return f"{name} must be above 0, got {value!r}"
        return None
    if not isinstance(value, str):
        return f"{name} must be a string, got {type(value).__name__}"
    return None


def _write_array(zf: zipfile.ZipFile, name: str, array: NDArray) -> None:
    info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    zf.writestr(info, buffer.getvalue(), compresslevel=6)


class RecordingWriter:
    """Write ticks as they come; :meth:`close` adds the index and the metadata.

    The file is written under a temporary name beside ``path`` (``.NAME.partial-XXXX``), flushed to disk and
    renamed when closed, so an interrupted recording never leaves a file that looks complete; :meth:`abort`
    removes it. Call :meth:`close` only for a recording that ended where it was meant to.
    """

    def __init__(self, path: str | Path, meta: RecordingMeta, chunk_ticks: int = CHUNK_TICKS) -> None:
        self.path = Path(path)
        self.meta = meta
        self.chunk_ticks = chunk_ticks
        self._partial = temporary_sibling(self.path)
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
        publish(self._partial, self.path)
        self._closed = True
        return self.meta

    def abort(self) -> None:
        """Drop the partial file (an interrupted or failed recording)."""
        if not self._closed:
            self._zip.close()
            self._partial.unlink(missing_ok=True)
            self._closed = True


_DECODE_ERRORS = (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile, zlib.error, MemoryError)
"""Everything reading a damaged zip of ``.npy`` members can raise (zlib's errors included)."""


def _recorded_events(meta: RecordingMeta) -> list[EventSpan]:
    raw = meta.extra.get("events", [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise RecordingError('bad metadata: extra["events"] must be a list of objects')
    try:
        return spans_from_json(raw)
    except ValueError as exc:
        raise RecordingError(f"bad metadata: {exc}") from None


class Recording:
    """A recording opened for reading; ticks are decoded chunk by chunk, on demand.

    The file is checked on open, before anything is inflated or allocated from what it declares: the members
    (each one's declared size against what the index implies, and against what deflate can produce from its
    compressed bytes), the metadata (types and ranges), the index (finite, increasing times one tick apart;
    row and arrival offsets from 0, never decreasing, ending where the metadata says; at most
    :data:`MAX_VEHICLES_PER_TICK` vehicles a tick) and the id tables; each chunk's shape and vehicle and road
    numbers are checked when it is decoded. Whatever fails is one :class:`RecordingError` naming the file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RecordingError(f"no recording at {self.path}")
        self._zip: zipfile.ZipFile | None = None
        try:
            self._zip = zipfile.ZipFile(self.path)
            self._members = self._check_members()
            meta_text = self._read("meta", "<U", "scalar", max_chars=MAX_META_BYTES // 4)
            self.meta = RecordingMeta.from_json(str(meta_text.reshape(-1)[0]))
            self.events = _recorded_events(self.meta)
            """The what-if events the recorded run applied, with the sim times they were in force (a replay applies
            them again): ``run --record`` keeps them in the metadata (``extra["events"]``)."""
            self._check_index()
        except RecordingError as exc:
            self.close()
            message = str(exc)
            raise RecordingError(message if message.startswith(str(self.path)) else f"{self.path}: {message}") from exc
        except _DECODE_ERRORS as exc:
            self.close()
            raise RecordingError(
                f"{self.path}: not a readable twin-service recording ({exc or type(exc).__name__})"
            ) from exc
        self._chunk_cache: tuple[int, dict[str, NDArray]] | None = None

    def _check_members(self) -> dict[str, zipfile.ZipInfo]:
        assert self._zip is not None
        members: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            name = info.filename.removesuffix(".npy")
            if name in members:
                raise RecordingError(f"member {info.filename} appears twice")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
                raise RecordingError(
                    f"member {info.filename} is encrypted or compressed with method {info.compress_type}"
                )
            if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
                raise RecordingError(
                    f"member {info.filename} claims {info.file_size} bytes from {info.compress_size} compressed: "
                    "more than deflate can produce (a damaged or crafted file)"
                )
            members[name] = info
        if "meta" not in members:
            raise RecordingError("not a readable twin-service recording (no meta)")
        if members["meta"].file_size > MAX_META_BYTES:
            raise RecordingError(f"its metadata claims {members['meta'].file_size} bytes")
        return members

    def _read(
        self, name: str, dtype: str, shape: tuple[int, ...] | Literal["scalar"] | None, *, max_chars: int = 0
    ) -> NDArray:
        """Member ``name`` as an array of ``dtype`` (``<U``: text of at most ``max_chars`` characters) and ``shape``
        (None: any 1-D length; ``scalar``: one value, of shape () or (1,)), after checking its ``.npy`` header
        against its declared size: nothing is allocated from a size the file has not shown it holds, and no pickled
        object is ever read."""
        assert self._zip is not None
        info = self._members.get(name)
        if info is None:
            raise RecordingError(f"member {name}.npy is missing (truncated or damaged file?)")
        with self._zip.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                found_shape, fortran, found = np.lib.format.read_array_header_1_0(fp, max_header_size=10_000)
            elif version == (2, 0):
                found_shape, fortran, found = np.lib.format.read_array_header_2_0(fp, max_header_size=10_000)
            else:
                raise RecordingError(f"member {name}.npy has .npy format {version}")
            header = fp.tell()
            if found.hasobject:
                raise RecordingError(f"member {name}.npy holds Python objects (pickle), which are never read")
            if fortran and len(found_shape) > 1:
                raise RecordingError(f"member {name}.npy is in Fortran order")
            if dtype == "<U":
                if found.kind != "U" or found.byteorder == ">" or found.itemsize > 4 * max(max_chars, 1):
                    raise RecordingError(
                        f"member {name}.npy holds {found}, expected text of at most {max_chars} characters"
                    )
            elif found.str != dtype:
                raise RecordingError(f"member {name}.npy holds {found.str}, expected {dtype}")
            if shape is None:
                if len(found_shape) != 1:
                    raise RecordingError(f"member {name}.npy has shape {found_shape}, expected one dimension")
            elif shape == "scalar":
                if tuple(found_shape) not in ((), (1,)):
                    raise RecordingError(f"member {name}.npy has shape {found_shape}, expected one value")
            elif tuple(found_shape) != shape:
                raise RecordingError(f"member {name}.npy has shape {found_shape}, expected {shape}")
            count = math.prod(found_shape)
            nbytes = count * found.itemsize
            if header + nbytes != info.file_size:
                raise RecordingError(
                    f"member {name}.npy declares {found_shape} of {found.str} ({nbytes} bytes) but holds "
                    f"{info.file_size - header} bytes"
                )
            data = fp.read(nbytes)
            if len(data) != nbytes or fp.read(1):  # reading to the end checks the member's CRC
                raise RecordingError(f"member {name}.npy is shorter or longer than it declares")
        return np.frombuffer(data, dtype=found, count=count).reshape(found_shape)

    def _check_index(self) -> None:
        missing = [n for n in (*_INDEX_DTYPES, "vehicle_names", "road_names") if n not in self._members]
        if missing:
            raise RecordingError(f"no {', '.join(missing)} (truncated or damaged file?)")
        m = self.meta
        ticks = m.ticks
        self.time_s: NDArray[np.float64] = self._read("time_s", _INDEX_DTYPES["time_s"], (ticks,))
        self._expected: NDArray[np.int64] = self._read("expected", _INDEX_DTYPES["expected"], (ticks,))
        self._rows: NDArray[np.int64] = self._read("row_offsets", _INDEX_DTYPES["row_offsets"], (ticks + 1,))
        self._arrived_offsets: NDArray[np.int64] = self._read(
            "arrived_offsets", _INDEX_DTYPES["arrived_offsets"], (ticks + 1,)
        )
        self._arrived: NDArray[np.int32] = self._read(
            "arrived", _INDEX_DTYPES["arrived"], (int(self._arrived_offsets[-1]),) if ticks + 1 else None
        )
        self.vehicle_names: NDArray[np.str_] = self._read("vehicle_names", "<U", (m.vehicles,), max_chars=MAX_ID_CHARS)
        self.road_names: NDArray[np.str_] = self._read("road_names", "<U", None, max_chars=MAX_ID_CHARS)
        t = self.time_s
        if ticks:
            steps = np.diff(t)
            if not np.isfinite(t).all():
                raise RecordingError("its times are not all finite")
            if (steps <= 0).any() or t[0] <= m.begin_s - 1e-9:
                raise RecordingError("its times do not increase tick by tick")
            if not np.allclose(steps, m.tick_s, rtol=0, atol=1e-6 + 1e-9 * abs(t[-1])):
                raise RecordingError(f"its ticks are not {m.tick_s:g} s apart")
            if abs(t[-1] - m.end_s) > 1e-6:
                raise RecordingError(f"its last tick ({t[-1]:g} s) is not its end ({m.end_s:g} s)")
            if m.span_end_s and t[-1] <= m.span_end_s - m.tick_s - 1e-6 and self._expected[-1] > 0:
                raise RecordingError(
                    f"it stops at {t[-1]:g} s, short of the {m.span_end_s:g} s it was recording to, with vehicles "
                    "still expected: an interrupted recording"
                )
        for name, offsets, total in (
            ("row", self._rows, m.rows),
            ("arrival", self._arrived_offsets, len(self._arrived)),
        ):
            per_tick = np.diff(offsets)
            if offsets[0] != 0 or (per_tick < 0).any() or offsets[-1] != total:
                raise RecordingError(f"its {name} offsets do not run from 0 to {total} without going back")
        if ticks and int(np.diff(self._rows).max()) > MAX_VEHICLES_PER_TICK:
            raise RecordingError(f"a tick holds more than {MAX_VEHICLES_PER_TICK} vehicles")
        if (self._expected < 0).any():
            raise RecordingError("its count of expected vehicles is negative")
        if len(self._arrived) and (int(self._arrived.min()) < 0 or int(self._arrived.max()) >= m.vehicles):
            raise RecordingError(f"an arrived vehicle's number is not one of its {m.vehicles} vehicles")
        # Each chunk member must declare the size the index gives it: a chunk is never inflated beyond that.
        per = m.chunk_ticks
        for k in range(-(-ticks // per)):
            rows = int(self._rows[min((k + 1) * per, ticks)] - self._rows[k * per])
            for c in _COLUMNS:
                info = self._members.get(f"c{k:05d}_{c}")
                if info is None:
                    raise RecordingError(f"chunk {k} has no {c} column (truncated or damaged file?)")
                if not 0 <= info.file_size - 4 * rows <= 65_536:
                    raise RecordingError(f"chunk {k} column {c} claims {info.file_size} bytes for {rows} rows of int32")

    def __len__(self) -> int:
        return int(self.meta.ticks)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

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
        per = self.meta.chunk_ticks
        rows = int(self._rows[min((k + 1) * per, len(self))] - self._rows[k * per])
        try:
            raw = {c: self._read(f"c{k:05d}_{c}", "<i4", (rows,)) for c in _COLUMNS}
        except RecordingError as exc:
            raise RecordingError(f"{self.path}: chunk {k}: {exc}") from exc
        except _DECODE_ERRORS as exc:
            raise RecordingError(f"{self.path}: chunk {k} is unreadable ({exc or type(exc).__name__})") from exc
        for c, table in (("vid", self.vehicle_names), ("road", self.road_names)):
            numbers = raw[c]
            if rows and (int(numbers.min()) < 0 or int(numbers.max()) >= len(table)):
                raise RecordingError(f"{self.path}: chunk {k} numbers a {c} outside its table of {len(table)}")
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
