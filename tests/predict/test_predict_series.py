"""Series files (CSV, NPZ) for the workload predictor: reading, clear errors for bad files, the split, scaling."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from twin_service.cli import app
from twin_service.predict.features import Scaler
from twin_service.predict.series import SeriesError, chronological_bounds, load_series, read_series_file, windows


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def sine_csv(path: Path, n: int = 100, step: int = 300, gap_at: int | None = None) -> Path:
    rows = ["time,a,b"]
    for i in range(n):
        a = "" if i == gap_at else f"{10 + np.sin(i / 5):.4f}"
        rows.append(f"{i * step},{a},{20 + i}")
    return write_csv(path, rows)


def test_csv_with_a_time_column_gives_the_step_the_names_and_the_gaps(tmp_path):
    values, names, step = read_series_file(sine_csv(tmp_path / "s.csv", gap_at=7))
    assert names == ["a", "b"] and step == 300.0 and values.shape == (100, 2)
    assert np.isnan(values[7, 0]) and values[7, 1] == 27.0
    assert values[3, 0] == pytest.approx(10 + np.sin(3 / 5), abs=1e-4)


def test_iso_dates_and_a_file_without_time(tmp_path):
    rows = ["date,x"] + [f"2024-01-01T{h:02d}:00:00,{h}" for h in range(24)]
    _, _, step = read_series_file(write_csv(tmp_path / "d.csv", rows))
    assert step == 3600.0
    rows = ["400001,400017"] + [f"{i},{2 * i}" for i in range(30)]  # numeric sensor ids as names
    values, names, step = read_series_file(write_csv(tmp_path / "n.csv", rows))
    assert names == ["400001", "400017"] and step is None and values[29, 1] == 58.0


def test_npz_series(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, values=np.arange(60.0).reshape(30, 2), step_s=np.float64(5.0), names=np.array(["u", "v"]))
    values, names, step = read_series_file(path)
    assert values.shape == (30, 2) and names == ["u", "v"] and step == 5.0
    data = load_series(path)
    assert data.step_s == 5.0 and data.n_series == 2 and data.spec.series_sha256


BAD_CSV = {
    "empty.csv": ([], "empty"),
    "header_only.csv": (["time,a"], "no data rows"),
    "ragged.csv": (["a,b"] + ["1,2"] * 25 + ["3"], "row 27 has 1 cells"),
    "word.csv": (["a,b"] + ["1,2"] * 10 + ["1,abc"] + ["1,2"] * 15, "row 12, column 'b': 'abc' is not a number"),
    "uneven.csv": (["time,a"] + [f"{t},1" for t in list(range(0, 20)) + [25, 26, 27]], "not uniform"),
    "backwards.csv": (["time,a"] + [f"{t},1" for t in [0, 1, 2, 1, 3] + list(range(4, 30))], "does not increase"),
    "short.csv": (["a"] + ["1"] * 5, "at least 20 steps"),
    "no_header.csv": (["1.5,2.5"] + ["1,2"] * 30, "header"),
    "only_time.csv": (["time"] + [str(t) for t in range(30)], "no series column"),
}


@pytest.mark.parametrize("name", sorted(BAD_CSV))
def test_bad_csv_files_get_a_clear_error(tmp_path, name):
    rows, message = BAD_CSV[name]
    path = tmp_path / name
    path.write_text("\n".join(rows))
    with pytest.raises(SeriesError, match=message):
        read_series_file(path)


def test_bad_files_of_other_kinds(tmp_path):
    with pytest.raises(SeriesError, match="no series file"):
        read_series_file(tmp_path / "missing.csv")
    (tmp_path / "s.txt").write_text("a\n1\n")
    with pytest.raises(SeriesError, match="give a .csv or .npz"):
        read_series_file(tmp_path / "s.txt")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SeriesError, match="not a readable NPZ"):
        read_series_file(tmp_path / "junk.npz")
    np.savez(tmp_path / "two.npz", a=np.zeros((30, 2)), b=np.zeros(3))
    with pytest.raises(SeriesError, match="name the series array 'values'"):
        read_series_file(tmp_path / "two.npz")
    np.savez(tmp_path / "cube.npz", values=np.zeros((30, 2, 2)))
    with pytest.raises(SeriesError, match=r"must be \(time, series\)"):
        read_series_file(tmp_path / "cube.npz")
    np.savez(tmp_path / "obj.npz", values=np.array([{"a": 1}] * 30, dtype=object))
    with pytest.raises(SeriesError, match="not a readable NPZ"):  # object arrays would need pickle: refused
        read_series_file(tmp_path / "obj.npz")
    (tmp_path / "latin.csv").write_bytes(b"a\n" + b"\xff\xfe\n" * 30)
    with pytest.raises(SeriesError, match="not a text CSV"):
        read_series_file(tmp_path / "latin.csv")
    # A header claiming 8 TiB in front of 64 bytes is refused before numpy allocates (issue 19's craft_rec.py).
    header = repr({"descr": "<f8", "fortran_order": False, "shape": (2**40,)}).encode("latin1")
    header += b" " * (64 - ((10 + len(header) + 1) % 64)) + b"\n"
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as zf:
        zf.writestr("values.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 64)
    with pytest.raises(SeriesError, match="declares \\(1099511627776,\\) but holds another size"):
        read_series_file(tmp_path / "bomb.npz")


def test_the_command_line_reports_a_bad_file_in_one_line(tmp_path):
    path = tmp_path / "word.csv"
    path.write_text("\n".join(["a,b"] + ["1,2"] * 10 + ["1,abc"] + ["1,2"] * 15))
    result = CliRunner().invoke(app, ["predictor", "train", "--series", str(path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "error:" in result.output and "'abc' is not a number" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    neither = CliRunner().invoke(app, ["predictor", "train", "--out", str(tmp_path / "m")])
    assert neither.exit_code == 2 and "either --recordings" in neither.output


def test_the_split_is_chronological_70_10_20_by_default(tmp_path):
    data = load_series(sine_csv(tmp_path / "s.csv", n=100))
    assert chronological_bounds(100) == [(0, 70), (70, 80), (80, 100)]
    assert [p.name for p in (*data.train, *data.val, *data.test)] == ["rows 0-70", "rows 70-80", "rows 80-100"]
    b = np.concatenate([p.values[:, 1, 0] for p in (*data.train, *data.val, *data.test)])
    assert np.array_equal(b, 20 + np.arange(100))  # in time order, nothing dropped or repeated
    assert data.spec.split.fractions == (0.7, 0.1, 0.2)
    other = load_series(sine_csv(tmp_path / "s.csv", n=100), fractions=(0.5, 0.25, 0.25))
    assert other.spec.split.test == ["rows 75-100"]
    with pytest.raises(SeriesError, match="too few"):
        chronological_bounds(10, (0.8, 0.1, 0.1))


def test_scaling_is_fitted_on_the_training_part_only(tmp_path):
    data = load_series(sine_csv(tmp_path / "s.csv", n=100))
    scaler = Scaler.fit([p.values for p in data.train])
    train_b = 20 + np.arange(70)
    assert scaler.mean[0, 0] == pytest.approx(np.mean(np.concatenate([p.values[:, :, 0].ravel() for p in data.train])))
    assert scaler.std.shape == (1, 1)
    # Changing the validation and test parts changes nothing.
    for part in (*data.val, *data.test):
        part.values[:] = 1e6
    again = Scaler.fit([p.values for p in data.train])
    assert np.array_equal(again.mean, scaler.mean) and np.array_equal(again.std, scaler.std)
    per = Scaler.fit([p.values for p in data.train], "per-series")
    assert per.mean.shape == (2, 1) and per.mean[1, 0] == pytest.approx(train_b.mean())
    assert per.std[1, 0] == pytest.approx(train_b.std())


def test_windows_pair_each_window_with_the_value_h_steps_later():
    part = np.arange(20.0).reshape(10, 2, 1)  # series 0: 0, 2, 4...; series 1: 1, 3, 5...
    inputs, future, last = windows(part, 3, 2)
    assert inputs.shape == (6, 3, 2, 1) and future.shape == (6, 2)
    assert np.array_equal(inputs[0, :, 0, 0], [0, 2, 4]) and np.array_equal(future[0], [8, 9])
    assert last.tolist() == [2, 3, 4, 5, 6, 7]
    assert windows(part, 8, 3)[0].shape[0] == 0
