"""Running the SUMO command-line tools of the installed eclipse-sumo wheel, reproducibly.

Tool paths are looked up when a tool is run, never at import time. SUMO writes a "generated on
<date>" comment (with the command line and temporary paths) at the top of every XML file, and gzip
stores a timestamp: :func:`write_reproducible` strips the one and zeroes the other, so the same seed
gives byte-identical files.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from twin_service.config import ScenarioError

_STDERR_TAIL_CHARS = 1500
_HEADER_COMMENT = re.compile(rb"<!--\s*generated on.*?-->\s*", re.DOTALL)


def sumo_home() -> Path:
    """SUMO_HOME of the installed eclipse-sumo wheel (or of the environment, when set and valid)."""
    try:
        import sumo  # the eclipse-sumo wheel

        home = Path(sumo.SUMO_HOME)
    except ImportError:
        env = os.environ.get("SUMO_HOME")
        if not env:
            raise ScenarioError("eclipse-sumo is not installed and SUMO_HOME is not set") from None
        home = Path(env)
    if not (home / "bin").is_dir():
        raise ScenarioError(f"SUMO_HOME {home} has no bin/ folder")
    return home


def tool_path(name: str) -> Path:
    """Path of a SUMO binary (``sumo``, ``netgenerate``, ``netconvert``, ``duarouter``...)."""
    exe = sumo_home() / "bin" / name
    if not exe.is_file():
        raise ScenarioError(f"SUMO tool {name!r} not found at {exe}")
    return exe


def python_tool_path(relative: str) -> Path:
    """Path of a script under ``$SUMO_HOME/tools`` (e.g. ``randomTrips.py``)."""
    script = sumo_home() / "tools" / relative
    if not script.is_file():
        raise ScenarioError(f"SUMO tool script {relative!r} not found at {script}")
    return script


def tool_env() -> dict[str, str]:
    """Environment for SUMO tools: SUMO_HOME set (no XML-validation warning) and PROJ's database found."""
    env = dict(os.environ)
    home = sumo_home()
    env["SUMO_HOME"] = str(home)
    proj_dir = home / "data" / "proj"  # the wheel's own proj.db, matching its PROJ version
    if (proj_dir / "proj.db").is_file():
        env.setdefault("PROJ_DATA", str(proj_dir))
        env.setdefault("PROJ_LIB", str(proj_dir))
    return env


def run_tool(args: Sequence[str | Path], what: str, cwd: Path | None = None) -> str:
    """Run one SUMO tool, raising :class:`ScenarioError` with the tail of its stderr on failure."""
    argv = [str(a) for a in args]
    try:
        proc = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=cwd, env=tool_env())
    except FileNotFoundError as exc:
        raise ScenarioError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "").strip()[-_STDERR_TAIL_CHARS:]
        raise ScenarioError(f"{what} failed (exit {exc.returncode}): {tail}") from exc
    return proc.stdout


def run_python_tool(script: str, args: Sequence[str | Path], what: str, cwd: Path | None = None) -> str:
    """Run a ``$SUMO_HOME/tools`` script with this interpreter (so sumolib is importable)."""
    return run_tool([sys.executable, python_tool_path(script), *args], what, cwd=cwd)


def write_reproducible(src: Path, dst: Path) -> Path:
    """Copy a SUMO XML output to ``dst`` without its "generated on" headers; gzip (mtime 0) if ``.gz``.

    ``src`` may itself be gzipped.
    """
    raw = src.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    raw = _HEADER_COMMENT.sub(b"", raw)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.name.endswith(".gz"):
        with dst.open("wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
            gz.write(raw)
    else:
        dst.write_bytes(raw)
    return dst
