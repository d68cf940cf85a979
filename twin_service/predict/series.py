"""Series to train and evaluate a predictor on: any T x M file (CSV or NPZ), split into train/val/test.

A :class:`SeriesData` holds contiguous parts (a recorded day, or a chronological stretch of a file), each
``(N, M, F)``: N steps of M series with F features; windows never cross a part's boundary. The city's
parts come from recorded days replayed through the engine (``twin_service.envs.load_series``); a file is
split chronologically, 70 / 10 / 20 by default.

File formats (time by series):

* CSV: one row per step, one column per series, a header row naming them. A first column called
  ``time``, ``timestamp``, ``date``, ``datetime`` or ``time_s`` (or holding dates) is the time: numbers are
  seconds, dates are ISO 8601; the step length is taken from it and must be uniform. Empty cells and
  ``nan`` are gaps: windows touching a gap are left out.
* NPZ: an array ``values`` (or the file's only array) of shape ``(T, M)``; optional ``step_s`` (a number)
  and ``names`` (M strings). Read without pickle.

Bad files get a :class:`SeriesError` that says what is wrong and where.
"""

from __future__ import annotations

import csv
import hashlib
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from twin_service.predict.features import SERIES_FEATURES
from twin_service.predict.manifest import DataSpec, SplitSpec

DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
TIME_COLUMNS = ("time", "timestamp", "date", "datetime", "time_s")
MIN_ROWS = 20


class SeriesError(ValueError):
    """A series file is missing, unreadable, or not a T x M table of numbers."""


@dataclass(frozen=True)
class SeriesPart:
    """One contiguous stretch of every series: a recorded day, or a chronological part of a file."""

    name: str
    values: NDArray[np.float64]
    """``(N, M, F)``; NaN marks a gap."""


@dataclass
class SeriesData:
    """Train, validation and test parts of the same series, with where they came from."""

    features: tuple[str, ...]
    train: list[SeriesPart]
    val: list[SeriesPart]
    test: list[SeriesPart]
    spec: DataSpec
    notes: list[str] = field(default_factory=list)

    @property
    def n_series(self) -> int:
        return self.spec.n_series

    @property
    def step_s(self) -> float:
        return self.spec.step_s


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_float(cell: str, row: int, column: str, path: Path) -> float:
    text = cell.strip()
    if text == "" or text.lower() in ("nan", "na", "null", "none"):
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise SeriesError(f"{path}: row {row}, column {column!r}: {cell!r} is not a number") from None


def _step_from_times(times: NDArray[np.float64], path: Path) -> float:
    if len(times) < 2:
        raise SeriesError(f"{path}: a time column needs at least two rows")
    steps = np.diff(times)
    if not np.all(np.isfinite(steps)) or np.any(steps <= 0):
        bad = int(np.flatnonzero(~(steps > 0))[0]) if np.any(~(steps > 0)) else 0
        raise SeriesError(f"{path}: time does not increase at data row {bad + 2} (rows must be in time order)")
    step = float(np.median(steps))
    off = np.abs(steps - step) > 1e-6 * max(step, 1.0)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise SeriesError(
            f"{path}: the time step is not uniform: {steps[i]:g} s between data rows {i + 1} and {i + 2}, "
            f"{step:g} s elsewhere (fill missing steps with empty cells)"
        )
    return step


def _parse_times(cells: list[str], path: Path) -> NDArray[np.float64]:
    """Seconds from the time column: numbers, or ISO 8601 dates/times."""
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        pass
    try:
        stamps = np.array([c.strip().replace(" ", "T") for c in cells], dtype="datetime64[s]")
    except ValueError as exc:
        raise SeriesError(f"{path}: the time column holds neither seconds nor ISO 8601 times ({exc})") from None
    return (stamps - stamps[0]).astype(np.float64)


def _looks_like_time(name: str, first_cell: str) -> bool:
    if name.strip().lower() in TIME_COLUMNS:
        return True
    try:
        float(first_cell)
        return False
    except ValueError:
        try:
            np.datetime64(first_cell.strip().replace(" ", "T"))
            return True
        except ValueError:
            return False


def _is_data_row(cells: list[str]) -> bool:
    """Whether a row looks like measurements (numbers, some not whole) rather than names (sensor ids may be whole)."""
    try:
        numbers = [float(c) for c in cells if c.strip()]
    except ValueError:
        return False
    return bool(numbers) and any(not float(n).is_integer() for n in numbers)


def _read_csv(path: Path) -> tuple[NDArray[np.float64], list[str], float | None]:
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise SeriesError(f"{path}: not a text CSV file") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise SeriesError(f"{path}: the file is empty")
    header = rows[0]
    if _is_data_row(header):
        raise SeriesError(f"{path}: the first row must be a header naming the columns; it holds measurements")
    body = rows[1:]
    if not body:
        raise SeriesError(f"{path}: a header but no data rows")
    width = len(header)
    for i, row in enumerate(body, start=2):
        if len(row) != width:
            raise SeriesError(f"{path}: row {i} has {len(row)} cells, the header has {width}")
    step = None
    names = [h.strip() or f"column {j + 1}" for j, h in enumerate(header)]
    first = 0
    if _looks_like_time(header[0], body[0][0]):
        times = _parse_times([r[0] for r in body], path)
        step = _step_from_times(times, path)
        first = 1
    if width - first < 1:
        raise SeriesError(f"{path}: no series column besides the time")
    values = np.array(
        [[_parse_float(r[j], i, names[j], path) for j in range(first, width)] for i, r in enumerate(body, start=2)],
        dtype=np.float64,
    )
    return values, names[first:], step


