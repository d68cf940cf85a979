"""The what-if check of issue 23 on a live run: the city at its peak, pace 5, the trained policies and predictor.

Starts ``twin-service run --scenario city --api --speed 5`` from ``--begin`` (default 1300 s, so the city has
filled by its peak at 1800 s), waits until the peak, finds the RSU hosting the most twins, posts its outage to
``POST /v1/events`` and measures, over the API, how long until no twin is hosted on it (every vehicle's host, from
``POST /v1/decisions/batch``, tick by tick). Then ``GET /v1/events``, a bad event (422), the decision log of a
vehicle that was on the RSU, and a headless-Chromium screenshot of the dashboard during the outage
(``--screenshot``). Prints its figures last.

    .venv/bin/python scripts/whatif_check.py --screenshot docs/whatif-outage.png
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--begin", type=float, default=1300.0)
    parser.add_argument("--peak", type=float, default=1800.0, help="Post the outage once sim time reaches this.")
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=120.0, help="The outage's duration_s (sim seconds).")
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()

    port = free_port()
    api = f"http://127.0.0.1:{port}"
    models = ROOT / "models"
    trained = []
    if (models / "dm-mappo-city").is_dir():
        trained += ["--migration-policy", "dm-mappo-city"]
    if (models / "af-marl-city").is_dir():
        trained += ["--offload-policy", "af-marl-city"]
    cmd = [str(ROOT / ".venv/bin/twin-service"), "run", "--scenario", "city", "--api", "--api-port", str(port),
           "--speed", str(args.speed), "--begin", str(args.begin), "--predictor", "city-predictor",
           *trained]  # fmt: skip
    run = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    figures: dict[str, Any] = {"command": " ".join(cmd[1:])}
    try:
        while True:  # until the peak
            if run.poll() is not None:
                print(f"the run exited ({run.returncode})", file=sys.stderr)
                return 1
            try:
                status, health = call(f"{api}/v1/health")
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
                continue
            tick = health.get("latest_tick") if status == 200 else None
            if tick is not None and args.begin + tick >= args.peak:
                break
            time.sleep(0.5)
        _, batch = call(f"{api}/v1/decisions/batch", "POST", {})
        servers, hosts = batch["server_ids"], batch["host_index"]
        counts = {sid: 0 for sid in servers}
        for h in hosts:
            if h >= 0:
                counts[servers[h]] += 1
        rsu = max((sid for sid in servers if sid.startswith("rsu")), key=lambda sid: counts[sid])
        out = servers.index(rsu)
        on_it = [v for v, h in zip(batch["vehicle_ids"], hosts, strict=True) if h == out]
        figures.update(tick_posted_after=batch["tick"], vehicles=len(hosts), rsu=rsu, twins_on_rsu=len(on_it))

        posted_at = time.monotonic()
        outage = {"kind": "server_outage", "server": rsu, "duration_s": args.duration, "note": "what-if check"}
        status, event = call(f"{api}/v1/events", "POST", outage)
        assert status == 201, (status, event)
        figures["post_status"] = status
        emptied_s = None
        seen_ticks: list[tuple[int, int]] = []
        while time.monotonic() - posted_at < 10:
            _, batch = call(f"{api}/v1/decisions/batch", "POST", {})
            left = sum(1 for h in batch["host_index"] if h == out)
            if not seen_ticks or seen_ticks[-1][0] != batch["tick"]:
                seen_ticks.append((batch["tick"], left))
            _, state = call(f"{api}/v1/events/{event['id']}")
            if state["status"] == "active" and batch["tick"] >= state["start_tick"] and left == 0:
                emptied_s = time.monotonic() - posted_at
                figures.update(event_start_tick=state["start_tick"], emptied_at_tick=batch["tick"])
                break
            time.sleep(0.05)
        figures["no_twin_on_it_after_s"] = None if emptied_s is None else round(emptied_s, 3)
        figures["twins_left_per_tick"] = seen_ticks

        _, listed = call(f"{api}/v1/events")
        figures["listed"] = [(e["id"], e["kind"], e.get("server"), e["status"]) for e in listed["events"]]
        bad, body = call(f"{api}/v1/events", "POST", {"kind": "server_outage", "server": rsu, "duration_s": -5})
        figures["bad_event"] = (bad, [d["loc"] for d in body["detail"]])
        vehicle = on_it[0] if on_it else batch["vehicle_ids"][0]
        time.sleep(2.5 / args.speed)
        status, logged = call(f"{api}/v1/decisions/log?vehicle={vehicle}&last=10")
        rows = [(d["tick"], d["host_server_id"], d["target_server_id"], d["mask_size"]) for d in logged["decisions"]]
        figures["decision_log"] = (status, vehicle, rows[-4:])
        if args.screenshot is not None:
            figures["screenshot"] = screenshot(api, args.screenshot, vehicle)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
    for key, value in figures.items():
        print(f"{key}: {value}")
    return 0 if figures.get("no_twin_on_it_after_s") is not None and figures["no_twin_on_it_after_s"] <= 3 else 1


def screenshot(api: str, path: Path, vehicle: str) -> str:
    """The dashboard during the outage, the vehicle's panel open (its recent decisions from the log)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{api}/dashboard/")
        page.wait_for_selector("#whatif-banner:not([hidden])", timeout=30_000)
        page.wait_for_function("() => +document.getElementById('map').dataset.vehicles > 50", timeout=30_000)
        position = page.evaluate("(id) => window.twinDashboard.screenPosition(id)", vehicle)
        if position:
            page.mouse.click(*position)
            page.wait_for_selector("#detail-body table.declog", timeout=15_000)
            page.mouse.move(5, 300)  # no tooltip over the map
            heads = "[...document.querySelectorAll('#detail-body h3')]"
            page.evaluate(f"() => {heads}.find((h) => h.textContent.startsWith('recent')).scrollIntoView()")
        time.sleep(1.0)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path))
        browser.close()
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
