"""The web stack as a user starts it (``python -m twin_service.webstack up --api``, what ``./scripts/demo --web``
runs), and a real headless Chromium driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``), installed by the fixture when missing and running as root, as
CI does; Playwright drives it and never downloads a browser of its own. The stack installs its own display
tools (xvfb, x11vnc, novnc, websockify) the same way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.debian import ensure_debian_tool
from tests.test_cli import _descendants, _names, _wait_gone
from twin_service import webstack

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "browser-test-key"
PREDICTOR = "city-predictor"
"""The workload predictor the stack serves, as ./scripts/demo does: the dashboard names it."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STACK_START_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@dataclass
class WebStack:
    proc: subprocess.Popen[str]
    api: str
    novnc: str
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output[-60:])


@pytest.fixture(scope="module")
def web_stack() -> Iterator[WebStack]:
    """The committed city, ticking four times faster than real time, with sumo-gui under Xvfb behind noVNC
    and the API (with an API key and the city's workload predictor) serving the dashboard. Stopped with SIGINT,
    as Ctrl-C does, at the end."""
    try:  # installed here (as root) rather than by the launcher, so that the start deadline is the stack's own
        webstack.ensure_tools()
    except webstack.StackError as exc:
        pytest.skip(str(exc))
    api_port, novnc_port, vnc_port = free_port(), free_port(), free_port()
    cmd = [sys.executable, "-m", "twin_service.webstack", "up", "--api", "--scenario", "city", "--speed", "4",
           "--api-port", str(api_port), "--novnc-port", str(novnc_port), "--vnc-port", str(vnc_port),
           "--predictor", PREDICTOR]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TWIN_API_KEY": API_KEY},
        start_new_session=True,
    )
    stack = WebStack(proc, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{novnc_port}")
    reader = threading.Thread(target=lambda: stack.output.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    started = False
    helpers: set[int] = set()
    try:
        deadline = time.monotonic() + STACK_START_S
        while True:
            if proc.poll() is not None:
                reader.join(timeout=5)
                pytest.fail(f"the web stack exited ({proc.returncode}):\n{stack.log()}")
            try:
                if (get_json(f"{stack.api}/v1/health").get("latest_tick") or 0) >= 3:
                    break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the web stack did not tick within {STACK_START_S:.0f} s:\n{stack.log()}")
            time.sleep(0.5)
        started = True
        yield stack
    finally:
        if proc.poll() is None:
            helpers = _descendants(proc.pid)
            proc.send_signal(signal.SIGINT)  # what Ctrl-C in the launcher's terminal does
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                pytest.fail(f"the web stack did not stop on SIGINT:\n{stack.log()}")
            reader.join(timeout=5)
        if started:
            alive = _wait_gone(helpers, 15)
            assert not alive, f"still running after the stack stopped: {_names(alive)}"
            assert proc.returncode == 0, stack.log()
            assert "summary:" in stack.log() and "Traceback" not in stack.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium under Playwright, with a fresh profile (Playwright makes one per launch)."""
    chromium = ensure_debian_tool("chromium", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()
