"""Where the team's shared data (``../shared``: papers, real SUMO scenarios) is, for tests.

CI clones the repo with ``shared/`` beside it; a developer's fresh clone elsewhere finds the workspace copy.
``TWIN_SHARED_DIR`` overrides both.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    candidates = [os.environ.get("TWIN_SHARED_DIR"), REPO_ROOT.parent / "shared", "/work/shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "scenarios").is_dir():
            return Path(candidate)
    raise FileNotFoundError(
        "the shared data folder (with scenarios/tavf-hamburg) is not beside the repo: set TWIN_SHARED_DIR"
    )


HAMBURG_DIR = shared_dir() / "scenarios" / "tavf-hamburg"
HAMBURG_CFG = HAMBURG_DIR / "run_simulation.sumocfg"


def folder_fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file under a folder."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
