"""``twin-service api --workers N``: N processes on one port over one Redis, all serving, all stopped together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from twin_service.twins.server import RedisHandle

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(pid: int) -> set[int]:
    """The worker processes uvicorn's supervisor ``pid`` started (not its multiprocessing resource tracker)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            spawned = b"spawn_main" in Path(stat.parent, "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X") and spawned:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric(text: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_several_workers_serve_one_port_and_stop_together(redis_server: RedisHandle, key_prefix: str, filled):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin_service.cli", "api", "--redis-url", redis_server.url, "--key-prefix", key_prefix,
         "--port", str(port), "--workers", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
            workers = _workers(proc.pid)
            assert len(workers) == 2, workers  # uvicorn's supervisor starts one process per worker
            cpu_before = {w: _cpu_s(w) for w in workers}
            requests = 120
            for _ in range(requests):
                with httpx.Client(base_url=client.base_url, timeout=10) as fresh:  # a new connection each time
                    r = fresh.post("/v1/decisions/offload", json={})
                    assert r.status_code == 200 and r.json()["tick"] == 12
            busy = [w for w in workers if _cpu_s(w) - cpu_before[w] >= 0.02]
            assert len(busy) == 2, "both workers should have answered some of the fresh connections"
            # /metrics adds up both workers' counts, whichever worker answers the scrape.
            for _ in range(4):
                with httpx.Client(base_url=client.base_url, timeout=10) as fresh:
                    text = fresh.get("/metrics").text
                assert _metric(text, 'twin_api_decisions_total{kind="offload"') == requests * len(
                    filled[-1].vehicle_ids
                )
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the workers too: they hold the pipes
            proc.communicate()
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker outlived the API command"
