"""The load test is a benchmark, not a test: here only that it starts, stays bounded and stays on localhost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "scripts" / "locustfile_decisions.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_bench_refuses_an_unbounded_load():
    out = _run(str(ROOT / "scripts" / "bench_load.py"), "--users", "500")
    assert out.returncode != 0 and "--users must be 1..200" in out.stderr


def test_the_locustfile_loads_and_refuses_a_host_elsewhere():
    listed = _run("-m", "locust", "-f", str(LOCUSTFILE), "--list")
    assert listed.returncode == 0 and "DecisionClient" in listed.stdout
    out = _run("-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", "http://example.com:80",
               "--users", "1", "--run-time", "5s", "--only-summary")  # fmt: skip
    assert out.returncode != 0
    assert "only runs against a service on localhost" in out.stdout + out.stderr
