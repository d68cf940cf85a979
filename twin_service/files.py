"""Atomic outputs: a file or folder appears under its name only once it is complete.

Everything the project writes for later use (recordings, models, evaluation results) is written under a temporary
name in the same folder, flushed to disk, and renamed into place (``os.replace``, atomic within one filesystem).
An interrupted or failed command leaves its temporary name (removed when it can be) and never a file that looks
complete; a reader sees either the old output or the whole new one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_MARK = ".partial-"
"""Part of every temporary name (``.NAME.partial-XXXX``), so that leftovers are recognisable."""


class OutputExists(FileExistsError):
    """The output is already there and overwriting it was not asked for."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def fsync_path(path: str | Path) -> None:
    """Flush a file (or a folder's entries) to disk; quietly nothing where the platform cannot."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (``os.umask`` sets it process-wide)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_sibling(path: str | Path, *, folder: bool = False) -> Path:
    """A new, empty temporary file (or folder) beside ``path``, in the same filesystem."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}{TEMP_MARK}"
    umask = _umask()
    if folder:
        made = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        made.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide a model from the service's own user
        return made
    fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
    os.close(fd)
    Path(name).chmod(0o666 & ~umask)  # as open() would have made it
    return Path(name)


def publish(temporary: str | Path, path: str | Path) -> Path:
    """Move a finished temporary file into place as ``path`` (replacing a file there), durably."""
    temporary, target = Path(temporary), Path(path)
    fsync_path(temporary)
    os.replace(temporary, target)
    fsync_path(target.parent)
    return target


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """``path.write_bytes(data)`` that never leaves half a file."""
    temporary = temporary_sibling(path)
    try:
        temporary.write_bytes(data)
        return publish(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """``path.write_text(text)`` that never leaves half a file."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def check_new_output(path: str | Path, *, force: bool, what: str = "output", flag: str = "--out") -> None:
    """Refuse (:class:`OutputExists`) to replace an existing ``path`` unless ``force``."""
    target = Path(path)
    if target.exists() and not force:
        raise OutputExists(f"{flag} {target}: the {what} exists; give --force to replace it, or another {flag}")


@contextmanager
def atomic_folder(
    path: str | Path, *, force: bool = False, what: str = "output", flag: str = "--out"
) -> Iterator[Path]:
    """Write a folder's files into the folder this yields; on success it becomes ``path``, whole.

    The folder yielded has ``path``'s own name (a model's folder names the model), inside a temporary folder
    beside ``path`` (``.NAME.partial-XXXX``, which no registry lists). An existing ``path`` is refused before
    anything is written unless ``force``; with ``force`` it is replaced only once the new folder is complete.
    On an exception (Ctrl-C included) the temporary folder is removed and ``path`` is left as it was.
    """
    target = Path(path)
    check_new_output(target, force=force, what=what, flag=flag)
    if target.exists() and not target.is_dir():
        raise OutputExists(f"{flag} {target} is a file; give a folder")
    holder = temporary_sibling(target, folder=True)
    keep = False
    try:
        inner = holder / target.name
        inner.mkdir(mode=0o777)
        yield inner
        mode = 0o666 & ~_umask()
        for file in inner.rglob("*"):
            if file.is_file():
                file.chmod(mode)  # as open() makes files (safetensors writes 0600: the service's user must read it)
                fsync_path(file)
        fsync_path(inner)
        if target.exists():
            if not force:  # another run wrote it meanwhile: keep both, replace nothing unasked
                keep = True
                raise OutputExists(
                    f"{flag} {target} appeared while this one was written; the new {what} is kept in {inner}"
                )
            os.replace(target, holder / f"{target.name}.replaced")
        os.replace(inner, target)
        fsync_path(target.parent)
    finally:
        if not keep:
            shutil.rmtree(holder, ignore_errors=True)


@contextmanager
def atomic_files(folder: str | Path, *, flag: str = "--out") -> Iterator[Path]:
    """Write result files into the temporary folder this yields; on success each moves into ``folder``.

    Other files already in ``folder`` stay; a file of the same name is replaced by the complete new one. An
    interrupted run leaves ``folder`` as it was (its temporary folder is removed). ``folder`` must not be a file.
    """
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise OutputExists(f"{flag} {target} is a file; give a folder (it is created if missing)")
    target.mkdir(parents=True, exist_ok=True)
    holder = temporary_sibling(target / "results", folder=True)
    try:
        yield holder
        files = sorted(p for p in holder.rglob("*") if p.is_file())
        for file in files:
            fsync_path(file)
        for file in files:
            destination = target / file.relative_to(holder)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, destination)
        fsync_path(target)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def relocate_paths(folder: str | Path, written: str | Path, wanted: str | Path) -> None:
    """In the JSON files of ``folder``, write ``wanted`` wherever a trainer recorded ``written`` (the temporary
    folder it was given, under :func:`atomic_folder`): a manifest records where the model was asked to go."""
    import json

    old, new = json.dumps(str(written))[1:-1], json.dumps(str(wanted))[1:-1]
    for file in Path(folder).glob("*.json"):
        text = file.read_text()
        if old in text:
            file.write_text(text.replace(old, new))
