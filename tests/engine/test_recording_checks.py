"""Damaged and crafted recordings are refused on open (or when the damaged chunk is reached), with one clear
error, before anything is allocated from the sizes they claim; an interrupted recording leaves no file.

The corruptions are those of ``../shared/repro/craft_rec.py`` (the reproducer of issue 19), applied to a recording
written here with :class:`RecordingWriter` so that the test needs no SUMO.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from twin_service.engine import SumoTick, VehicleBatch
from twin_service.engine.recording import (
    MAX_VEHICLES_PER_TICK,
    Recording,
    RecordingError,
    RecordingInterrupted,
    RecordingMeta,
    RecordingWriter,
)
from twin_service.engine.types import quantise


def _good(path: Path, ticks: int = 130) -> Path:
    rng = np.random.default_rng(1)
    meta = RecordingMeta(
        scenario="t", scenario_dir="/nowhere", param_hash="h", seed=1, scale=1.0, begin_s=0.0, end_s=0.0,
        tick_s=1.0, sumo_version="test",
    )  # fmt: skip
    writer = RecordingWriter(path, meta)
    for t in range(1, ticks + 1):
        ids = [f"v{k}" for k in range(t % 5, t % 5 + 40)]
        n = len(ids)
        batch = VehicleBatch(
            ids,
            quantise(rng.uniform(0, 5000, n)),
            quantise(rng.uniform(0, 5000, n)),
            quantise(rng.uniform(0, 20, n)),
            quantise(rng.uniform(0, 360, n)),
            [f"e{k % 4}" for k in range(n)],
        )
        writer.add(SumoTick(float(t), 0.0, (f"v{t % 5}",) if t > 5 else (), batch, expected_remaining=n))
    writer.close()
    return path


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _fake_npy(shape: tuple[int, ...], dtype: str = "<i4") -> bytes:
    """A ``.npy`` header claiming ``shape`` in front of 64 bytes (craft_rec.py's header bomb)."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (64 - ((10 + len(header) + 1) % 64)) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 64


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes | np.ndarray | None]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            key = info.filename[:-4]
            if key not in replace:
                zout.writestr(info, zin.read(info.filename))
                continue
            value = replace[key]
            if value is None:
                continue
            data = value if isinstance(value, bytes) else _npy(value)
            zout.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    return dst


