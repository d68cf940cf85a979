"""AF-MARL on Flower's Deployment Engine: a real SuperLink and two SuperNodes on localhost run a few rounds.

Flower (the ``federated`` extra) lives in its own virtualenv (flwr 1.42 pins starlette 1.3, which the dev
extras' schemathesis 3 cannot share): ``./scripts/test`` builds ``.venv-flower`` and points ``TWIN_FLOWER_VENV``
at it. The test runs ``twin-service train af-marl --federation flower`` from that virtualenv.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _flower_python() -> Path | None:
    venv = Path(os.environ.get("TWIN_FLOWER_VENV") or REPO / ".venv-flower")
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    ok = subprocess.run([str(python), "-c", "import flwr, twin_service"], capture_output=True, check=False)
    return python if ok.returncode == 0 else None


@pytest.mark.timeout(900)
def test_superlink_and_two_supernodes_run_semi_synchronous_rounds(small_recording: Path, tmp_path: Path) -> None:
    python = _flower_python()
    if python is None:
        pytest.skip(
            "the federated extra (flwr) is not installed: ./scripts/test builds .venv-flower, or set "
            "TWIN_FLOWER_VENV to a virtualenv with pip install -e '.[federated]'"
        )
    out = tmp_path / "afm-flower"
    cmd = [str(python.with_name("twin-service")), "train", "af-marl", "--federation", "flower", "--supernodes", "2"]
    cmd += ["--recordings", str(small_recording), "--out", str(out), "--episodes", "1", "--episode-s", "30"]
    hps = ("warmup_s=20", "learning_starts=30", "clients_per_tick=4", "batch_size=16", "tau_agg_s=2", "n_agg=4")
    for hp in (*hps, "min_tick_s=1.0"):  # the world in real time: replies arrive within the 2 s rounds
        cmd += ["--hp", hp]
    done = subprocess.run(cmd + ["--no-progress"], capture_output=True, text=True, timeout=840, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["algorithm"] == "AF-MARL"
    run = json.loads((out / "flower_run.json").read_text())
    replies = run["replies_by_node"]
    assert len(replies) == 2 and all(n > 0 for n in replies.values()), replies  # both SuperNodes trained
    curves = (out / "curves.csv").read_text().splitlines()
    header, row = curves[0].split(","), curves[1].split(",")
    assert float(row[header.index("aggregations")]) >= 2  # several semi-synchronous rounds closed
