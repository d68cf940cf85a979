"""Atomic outputs (``twin_service.files``): a folder or file appears under its name only when complete; an error or
Ctrl-C leaves the old one and no temporary name behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from twin_service.files import OutputExists, atomic_files, atomic_folder, relocate_paths, write_text_atomic


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_folder_appears_whole_and_named_after_its_place(tmp_path: Path):
    target = tmp_path / "models" / "m1"
    with atomic_folder(target) as inner:
        assert inner.name == "m1" and inner.parent.name.startswith(".m1.partial-")  # a model's folder is its name
        (inner / "weights.safetensors").write_bytes(b"w")
        os.chmod(inner / "weights.safetensors", 0o600)  # as safetensors writes it
        assert not target.exists()  # nothing under the name until it is complete
    assert _names(tmp_path / "models") == ["m1"] and _names(target) == ["weights.safetensors"]
    assert stat.S_IMODE((target / "weights.safetensors").stat().st_mode) & 0o044  # readable by the service's user


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_or_ctrl_c_leaves_the_old_folder_and_no_temporary_one(tmp_path: Path, error: BaseException):
    target = tmp_path / "m1"
    target.mkdir()
    (target / "manifest.json").write_text("old")
    with pytest.raises(type(error)), atomic_folder(target, force=True) as inner:
        (inner / "manifest.json").write_text("new, half")
        raise error
    assert _names(tmp_path) == ["m1"] and (target / "manifest.json").read_text() == "old"


def test_an_existing_folder_is_replaced_only_with_force(tmp_path: Path):
    target = tmp_path / "m1"
    target.mkdir()
    (target / "manifest.json").write_text("old")
    with pytest.raises(OutputExists, match="give --force"), atomic_folder(target):
        pytest.fail("nothing may be written before the refusal")
    with atomic_folder(target, force=True) as inner:
        (inner / "manifest.json").write_text("new")
        assert (target / "manifest.json").read_text() == "old"  # the old one serves until the new one is whole
    assert _names(tmp_path) == ["m1"] and (target / "manifest.json").read_text() == "new"


def test_a_folder_written_meanwhile_by_another_run_is_not_replaced_unasked(tmp_path: Path):
    target = tmp_path / "m1"
    with pytest.raises(OutputExists, match="appeared while") as caught, atomic_folder(target) as inner:
        (inner / "manifest.json").write_text("mine")
        target.mkdir()
        (target / "manifest.json").write_text("theirs")
    assert (target / "manifest.json").read_text() == "theirs"
    kept = Path(str(caught.value).rsplit(" kept in ", 1)[1])
    assert (kept / "manifest.json").read_text() == "mine"  # nothing lost either


def test_result_files_move_in_together_and_others_stay(tmp_path: Path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "README.md").write_text("mine")
    (out / "summary.csv").write_text("old")
    with pytest.raises(RuntimeError), atomic_files(out) as folder:
        (folder / "summary.csv").write_text("half")
        raise RuntimeError
    assert _names(out) == ["README.md", "summary.csv"] and (out / "summary.csv").read_text() == "old"
    with atomic_files(out) as folder:
        (folder / "summary.csv").write_text("new")
        (folder / "plot.png").write_bytes(b"png")
    assert _names(out) == ["README.md", "plot.png", "summary.csv"] and (out / "summary.csv").read_text() == "new"
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputExists, match="is a file"), atomic_files(tmp_path / "a_file"):
        pass


def test_a_file_is_written_whole_and_paths_are_relocated(tmp_path: Path):
    path = write_text_atomic(tmp_path / "m.json", '{"out": "/tmp/.m.partial-x/m"}')
    assert _names(tmp_path) == ["m.json"]
    relocate_paths(tmp_path, "/tmp/.m.partial-x/m", "models/m")
    assert path.read_text() == '{"out": "models/m"}'
