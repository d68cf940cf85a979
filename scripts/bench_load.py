#!/usr/bin/env python
"""Load test: single-vehicle decisions from concurrent clients against a live run, with locust (headless).

What runs, all on this machine:

* the bridge: ``twin-service run --scenario city --api --speed 10 --begin 1500`` (SUMO in its worker process,
  an embedded Redis, the decision API, which the bridge itself asks for every tick's batch of decisions);
* once the run has ``--min-vehicles`` vehicles, ``locust --headless`` with ``--users`` clients (default 20),
  each asking ``POST /v1/decisions/migration`` for one vehicle of the latest tick back to back
  (``scripts/locustfile_decisions.py``), for ``--seconds``.

Reported: requests/s, p50 / p99 / max latency as the clients see it, the error count (any failure; a 404
for a vehicle that left the simulation between listing and asking is counted apart), the bridge's ticks/s
during the load against its pace, its fallback ticks (ticks whose batch decision did not come from the API
in time), and the CPU each process used meanwhile, which is where the time goes on a small machine.

The last line is ``load_p99_ms=<x>``.

``--migration-policy``, ``--offload-policy`` and ``--predictor`` pass the run's policies (``./scripts/demo`` serves
``dm-mappo-city``, ``af-marl-city`` and ``city-predictor``).

    .venv/bin/python scripts/bench_load.py [--users 20] [--seconds 30] [--speed 10] [--api-workers N]
        [--migration-policy NAME] [--offload-policy NAME] [--predictor NAME]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "scripts" / "locustfile_decisions.py"
DECISION_NAME = "migration (1 vehicle)"
LEFT_NAME = "vehicle left (404)"
MAX_USERS = 200
MAX_SECONDS = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` with a label saying what it is."""
    parent_of, label_of = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = Path(stat.parent, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        name, rest = text.split("(", 1)[1].rsplit(")", 1)
        pid_k = int(stat.parent.name)
        parent_of[pid_k] = int(rest.split()[1])
        label_of[pid_k] = _label(name, cmdline)
    found: dict[int, str] = {}
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parent_of.items() if parent in frontier} - set(found)
        for child in frontier:
            label = label_of[child]
            if label == "spawned":  # by the bridge: its SUMO worker; by uvicorn: an API worker
                label = "API worker" if found.get(parent_of[child]) == "API (uvicorn main)" else "SUMO worker"
            found[child] = label
    return found


def _label(name: str, cmdline: str) -> str:
    if "redis" in name:
        return "redis-server"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "uvicorn" in cmdline:
        return "API (uvicorn main)"
    if "spawn_main" in cmdline:
        return "spawned"
    return name