def _crafted(good: Path, out: Path) -> dict[str, Path]:
    """Every corruption of craft_rec.py, by its name there."""
    data = good.read_bytes()
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"].reshape(-1)[0]))
    files: dict[str, Path] = {}

    def raw(name: str, content: bytes) -> None:
        (out / name).write_bytes(content)
        files[name] = out / name

    def member(name: str, replace: dict[str, bytes | np.ndarray | None]) -> None:
        files[name] = _rewrite(good, out / name, replace)

    def with_meta(name: str, value: object) -> None:
        member(name, {"meta": np.asarray(json.dumps(value) if not isinstance(value, str) else value)})

    raw("trunc.npz", data[: len(data) // 2])
    raw("trunc_tail.npz", data[:-100])
    flipped = bytearray(data)
    for i in range(len(flipped) // 3, len(flipped) // 3 + 64):
        flipped[i] ^= 0xFF
    raw("flip.npz", bytes(flipped))
    raw("empty.npz", b"")
    raw("text.npz", b"hello world\n")
    vid = arrays["c00000_vid"]
    member("vid_oob.npz", {"c00000_vid": np.full_like(vid, 10**6)})
    member("vid_neg.npz", {"c00000_vid": np.full_like(vid, -5)})
    member("road_oob.npz", {"c00001_road": np.full_like(arrays["c00001_road"], 99)})
    with_meta("meta_list.npz", [1, 2])
    with_meta("meta_chunk0.npz", {**meta, "chunk_ticks": 0})
    with_meta("meta_tick0.npz", {**meta, "tick_s": 0})
    with_meta("meta_ticks_str.npz", {**meta, "ticks": "120"})
    with_meta("meta_scen_missing.npz", {k: v for k, v in meta.items() if k != "scenario_dir"})
    with_meta("meta_notjson.npz", "{not json")
    with_meta("meta_nan.npz", {**meta, "end_s": float("nan")})
    member("meta_int.npz", {"meta": np.asarray(5)})
    member("no_meta.npz", {"meta": None})
    member("no_chunk1.npz", {"c00001_x": None})
    t = arrays["time_s"].copy()
    t[5] = np.nan
    member("time_nan.npz", {"time_s": t})
    member("time_rev.npz", {"time_s": arrays["time_s"][::-1].copy()})
    rows = arrays["row_offsets"].copy()
    rows[10] = rows[50]
    member("rows_bad.npz", {"row_offsets": rows})
    rows = arrays["row_offsets"].copy()
    rows[-1] = 10**9
    member("rows_huge.npz", {"row_offsets": rows})
    member("x_float.npz", {"c00000_x": arrays["c00000_x"].astype(np.float64)})
    member("x_2d.npz", {"c00000_x": arrays["c00000_x"].reshape(-1, 1).repeat(2, 1)})
    member("x_short.npz", {"c00000_x": arrays["c00000_x"][:10]})
    pickled = _npy(np.asarray([{"a": 1}], dtype=object), allow_pickle=True)
    member("pickle_meta.npz", {"meta": pickled})
    member("pickle_vnames.npz", {"vehicle_names": pickled})
    member("bomb_header_chunk.npz", {"c00000_x": _fake_npy((2**40,))})
    member("bomb_header_time.npz", {"time_s": _fake_npy((2**40,), "<f8")})
    # A chunk that inflates to 60 MB (craft_rec.py's is 600 MB: the same check refuses both before inflating).
    member("bomb_real.npz", {"c00000_x": _npy(np.zeros(15_000_000, dtype=np.int32))})
    return files


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("crafted")
    return _crafted(_good(folder / "good.npz"), folder)


def _read_everything(path: Path) -> int:
    with Recording(path) as rec:
        return sum(len(rec.tick(i).vehicles) for i in range(len(rec)))


def test_the_good_recording_reads_whole(tmp_path: Path):
    good = _good(tmp_path / "good.npz")
    assert _read_everything(good) == 130 * 40
    assert [p.name for p in tmp_path.iterdir()] == ["good.npz"]  # no temporary file left beside it


CRAFTED = [
    "trunc.npz", "trunc_tail.npz", "flip.npz", "empty.npz", "text.npz", "vid_oob.npz", "vid_neg.npz", "road_oob.npz",
    "meta_list.npz", "meta_chunk0.npz", "meta_tick0.npz", "meta_ticks_str.npz", "meta_scen_missing.npz",
    "meta_notjson.npz", "meta_nan.npz", "meta_int.npz", "no_meta.npz", "no_chunk1.npz", "time_nan.npz",
    "time_rev.npz", "rows_bad.npz", "rows_huge.npz", "x_float.npz", "x_2d.npz", "x_short.npz", "pickle_meta.npz",
    "pickle_vnames.npz", "bomb_header_chunk.npz", "bomb_header_time.npz", "bomb_real.npz",
]  # fmt: skip


@pytest.mark.parametrize("name", CRAFTED)
def test_every_crafted_recording_is_refused_with_one_clear_error(crafted: dict[str, Path], name: str):
    tracemalloc.start()
    try:
        with pytest.raises(RecordingError) as caught:
            _read_everything(crafted[name])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(str(crafted[name])) and "\n" not in message, message
    # Nothing is allocated from what a file claims: the 60 MB chunk and the 4 TiB headers are refused unread.
    assert peak < 20e6, (name, peak)


def test_what_is_refused_says_why(crafted: dict[str, Path]):
    expected = {
        "meta_chunk0.npz": "chunk_ticks 0 is out of range",
        "meta_list.npz": "JSON list, not an object",
        "time_nan.npz": "not all finite",
        "time_rev.npz": "do not increase",
        "rows_bad.npz": "row offsets",
        "vid_oob.npz": "numbers a vid outside its table",
        "road_oob.npz": "numbers a road outside its table",
        "bomb_real.npz": "claims 60000128 bytes",
        "bomb_header_time.npz": "has shape (1099511627776,)",
        "pickle_vnames.npz": "Python objects (pickle)",
        "flip.npz": "unreadable",
    }
    for name, part in expected.items():
        with pytest.raises(RecordingError, match=part.replace("(", r"\(").replace(")", r"\)")):
            _read_everything(crafted[name])


def test_a_crafted_recording_gets_one_line_and_exit_2_from_every_command(crafted: dict[str, Path], tmp_path: Path):
    from twin_service.cli import app

    runner = CliRunner()
    for args in (
        ["run", "--replay", str(crafted["bomb_real.npz"]), "--ticks", "3"],
        ["evaluate", "--recordings", str(crafted["time_rev.npz"]), "--out", str(tmp_path / "e")],
        ["predictor", "train", "--recordings", str(crafted["meta_list.npz"]), "--out", str(tmp_path / "p")],
        ["train", "af-marl", "--recordings", str(crafted["x_short.npz"]), "--out", str(tmp_path / "a")],
    ):
        done = runner.invoke(app, args)
        assert done.exit_code == 2, (args, done.output)
        lines = [line for line in done.output.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("error: ") and "Traceback" not in done.output, (args, done.output)
        assert not (tmp_path / "e").exists() and not (tmp_path / "p").exists() and not (tmp_path / "a").exists()


def test_a_stopped_recording_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``record`` interrupted (Ctrl-C): record_scenario raises and writes nothing, not even a temporary file."""
    from twin_service.bridge import record

    out = tmp_path / "day.npz"
    seen: list[int] = []

    class FakeBackend:  # what ProcessBackend offers record_scenario: the point here is the writer's handling
        time_s = 0.0

        def __init__(self, *args: object, **kwargs: object) -> None:
            self.now = 0.0

        def expected_remaining(self) -> int:
            return 10

        def start_step(self) -> None:
            pass

        def finish_step(self) -> SumoTick:
            self.now += 1.0
            ids = ["a", "b"]
            batch = VehicleBatch(ids, np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), ["r", "r"])
            return SumoTick(self.now, 0.0, (), batch, expected_remaining=10)

        def close(self) -> None:
            pass

    monkeypatch.setattr(record, "ProcessBackend", FakeBackend)
    with pytest.raises(RecordingInterrupted, match="was not written"):
        record.record_scenario(
            "city",
            out,
            seed=1,
            end_s=100,
            on_progress=lambda p: seen.append(p.tick),
            should_stop=lambda: len(seen) >= 5,
        )
    assert seen[-1] == 5
    assert list(tmp_path.iterdir()) == []


def test_a_recording_short_of_its_span_with_vehicles_expected_is_refused(tmp_path: Path):
    """A file that claims to be complete but stops before the end it was recording to (a recording interrupted
    by an older build, or a file cut and re-indexed) is refused; one that ended because SUMO ran out of vehicles
    is whole."""
    meta = RecordingMeta(
        scenario="t", scenario_dir="/x", param_hash="h", seed=1, scale=1.0, begin_s=0.0, end_s=0.0, tick_s=1.0,
        sumo_version="test", span_end_s=100.0,
    )  # fmt: skip
    for expected, refused in ((5, True), (0, False)):
        writer = RecordingWriter(tmp_path / f"short-{expected}.npz", meta)
        for t in range(1, 11):
            ids = ["a", "b"]
            batch = VehicleBatch(ids, np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), ["r", "r"])
            writer.add(SumoTick(float(t), 0.0, (), batch, expected_remaining=expected if t == 10 else 5))
        writer.close()
        if refused:
            with pytest.raises(RecordingError, match="short of the 100 s it was recording to"):
                Recording(tmp_path / f"short-{expected}.npz")
        else:
            assert len(Recording(tmp_path / f"short-{expected}.npz")) == 10


def test_limits_are_what_the_docstring_says():
    assert MAX_VEHICLES_PER_TICK * 60 * (4 * 6 + 8 * 4) < 1.5e9 / 4  # a chunk decodes well within 1.5 GB
