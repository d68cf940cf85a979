"""The twin-service command: help, a short real run with KPI files, and clear errors for bad input."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
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
    per_tick, summary = tmp_path / "ticks.csv", tmp_path / "new" / "folder" / "summary.csv"  # folders created
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


def test_bad_run_options_are_refused_before_the_run_starts(tmp_path: Path):
    """Each a one-line message and exit 2, before SUMO or Redis start (no 'scenario ...' line is printed)."""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    backwards = tmp_path / "backwards"
    backwards.mkdir()
    city = ROOT / "sumo_scenarios" / "city"
    text = (city / "params.toml").read_text().replace("deadline_s = [0.1, 1.0]", "deadline_s = [1.0, -0.1]")
    for name in ("net.net.xml.gz", "routes.rou.xml.gz", "edge_servers.add.xml", "scenario.sumocfg"):
        text = text.replace(f'"{name}"', f'"{city / name}"')
    (backwards / "params.toml").write_text(text)
    for args, message in [
        (("--redis-url", "foo://bar"), "--redis-url: 'foo://bar' is not a Redis URL"),
        (("--redis-url", "redis://127.0.0.1:notaport"), "Port could not be cast to integer value as 'notaport'"),
        (("--seed", "-1"), "--seed -1: expected an integer in [0, 2147483647]"),
        (("--seed", "x"), "Invalid value for '--seed'"),
        (("--speed", "nan"), "--speed nan: expected a finite number in [0.01, 10000]"),
        (("--begin", "5000"), "begin 5000 s is not before end 3600 s"),
        (("--kpi-csv", str(tmp_path)), f"--kpi-csv {tmp_path} is a folder"),
        (("--summary-csv", str(a_file / "sub" / "s.csv")), "cannot create the folder"),
        (("--decisions", "notaurl"), "--decisions: 'notaurl' is not an http(s) URL"),
        (("--scenario", str(backwards)), "offload.deadline_s.1: Input should be greater than 0"),
    ]:
        out = _cli("run", "--ticks", "5", *args)
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr and "scenario " not in out.stdout, (args, out.stdout)


def _descendants(pid: int) -> set[int]:
    """Every process started by ``pid``, and by those, from the parent pids in ``/proc/*/stat``."""
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        parent_of[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parent_of.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's wait is missing


def _wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while (alive := {p for p in pids if _running(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def _start_ticking_run(*extra: str) -> tuple[subprocess.Popen, list[str], set[int]]:
    """A city run in its own session, once it is ticking; with its helper processes (SUMO worker, Redis)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin_service.cli", "run", "--scenario", "city", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # wait until the run is ticking (progress comes every second)
        lines.append(line)
        if line.startswith("tick "):
            break
    helpers = _descendants(proc.pid)
    return proc, lines, helpers


def _names(pids: set[int]) -> list[str]:
    return [Path(f"/proc/{p}/cmdline").read_text().replace("\0", " ")[:80] for p in pids if _running(p)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _finish(proc: subprocess.Popen, lines: list[str], act: Callable[[], None]) -> tuple[str, str]:
    """Do ``act`` to a ticking run and wait for it to exit; its whole stdout, and its stderr."""
    try:
        act()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return "".join(lines) + out, err


def _summary_int(stdout: str, key: str) -> int:
    return int(stdout.split("summary:")[1].split(key)[1].split()[0])


def test_ctrl_c_finishes_the_tick_prints_the_summary_and_leaves_nothing_running():
    """As a terminal does: SIGINT to the bridge's whole process group (the API's processes included)."""
    proc, lines, helpers = _start_ticking_run("--api", "--api-port", str(_free_port()), "--api-workers", "2")
    stdout, err = _finish(proc, lines, lambda: os.killpg(proc.pid, signal.SIGINT))
    assert len(helpers) >= 5, "expected a SUMO worker, an embedded redis-server and the API's three processes"
    assert proc.returncode == 0, err
    assert "summary:" in stdout and "Traceback" not in err + stdout
    assert _summary_int(stdout, "ticks") > 1
    assert "decisions: decision service http://127.0.0.1:" in stdout
    fallback = _summary_int(stdout, "fallback_ticks")
    assert fallback == 0, "every tick's decisions should have come from the API's processes"
    alive = _wait_gone(helpers, 10)
    assert not alive, f"still running after the run exited: {_names(alive)}"


def test_a_killed_bridge_leaves_no_sumo_worker_or_redis_server_behind():
    """SIGKILL gives the bridge no chance to clean up: its helpers must notice and stop by themselves."""
    proc, _, helpers = _start_ticking_run("--api", "--api-port", str(_free_port()))
    try:
        assert len(helpers) >= 3, "expected a SUMO worker, an embedded redis-server and the API's process"
        proc.kill()
        proc.communicate(timeout=30)
        alive = _wait_gone(helpers, 15)
    finally:
        for pid in helpers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    assert not alive, f"still running after the bridge was killed: {_names(alive)}"


def test_a_killed_sumo_worker_ends_the_run_with_a_message_and_its_summary(tmp_path: Path):
    """kill -9 of the libsumo worker: 'SUMO step failed', exit 2, the summary of the ticks stored whole."""
    per_tick = tmp_path / "ticks.csv"
    proc, lines, helpers = _start_ticking_run("--speed", "20", "--kpi-csv", str(per_tick))
    workers = [p for p in helpers if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    stdout, err = _finish(proc, lines, lambda: [os.kill(w, signal.SIGKILL) for w in workers[:1]])
    assert len(workers) == 1, "expected one SUMO worker"
    assert proc.returncode == 2, err
    assert err.strip() == "error: SUMO step failed: the SUMO worker process was killed (SIGKILL)"
    ticks = _summary_int(stdout, "ticks")
    rows = list(csv.DictReader(per_tick.open()))
    assert ticks > 1 and [int(r["tick"]) for r in rows] == list(range(1, ticks + 1))
    assert not _wait_gone(helpers, 10), "the embedded Redis outlived the run"


def test_run_events_file_applies_its_schedule_and_bad_files_exit_2(tmp_path: Path):
    """``run --events FILE`` (TOML or JSON): the outage is in force at its sim times (the KPIs mark it); a bad
    schedule is refused before the run starts, naming the event and the field."""
    good = tmp_path / "whatif.toml"
    good.write_text('[[event]]\nkind = "server_outage"\nserver = "rsu_03"\nat_s = 4\nduration_s = 3\n')
    per_tick = tmp_path / "ticks.csv"
    out = _cli("run", "--scenario", "city", "--ticks", "8", "--events", str(good), "--kpi-csv", str(per_tick))
    assert out.returncode == 0, out.stderr
    assert "event 1 (server_outage rsu_03) in force from tick 4 (sim 4 s)" in out.stderr
    assert [float(r["servers_out"]) for r in csv.DictReader(per_tick.open())] == [0, 0, 0, 1, 1, 1, 0, 0]
    for text, name, message in [
        ('{"events": [{"kind": "server_outage", "server": "rsu_999", "at_s": 1}]}', "a.json", "event 1: server:"),
        ('[[event]]\nkind = "meteor"\nat_s = 1\n', "c.toml", "event 1: kind: unknown kind 'meteor'"),
        ("[]", "f.yaml", "a schedule is a .toml or .json file"),
    ]:
        path = tmp_path / name
        path.write_text(text)
        out = _cli("run", "--scenario", "city", "--ticks", "1", "--events", str(path))
        assert out.returncode == 2 and message in out.stderr, (name, out.stderr)
        assert "Traceback" not in out.stderr and "scenario city" not in out.stdout
