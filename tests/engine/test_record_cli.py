"""``twin-service record``, ``run --replay`` and ``evaluate`` from the command line, bad input included."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from twin_service.engine.recording import Recording
from twin_service.envs.evaluate import EvalOptions, evaluate_policies

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twin_service.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_record_then_replay_from_the_command_line(small_scenario: Path, tmp_path: Path):
    out = tmp_path / "rec.npz"
    done = _cli("record", "--scenario", str(small_scenario), "--seed", "4", "--end", "90", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and "90 ticks" in done.stdout
    with Recording(out) as rec:
        assert rec.meta.seed == 4 and len(rec) == 90 and rec.meta.command.startswith("twin-service record")
    summary = tmp_path / "summary.csv"
    replay = _cli("run", "--replay", str(out), "--ticks", "60", "--summary-csv", str(summary))
    assert replay.returncode == 0, replay.stderr
    totals = dict(csv.reader(summary.open()))
    assert totals["backend"] == "replay" and totals["ticks"] == "60"
    # Beyond the recording's end the replay stops, as SUMO stops at the end of its scenario.
    longer = _cli("run", "--replay", str(out), "--ticks", "500", "--summary-csv", str(summary))
    assert longer.returncode == 0, longer.stderr
    assert dict(csv.reader(summary.open()))["ticks"] == "90"


def test_evaluate_writes_tables_and_plots(small_recording: Path, tmp_path: Path):
    out = tmp_path / "eval"
    done = _cli(
        "evaluate", "--recordings", str(small_recording), "--migration-policy", "sticky-nearest,greedy",
        "--migration-policy", "random", "--offload-policy", "local-only", "--episode-s", "60", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("episodes.csv", "summary.csv", "summary.json", "summary.md", "paper_a_kpis.png", "timeseries.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 100, name
    summary = json.loads((out / "summary.json").read_text())
    pairs = [p["pair"] for p in summary["policies"]]
    assert pairs == ["sticky-nearest + local-only", "greedy + local-only", "random + local-only"]
    assert all(p["episodes"] == 4 for p in summary["policies"])  # (300 - 60) / 60
    by = {p["migration_policy"]: p for p in summary["policies"]}
    # Random moves twins about; sticky-nearest keeps them where they are unless they must move.
    assert by["random"]["migrations_per_vehicle_tick"] > 5 * by["sticky-nearest"]["migrations_per_vehicle_tick"]
    assert np.isfinite(by["greedy"]["latency_mean_s_ci95"]) and by["greedy"]["latency_mean_s_ci95"] > 0
    assert "| sticky-nearest + local-only | 4 |" in (out / "summary.md").read_text()


def test_episode_kpis_are_the_ticks_aggregated(small_recording: Path):
    result = evaluate_policies(None, [small_recording], ["sticky-nearest"], ["nearest-least-loaded"],
                               EvalOptions(episode_s=100, warmup_s=50))  # fmt: skip
    assert [r["episode"] for r in result.rows] == [0, 1]
    for row in result.rows:
        ticks = [t for t in result.timeseries if t["episode"] == row["episode"]]
        assert len(ticks) == 100
        vehicles = np.array([t["vehicles"] for t in ticks])
        latency = np.array([t["latency_mean_s"] for t in ticks])
        assert row["vehicle_ticks"] == vehicles.sum()
        np.testing.assert_allclose(row["latency_mean_s"], (latency * vehicles).sum() / vehicles.sum(), rtol=1e-9)
        success = np.array([t["task_success_rate"] for t in ticks])
        np.testing.assert_allclose(row["task_success_rate"], (success * vehicles).sum() / vehicles.sum(), rtol=1e-9)
    # The reference pair's reward is centred by its own moments: over all its vehicle-ticks it averages -w_d * loss.
    weights = np.array([r["vehicle_ticks"] for r in result.rows])
    mean_reward = np.average([r["reward_eq22"] for r in result.rows], weights=weights)
    mean_loss = np.average([r["packet_loss"] for r in result.rows], weights=weights)
    np.testing.assert_allclose(mean_reward, -mean_loss, atol=1e-9)


def test_bad_recordings_and_options_get_a_message(small_scenario: Path, small_recording: Path, tmp_path: Path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not a recording")
    for args, message in [
        (("run", "--replay", str(garbage)), "not a readable twin-service recording"),
        (("evaluate", "--recordings", str(tmp_path / "none.npz"), "--out", str(tmp_path / "o")), "no recording at"),
        (("evaluate", "--recordings", str(small_recording), "--scenario", "city", "--out", str(tmp_path / "o")),
         "recorded on another city or demand"),
        (("evaluate", "--recordings", str(small_recording), "--set", "task.nope=1", "--out", str(tmp_path / "o")),
         "unknown parameter task.nope"),
        (("evaluate", "--recordings", str(small_recording), "--episode-s", "5000", "--out", str(tmp_path / "o")),
         "too short"),
        (("record", "--scenario", str(small_scenario), "--out", str(tmp_path)), "is a directory"),
        (("run", "--replay", str(small_recording), "--scenario", "city", "--ticks", "3"),
         "recorded on another city or demand"),
    ]:  # fmt: skip
        out = _cli(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr, args