class Bridge:
    """``twin-service run --api`` in a subprocess; its stdout read on a thread."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        cmd = [sys.executable, "-m", "twin_service.cli", "run", "--scenario", args.scenario, "--api",
               "--api-port", str(port), "--speed", str(args.speed), "--begin", str(args.begin)]  # fmt: skip
        if args.api_workers is not None:
            cmd += ["--api-workers", str(args.api_workers)]
        for option in ("migration_policy", "offload_policy", "predictor"):
            if getattr(args, option):
                cmd += ["--" + option.replace("_", "-"), getattr(args, option)]
        env = {k: v for k, v in os.environ.items() if k not in ("TWIN_API_KEY", "TWIN_REDIS_URL")}
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if m := re.search(r"decision API at (http://\S+)", line):
                self.url = m.group(1)

    def wait_for_api(self, timeout_s: float = 120.0) -> str:
        deadline = time.monotonic() + timeout_s
        while self.url is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the bridge did not start its API:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.1)
        return self.url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # Ctrl-C: the tick finishes, the summary prints
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)


def _latest(client: httpx.Client) -> dict:
    r = client.get("/v1/ticks/latest")
    r.raise_for_status()
    return r.json()


def _read_stats(prefix: Path) -> tuple[dict[str, str], int, list[tuple[str, str]]]:
    """The decision row of locust's stats, the 404s counted apart, and every failure (count, message)."""
    with open(f"{prefix}_stats.csv") as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    if DECISION_NAME not in rows:
        raise SystemExit(f"locust recorded no {DECISION_NAME!r} requests; rows: {list(rows)}")
    left = int(rows[LEFT_NAME]["Request Count"]) if LEFT_NAME in rows else 0
    with open(f"{prefix}_failures.csv") as fh:
        failures = [(row["Occurrences"], row["Error"]) for row in csv.DictReader(fh)]
    return rows[DECISION_NAME], left, failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20, help=f"Concurrent clients (at most {MAX_USERS}).")
    ap.add_argument("--seconds", type=float, default=30.0, help=f"Duration of the load (at most {MAX_SECONDS}).")
    ap.add_argument("--speed", type=float, default=10.0, help="The run's pace: sim seconds per wall second.")
    ap.add_argument("--scenario", default="city")
    ap.add_argument("--begin", type=float, default=1500.0, help="Sim time the run starts at (near the peak).")
    ap.add_argument("--min-vehicles", type=int, default=500, help="Start the load once the run has this many.")
    ap.add_argument(
        "--api-workers", type=int, help="run --api-workers N: the API in N processes, 0 in a thread of the bridge."
    )
    ap.add_argument("--migration-policy", help="run --migration-policy (e.g. dm-mappo-city; default: the run's).")
    ap.add_argument("--offload-policy", help="run --offload-policy (e.g. af-marl-city).")
    ap.add_argument("--predictor", help="run --predictor (e.g. city-predictor).")
    args = ap.parse_args()
    if not 1 <= args.users <= MAX_USERS or not 1 <= args.seconds <= MAX_SECONDS:
        raise SystemExit(f"--users must be 1..{MAX_USERS} and --seconds 1..{MAX_SECONDS}")

    bridge = Bridge(args, _free_port())
    try:
        url = bridge.wait_for_api()
        client = httpx.Client(base_url=url, timeout=10)
        deadline = time.monotonic() + 300
        while True:  # warm up until the city is busy
            try:
                latest = _latest(client)
                if latest["n_vehicles"] >= args.min_vehicles:
                    break
            except httpx.HTTPError:
                pass
            if bridge.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the run did not reach the vehicle count:\n" + "\n".join(bridge.lines[-20:]))
            time.sleep(0.5)

        helpers = _descendants(bridge.proc.pid)
        api_processes = any(name.startswith("API") for name in helpers.values())
        with tempfile.TemporaryDirectory() as tmp:
            prefix = Path(tmp) / "load"
            cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
                   "--users", str(args.users), "--spawn-rate", str(args.users), "--run-time", f"{args.seconds:g}s",
                   "--stop-timeout", "5", "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]  # fmt: skip
            before = _latest(client)
            t0 = time.monotonic()
            locust = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            pids = {
                bridge.proc.pid: "bridge (+ API threads)",
                **helpers,
                locust.pid: f"locust (the {args.users} clients)",
            }
            time.sleep(min(3.0, args.seconds / 4))  # spawned and running
            mid_before = _latest(client)
            tm0 = time.monotonic()
            cpu_mid0 = {pid: _cpu_s(pid) for pid in pids}
            time.sleep(max(args.seconds - 6.0, 1.0))
            cpu_mid1 = {pid: _cpu_s(pid) for pid in pids}
            mid_after = _latest(client)
            tm1 = time.monotonic()
            _, locust_err = locust.communicate(timeout=args.seconds + 60)
            elapsed = time.monotonic() - t0
            after = _latest(client)
            if locust.returncode not in (0, 1):  # 1: some requests failed, reported below
                raise SystemExit(f"locust failed ({locust.returncode}):\n{locust_err[-2000:]}")
            row, left, failures = _read_stats(prefix)
        kpis = client.get("/v1/kpis", params={"last": min(3600, after["tick"] - before["tick"] + 1)}).json()
        fallback = sum(
            1 for s in kpis["samples"] if before["tick"] < s["tick"] <= after["tick"] and s["kpis"].get("fallback")
        )
        cpu_cores: dict[str, float] = {}
        for p, name in pids.items():
            cpu_cores[name] = cpu_cores.get(name, 0.0) + (cpu_mid1[p] - cpu_mid0[p]) / (tm1 - tm0)
    finally:
        bridge.stop()

    n = int(row["Request Count"])
    errors = int(row["Failure Count"])
    p50, p99, p_max = float(row["50%"]), float(row["99%"]), float(row["Max Response Time"])
    ticks_per_s = (mid_after["tick"] - mid_before["tick"]) / (tm1 - tm0)
    print(
        f"run: {args.scenario} at --speed {args.speed:g}, {before['n_vehicles']}-{after['n_vehicles']} vehicles; "
        + ("API in processes of its own" if api_processes else "API in a thread of the bridge process")
    )
    print(f"load: {args.users} clients for {elapsed:.0f} s, single-vehicle migration decisions, latest tick")
    policies = [getattr(args, o) or "default" for o in ("migration_policy", "offload_policy", "predictor")]
    print(
        f"policies: migration {policies[0]}, offload {policies[1]}, predictor {policies[2]}; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(f"requests: {n} ({float(row['Requests/s']):.0f}/s), errors {errors}, vehicle left (404, not an error) {left}")
    for count, message in failures:
        print(f"  failure x{count}: {message[:160]}")
    print(f"latency: p50 {p50:.0f} ms, p90 {float(row['90%']):.0f} ms, p99 {p99:.0f} ms, max {p_max:.0f} ms")
    print(
        f"bridge: {ticks_per_s:.2f} ticks/s during the load (pace {args.speed:g}); "
        f"{fallback} of {after['tick'] - before['tick']} ticks decided locally (fallback)"
    )
    print("CPU during the load (cores): " + ", ".join(f"{name} {c:.2f}" for name, c in cpu_cores.items() if c >= 0.005))
    api_cores = sum(c for name, c in cpu_cores.items() if name.startswith(("API", "bridge")))
    print(
        f"  total {sum(cpu_cores.values()):.2f} of {os.cpu_count()} cores; the API (with the bridge's own "
        f"process) used {1e3 * api_cores / max(float(row['Requests/s']), 1e-9):.2f} ms of CPU per request"
    )
    print(f"load_p99_ms={p99:.0f}")


if __name__ == "__main__":
    main()