def _check_npz_sizes(path: Path) -> None:
    """Before numpy allocates anything: each member's ``.npy`` header must declare the size the member holds, and
    no member may claim more than deflate can produce (a damaged or crafted file is refused unread)."""
    import math

    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.file_size > 1100 * info.compress_size + 1024:
                raise SeriesError(f"{path}: member {info.filename} claims more than its compressed size can hold")
            with zf.open(info) as fp:
                version = np.lib.format.read_magic(fp)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fp, max_header_size=10_000)
                if not dtype.hasobject and fp.tell() + math.prod(shape) * dtype.itemsize != info.file_size:
                    raise SeriesError(f"{path}: member {info.filename} declares {shape} but holds another size")


def _read_npz(path: Path) -> tuple[NDArray[np.float64], list[str], float | None]:
    try:
        _check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            key = "values" if "values" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise SeriesError(f"{path}: holds {keys}; name the series array 'values'")
            values = np.asarray(npz[key])
            step = float(npz["step_s"]) if "step_s" in keys else None
            names = [str(n) for n in npz["names"]] if "names" in keys else []
    except SeriesError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError, zlib.error, MemoryError) as exc:
        raise SeriesError(f"{path}: not a readable NPZ file ({exc or type(exc).__name__})") from None
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise SeriesError(f"{path}: '{key}' must be (time, series), got shape {values.shape}")
    if not np.issubdtype(values.dtype, np.number):
        raise SeriesError(f"{path}: '{key}' holds {values.dtype}, not numbers")
    if names and len(names) != values.shape[1]:
        raise SeriesError(f"{path}: {len(names)} names for {values.shape[1]} series")
    if step is not None and not (np.isfinite(step) and step > 0):
        raise SeriesError(f"{path}: step_s must be a positive number, got {step}")
    return values.astype(np.float64), names or [f"series {j + 1}" for j in range(values.shape[1])], step


def read_series_file(path: str | Path) -> tuple[NDArray[np.float64], list[str], float | None]:
    """``(T, M)`` values (NaN for gaps), the series' names and the step length in seconds (None if not given)."""
    p = Path(path)
    if not p.is_file():
        raise SeriesError(f"no series file at {p}")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        values, names, step = _read_csv(p)
    elif suffix == ".npz":
        values, names, step = _read_npz(p)
    else:
        raise SeriesError(f"{p}: unknown format {suffix or '(no extension)'}; give a .csv or .npz file")
    if values.shape[0] < MIN_ROWS:
        raise SeriesError(f"{p}: {values.shape[0]} rows; a series needs at least {MIN_ROWS} steps")
    if np.isinf(values).any():
        raise SeriesError(f"{p}: holds infinite values")
    if not np.isfinite(values).any():
        raise SeriesError(f"{p}: holds no number at all")
    return values, names, step


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------


def chronological_bounds(n_rows: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[tuple[int, int]]:
    """Row ranges ``[start, end)`` of the train, validation and test parts, in time order."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions):
        raise SeriesError(f"a split needs three positive shares (train, validation, test), got {list(fractions)}")
    total = float(sum(fractions))
    cuts = np.round(np.cumsum([0.0, *fractions]) / total * n_rows).astype(int)
    cuts[-1] = n_rows
    bounds = [(int(cuts[i]), int(cuts[i + 1])) for i in range(3)]
    if any(b - a < 2 for a, b in bounds):
        raise SeriesError(f"{n_rows} rows are too few for a {'/'.join(f'{f:g}' for f in fractions)} split")
    return bounds


def load_series(
    path: str | Path, *, step_s: float | None = None, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> SeriesData:
    """A series file split chronologically into train / validation / test parts."""
    p = Path(path)
    values, names, file_step = read_series_file(p)
    notes = []
    if step_s is not None and file_step is not None and abs(step_s - file_step) > 1e-9 * max(file_step, 1.0):
        raise SeriesError(f"{p}: its time column has {file_step:g} s steps, --step-s says {step_s:g}")
    step = step_s or file_step
    if step is None:
        step = 1.0
        notes.append("the file gives no step length: one step is taken as 1 s (horizons are in steps)")
    bounds = chronological_bounds(values.shape[0], fractions)
    parts = [SeriesPart(f"rows {a}-{b}", values[a:b, :, None]) for a, b in bounds]
    spec = DataSpec(
        source="series",
        step_s=float(step),
        n_series=values.shape[1],
        series_names=names,
        series_file=str(p),
        series_sha256=sha256_of(p),
        split=SplitSpec(
            method="chronological",
            train=[parts[0].name],
            val=[parts[1].name],
            test=[parts[2].name],
            fractions=tuple(float(f) for f in fractions),  # type: ignore[arg-type]
        ),
    )
    return SeriesData(SERIES_FEATURES, [parts[0]], [parts[1]], [parts[2]], spec, notes)


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def windows(
    part: NDArray[np.floating], window: int, horizon: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Every window of a part: inputs ``(B, window, M, F)``, targets ``(B, M)`` (feature 0, ``horizon`` steps
    after each window's last step) and the index of that last step. A view: no copy of the inputs."""
    x = np.asarray(part, dtype=np.float64)
    n = x.shape[0] - window - horizon + 1
    if n <= 0:
        empty = np.zeros((0, window, *x.shape[1:]))
        return empty, np.zeros((0, x.shape[1])), np.zeros(0, dtype=np.int64)
    view = np.lib.stride_tricks.sliding_window_view(x[: n + window - 1], window, axis=0)  # (n, M, F, window)
    inputs = np.moveaxis(view, -1, 1)  # (n, window, M, F)
    last = np.arange(window - 1, window - 1 + n)
    return inputs, x[last + horizon, :, 0], last
