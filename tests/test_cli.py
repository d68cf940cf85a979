"""The twin-service command: help, a short real run with KPI files, and clear errors for bad input."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twin_service.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_help_lists_the_commands():
    out = _cli("--help")
    assert out.returncode == 0
    for command in ("scenario", "run", "api"):
        assert command in out.stdout


def test_a_short_city_run_writes_its_kpis(tmp_path: Path):
    per_tick, summary = tmp_path / "ticks.csv", tmp_path / "summary.csv"
    out = _cli("run", "--scenario", "city", "--ticks", "15", "--kpi-csv", str(per_tick), "--summary-csv", str(summary))
    assert out.returncode == 0, out.stderr
    assert "twins in Redis at unix://" in out.stdout and "summary:" in out.stdout
    rows = list(csv.DictReader(per_tick.open()))
    assert [int(r["tick"]) for r in rows] == list(range(1, 16))
    totals = dict(csv.reader(summary.open()))
    assert totals["ticks"] == "15" and float(totals["vehicle_ticks"]) == sum(float(r["vehicles"]) for r in rows)


def test_bad_input_gets_a_message_and_a_non_zero_exit(tmp_path: Path):
    for args, message in [
        (("run", "--scenario", "atlantis"), "unknown scenario 'atlantis'"),
        (("run", "--backend", "carla"), "unknown backend 'carla'"),
        (("run", "--ticks", "3", "--migration-policy", "teleport"), "teleport"),
        (("scenario", "build", "moon"), "unknown scenario kind 'moon'"),
        (("scenario", "import", str(tmp_path / "none.sumocfg"), "--out", str(tmp_path / "o")), "none.sumocfg"),
    ]:
        out = _cli(*args)
        assert out.returncode != 0, args
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr, args


def test_ctrl_c_finishes_the_tick_prints_the_summary_and_leaves_nothing_running():
    """As a terminal does: SIGINT to the whole process group (bridge, SUMO worker, embedded Redis)."""
    import os
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "twin_service.cli", "run", "--scenario", "city"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # wait until the run is ticking (progress comes every second)
            lines.append(line)
            if line.startswith("tick "):
                break
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stdout = "".join(lines) + out
    assert proc.returncode == 0, err
    assert "summary:" in stdout and "Traceback" not in err + stdout
    ticks = int(stdout.split("summary:")[1].split("ticks")[1].split()[0])
    assert ticks > 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the worker and redis-server are gone with it
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("processes of the run are still alive after it exited")
