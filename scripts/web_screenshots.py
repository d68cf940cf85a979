"""Regenerate the README's screenshots: the dashboard and sumo-gui in noVNC, from a live city run.

    .venv/bin/python scripts/web_screenshots.py [--ticks-before 240] [--out docs]

Starts the web stack as ``./scripts/demo --web`` does (``python -m twin_service.webstack up --api``) on free
ports, lets the city fill up, clicks a vehicle on the dashboard, takes both pictures in Debian's headless
Chromium and writes them as small palette PNGs (``docs/dashboard.png``, ``docs/sumo-gui-novnc.png``).
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latest_tick(api: str) -> int:
    try:
        with urllib.request.urlopen(f"{api}/v1/health", timeout=3) as r:
            return json.loads(r.read()).get("latest_tick") or 0
    except OSError:
        return 0


def small_png(png: bytes, path: Path, width: int) -> None:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    img.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks-before", type=int, default=240, help="let the city fill up for this many ticks")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    api_port, novnc_port = free_port(), free_port()
    api, novnc = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{novnc_port}"
    stack = subprocess.Popen(
        [sys.executable, "-m", "twin_service.webstack", "up", "--api", "--speed", "max",
         "--api-port", str(api_port), "--novnc-port", str(novnc_port), "--vnc-port", str(free_port())],
        cwd=ROOT,
    )  # fmt: skip
    try:
        while latest_tick(api) < args.ticks_before:
            if stack.poll() is not None:
                return stack.returncode or 1
            time.sleep(1)
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1040})
            page.goto(f"{api}/dashboard/")
            page.wait_for_function("() => +document.getElementById('map').dataset.vehicles > 0")
            time.sleep(3)
            page.click("#pause")
            spot = page.evaluate(
                """() => {
                  const d = window.twinDashboard, servers = d.servers.map((s, k) => d.serverScreenPosition(k));
                  for (const id of d.vehicles.keys()) {
                    const p = d.screenPosition(id);
                    if (servers.every(q => Math.hypot(q[0] - p[0], q[1] - p[1]) > 14)) return p;
                  }
                }"""
            )
            page.mouse.click(*spot)
            page.click("#pause")
            page.wait_for_selector("#detail-body .prob", timeout=20_000)
            time.sleep(1)
            small_png(page.screenshot(), args.out / "dashboard.png", 1200)
            page = browser.new_page(viewport={"width": 1280, "height": 1024})
            page.goto(f"{novnc}/vnc.html?autoconnect=1&resize=scale")
            page.wait_for_function("() => document.documentElement.classList.contains('noVNC_connected')")
            time.sleep(2)
            small_png(page.screenshot(), args.out / "sumo-gui-novnc.png", 1024)
            browser.close()
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
