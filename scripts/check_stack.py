#!/usr/bin/env python3
"""The Docker stack verified for real: build, up, check, restart each service, down.

    scripts/check_stack.sh [--no-build] [--keep] [--speed 1] [--recover-s 30] [--screenshots DIR]

Needs a Docker engine with Compose (v2's ``docker compose``, or ``docker-compose``) and Python 3 (the standard
library only; ``--screenshots`` needs Playwright and Chromium, as the project's test environment has them).

1. ``compose build`` (skipped with ``--no-build``: the image ``twin-service:local`` was built already);
2. ``compose up -d`` on free host ports, under a project name of its own, and wait until the three services
   are healthy;
3. the api: ``/v1/health`` is ``ok`` with the trained policies, a batch decision for the latest tick, the live
   stream's snapshot names the served workload predictor; noVNC: its page, and its WebSocket speaks RFB (the
   VNC protocol) from x11vnc; the dashboard: its page and script;
4. ``FLUSHALL`` on redis, then ``compose restart`` redis, api and bridge, each right after a fresh tick: each
   must recover within
   ``--recover-s`` (the bridge writes ticks again that the api decided, and the api's health is ``ok``), with
   no lost tick: the KPI log holds every tick number in order (for redis, the emptied server's log starts at
   the tick after the last one read before it was emptied; for the bridge, a new run starts at tick 1); and
   then Docker reports all three healthy again;
5. ``compose down`` (kept up with ``--keep``).

``--cluster`` checks ``docker compose --profile cluster`` instead: up (the three nodes, ``cluster-init``, the two
city bridges and ``cluster-api``), the cluster formed, both cities listed by ``GET /v1/cities`` and ticking, each
one's health, batch decision and live stream by ``?city=``, the dashboard's city picker; then down.

Every step prints one line with its time; the exit code is 0 when every check passed, 1 otherwise. ``TWIN_IMAGE``
names the image (default ``twin-service:local``), as in docker-compose.yml.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("TWIN_IMAGE") or "twin-service:local"
"""The stack's image (``TWIN_IMAGE``, as docker-compose.yml names it)."""
SERVICES = ("redis", "api", "bridge")
CLUSTER_UP = ("cluster-api", "bridge-city", "bridge-rural")
"""``--cluster``: what is started (with what they depend on: the three nodes and cluster-init)."""
CLUSTER_SERVICES = ("cluster-node-1", "cluster-node-2", "cluster-node-3", "cluster-init", *CLUSTER_UP)
CLUSTER_CITIES = ("city", "rural")


def log(message: str) -> None:
    print(f"check_stack: {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose_command() -> list[str]:
    """``docker compose`` (Compose v2) when the engine's CLI has it, else ``docker-compose``."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SystemExit("check_stack: no Docker Compose: install Compose v2 (docker compose) or docker-compose")


class Stack:
    def __init__(self, project: str, env: dict[str, str], profile: str | None = None) -> None:
        self.base = [*compose_command(), "-p", project, *(["--profile", profile] if profile else [])]
        self.env = {**os.environ, **env}
        self.services = CLUSTER_SERVICES if profile == "cluster" else SERVICES

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([*self.base, *args], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(self.base[:-2])} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def health(self) -> dict[str, str]:
        """Service -> Docker's health status (or the container's state where it has no health check)."""
        states = {}
        for cid in self.run("ps", "-q").split():
            fmt = '{{index .Config.Labels "com.docker.compose.service"}} {{if .State.Health}}{{.State.Health.Status}}'
            fmt += "{{else}}{{.State.Status}}{{end}}"
            out = subprocess.run(["docker", "inspect", "-f", fmt, cid], capture_output=True, text=True).stdout.split()
            if len(out) == 2:
                states[out[0]] = out[1]
        return states

    def wait_healthy(self, timeout_s: float) -> float:
        started = time.monotonic()
        while True:
            states = self.health()
            # The cluster profile: cluster-init exits when done, the headless bridges have no health check.
            done = {"healthy", "exited", "running"} if self.services is CLUSTER_SERVICES else {"healthy"}
            if len(states) == len(self.services) and all(v in done for v in states.values()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"not all services healthy after {timeout_s:.0f} s: {states}")
            time.sleep(1.0)


def get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """Status and body; status 0 when nothing answered (a service restarting)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - our own localhost stack
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def get_json(url: str, timeout_s: float = 5.0) -> tuple[int, dict]:
    status, body = get(url, timeout_s)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}


def post_json(url: str, body: dict, timeout_s: float = 10.0) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:  # noqa: S310
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except OSError:
        return 0, {}


@dataclass
class Seen:
    at: float
    tick: int
    fallback: bool


@dataclass
class Poller:
    """Reads the latest tick every ``every_s`` from the api (while it answers)."""

    api: str
    every_s: float = 0.2
    seen: list[Seen] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Poller:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = get_json(f"{self.api}/v1/ticks/latest", 2.0)
                if status == 200:
                    tick = Seen(time.monotonic(), body["tick"], bool(body["kpis"].get("fallback")))
                    if not self.seen or self.seen[-1].tick != tick.tick:
                        self.seen.append(tick)
            except (OSError, ValueError, KeyError):
                pass
            self._stop.wait(self.every_s)

    def stop(self) -> None:
        self._stop.set()

    def latest(self) -> Seen | None:
        return self.seen[-1] if self.seen else None


def check_novnc_speaks_rfb(port: int) -> str:
    """A WebSocket handshake to websockify and the first frame from x11vnc: the RFB protocol version."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            (
                f"GET /websockify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("noVNC closed the WebSocket handshake")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"noVNC refused the WebSocket: {head[:80]!r}")
        while len(rest) < 2 + 12:
            rest += s.recv(4096)
        length = rest[1] & 0x7F
        payload = rest[2 : 2 + length]
        if not payload.startswith(b"RFB 00"):
            raise RuntimeError(f"no VNC server behind noVNC: {payload!r}")
        return payload.decode().strip()


def first_event(api: str, timeout_s: float = 20.0, city: str | None = None) -> tuple[str, dict]:
    query = f"max_events=1&city={city}" if city else "max_events=1"
    with urllib.request.urlopen(f"{api}/v1/stream?{query}", timeout=timeout_s) as r:  # noqa: S310
        text = r.read().decode()
    kind, data = "", ""
    for line in text.splitlines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind in ("snapshot", "tick"):
            data = line[6:]
    return kind, json.loads(data) if data else {}


@dataclass
class Result:
    name: str
    ok: bool
    detail: str


def kpi_ticks(api: str, last: int = 600) -> list[tuple[int, bool]]:
    status, body = get_json(f"{api}/v1/kpis?last={last}", 10.0)
    if status != 200:
        return []
    return [(s["tick"], bool(s["kpis"].get("fallback"))) for s in body["samples"]]


def restart_and_recover(stack: Stack, api: str, poller: Poller, service: str, recover_s: float) -> list[Result]:
    label = "FLUSHALL redis" if service == "redis-flushall" else f"restart {service}"
    # Right after a fresh tick, so that the tick being computed is the one a restart can interrupt.
    before = poller.latest()
    deadline = time.monotonic() + 30
    while poller.latest() is before and time.monotonic() < deadline:
        time.sleep(0.02)
    last = poller.latest()
    if last is None:
        return [Result(label, False, "no tick seen before the restart")]
    started = time.monotonic()
    if service == "redis-flushall":
        stack.run("exec", "-T", "redis", "redis-cli", "FLUSHALL")
    else:
        stack.run("restart", service)
    took_restart = time.monotonic() - started
    recovered_at = None
    while time.monotonic() - started < recover_s + 60:
        now = poller.latest()
        # A tick written after the restart (for the bridge: of a new run, which starts at tick 1), decided by the api.
        after = now is not None and now.at > started
        fresh = after and (now.tick < last.tick if service == "bridge" else now.tick > last.tick)
        if fresh and now is not None and not now.fallback:
            status, health = get_json(f"{api}/v1/health", 3.0)
            if status == 200 and health.get("status") == "ok":
                recovered_at = time.monotonic()
                break
        time.sleep(0.1)
    results = []
    if recovered_at is None:
        results.append(Result(label, False, f"not recovered within {recover_s + 60:.0f} s"))
        return results
    took = recovered_at - started
    results.append(
        Result(
            f"{label}: recovered",
            took <= recover_s,
            f"{took:.1f} s after the command (which itself took {took_restart:.1f} s)",
        )
    )
    time.sleep(5.0)  # a few more ticks, then read the log
    log_ticks = kpi_ticks(api)
    numbers = [t for t, _ in log_ticks]
    fallback_after = sum(1 for t, f in log_ticks if f and (service == "bridge" or t > last.tick))
    if service.startswith("redis"):
        # The emptied Redis starts its log with the tick the bridge stored first after the event, which the
        # bridge names ("holding tick K" ... "tick K stored", or "put them back with tick K"): every tick from
        # there is in the log, and every earlier one was stored before (the bridge stores a tick before it
        # computes the next); a tick stored just before a FLUSHALL is wiped with the rest, so the ticks read
        # from the api before the event are only checked to be earlier.
        said = [
            line
            for line in stack.run("logs", "--no-color", "--tail", "300", "bridge").splitlines()
            if "Redis at" in line
        ]
        resumed = int(m.group(1)) if said and (m := re.search(r"tick (\d+)", said[-1])) else None
        first = numbers[0] if numbers else None
        contiguous = bool(numbers) and numbers == list(range(numbers[0], numbers[-1] + 1))
        before = [seen.tick for seen in poller.seen if seen.at < started + took_restart and first and seen.tick < first]
        ok = resumed is not None and first == resumed and contiguous and max(before, default=0) < resumed
        held = f"{first}..{numbers[-1]}" if numbers else "none"
        detail = (
            f"the bridge: {said[-1].split('|', 1)[-1].strip() if said else 'no line about Redis'}; "
            f"the emptied Redis holds ticks {held}; last tick read before: {max(before, default=None)}"
        )
    elif service == "api":
        window = [t for t in numbers if t >= last.tick - 5]
        ok = bool(window) and window == list(range(window[0], window[-1] + 1)) and window[0] <= last.tick
        detail = f"ticks {window[0] if window else None}..{window[-1] if window else None} all in the log"
        back = [line for line in stack.run("logs", "--no-color", "--tail", "300", "bridge").splitlines()
                if "answers again after" in line]  # fmt: skip
        results.append(
            Result(
                f"{label}: the bridge says it is back",
                bool(back),
                back[-1].split("|", 1)[-1].strip() if back else "no 'answers again' line in the bridge's log",
            )
        )
    else:
        run = numbers[numbers.index(1) :] if 1 in numbers else []
        ok = bool(run) and run == list(range(1, run[-1] + 1))
        detail = f"a new run: ticks 1..{run[-1] if run else None} all in the log (the old one ended at {last.tick}+)"
    results.append(Result(f"{label}: no lost tick", ok, detail + f"; {fallback_after} fallback ticks"))
    try:
        stack.wait_healthy(240)
        results.append(Result(f"{label}: Docker healthy", True, f"{time.monotonic() - started:.0f} s"))
    except RuntimeError as exc:
        results.append(Result(f"{label}: Docker healthy", False, str(exc)))
    return results


def screenshots(api: str, novnc: str, out: Path) -> list[Path]:
    """The dashboard and sumo-gui in noVNC, from the Docker stack, in headless Chromium (Playwright)."""
    import io

    from PIL import Image
    from playwright.sync_api import sync_playwright

    def small_png(png: bytes, path: Path, width: int) -> None:
        img = Image.open(io.BytesIO(png)).convert("RGB")
        img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
        img.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)

    out.mkdir(parents=True, exist_ok=True)
    written = []
    args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or None, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            page.goto(f"{api}/dashboard/")
            page.wait_for_function("() => +document.getElementById('map').dataset.vehicles > 0", timeout=60_000)
            time.sleep(3.0)
            small_png(page.screenshot(), out / "docker-dashboard.png", 1200)
            written.append(out / "docker-dashboard.png")
            page = browser.new_page(viewport={"width": 1280, "height": 1024})
            page.goto(f"{novnc}/vnc.html?autoconnect=1&resize=scale")
            page.wait_for_function("() => document.documentElement.classList.contains('noVNC_connected')")
            time.sleep(3.0)
            small_png(page.screenshot(), out / "docker-sumo-gui-novnc.png", 1024)
            written.append(out / "docker-sumo-gui-novnc.png")
        finally:
            browser.close()
    return written


def check_cluster(stack: Stack, api: str, up_timeout_s: float) -> list[Result]:
    """``--profile cluster``: the cluster formed, both city bridges ticking into it, cluster-api serving both."""
    results: list[Result] = []
    log(f"up: compose --profile cluster up -d {' '.join(CLUSTER_UP)} (cluster-api on {api})")
    stack.run("up", "-d", "--no-build", *CLUSTER_UP)
    took = stack.wait_healthy(up_timeout_s)
    init = stack.run("logs", "--no-color", "cluster-init", check=False)
    formed = "cluster formed:" in init or "cluster already formed" in init
    results.append(Result("up: nodes and cluster-api healthy, cluster-init done", formed, f"{took:.0f} s"))
    deadline = time.monotonic() + 120
    cities: dict[str, dict] = {}
    listing: dict = {}
    while time.monotonic() < deadline:  # both bridges write fresh ticks
        status, listing = get_json(f"{api}/v1/cities")
        cities = {c["name"]: c for c in listing.get("cities", [])} if status == 200 else {}
        if all((cities.get(n) or {}).get("age_s") is not None and cities[n]["age_s"] < 10 for n in CLUSTER_CITIES):
            break
        time.sleep(1.0)
    fresh = {n: (cities.get(n) or {}).get("latest_tick") for n in CLUSTER_CITIES}
    ok = listing.get("cluster") is True and all(t for t in fresh.values())
    results.append(Result("cities: both on the cluster, ticking", ok, f"latest ticks {fresh}"))
    time.sleep(3.0)
    for name in CLUSTER_CITIES:
        status, latest = get_json(f"{api}/v1/ticks/latest?city={name}")
        moved = status == 200 and latest.get("tick", 0) > (fresh[name] or 0)
        results.append(Result(f"{name}: goes on", moved, f"{status}, tick {fresh[name]} -> {latest.get('tick')}"))
        status, health = get_json(f"{api}/v1/health?city={name}")
        results.append(Result(f"{name}: health", status == 200 and health.get("status") == "ok", f"{status}"))
        status, batch = post_json(f"{api}/v1/decisions/batch?city={name}", {})
        n = len(batch.get("vehicle_ids", []))
        detail = f"{n} vehicles, {batch.get('source')}"
        results.append(Result(f"{name}: batch decision", status == 200 and n > 0, detail))
        kind, snap = first_event(f"{api}", city=name)
        ok = kind == "snapshot" and len(snap.get("vehicles", [])) > 0 and snap.get("run", {}).get("scenario") == name
        results.append(Result(f"{name}: live stream", ok, f"{kind} of tick {snap.get('tick')}"))
    status, page = get(f"{api}/dashboard/")
    results.append(Result("dashboard: city picker", status == 200 and b'id="city"' in page, f"{status}"))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-build", action="store_true", help=f"use the image {IMAGE} built already")
    ap.add_argument("--keep", action="store_true", help="leave the stack up at the end")
    ap.add_argument("--project", default="twin-check", help="Compose project name (default twin-check)")
    ap.add_argument("--speed", default="1", help="TWIN_SPEED of the run (default 1: real time)")
    ap.add_argument("--recover-s", type=float, default=30.0, help="each restart must recover within this (30 s)")
    ap.add_argument("--up-timeout-s", type=float, default=300.0, help="wait this long for healthy after up")
    ap.add_argument("--screenshots", type=Path, help="also save the dashboard and noVNC as PNGs in this folder")
    ap.add_argument("--screenshot-tick", type=int, default=120, help="take them once the run is this far (120)")
    ap.add_argument(
        "--cluster",
        action="store_true",
        help="check the cluster profile instead: a 3-node Redis Cluster, two city bridges, cluster-api serving both",
    )
    args = ap.parse_args()
    if args.cluster:
        return main_cluster(args)

    api_port, novnc_port = free_port(), free_port()
    api, novnc = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{novnc_port}"
    env = {"TWIN_API_PORT": str(api_port), "TWIN_NOVNC_PORT": str(novnc_port), "TWIN_SPEED": args.speed}
    stack = Stack(args.project, env)
    results: list[Result] = []
    timings: dict[str, float] = {}
    poller = Poller(api)
    try:
        if not args.no_build:
            t = time.monotonic()
            log("build: compose build (the first build takes several minutes)")
            stack.run("build")
            timings["build"] = time.monotonic() - t
        size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", IMAGE], capture_output=True, text=True)
        if size.returncode != 0:
            raise RuntimeError(f"no image {IMAGE}: build it first (or leave out --no-build)")
        size_gb = int(size.stdout) / 1e9
        results.append(Result("image size", size_gb <= 1.5, f"{size_gb:.2f} GB"))
        log(f"up: compose up -d (api on {api}, noVNC on {novnc})")
        t = time.monotonic()
        stack.run("up", "-d", "--no-build")
        timings["healthy after up"] = stack.wait_healthy(args.up_timeout_s)
        results.append(Result("up: all healthy", True, f"{timings['healthy after up']:.0f} s"))
        poller.start()

        status, health = get_json(f"{api}/v1/health")
        defaults = [p["name"] for p in health.get("defaults", [])]
        results.append(Result("api: health", status == 200 and health.get("status") == "ok", f"{status} {defaults}"))
        latest = health.get("latest_tick")
        status, batch = post_json(f"{api}/v1/decisions/batch", {"tick": latest})
        results.append(
            Result(
                "api: batch decision",
                status == 200 and len(batch.get("vehicle_ids", [])) > 0,
                f"{status}, {len(batch.get('vehicle_ids', []))} vehicles, {batch.get('source')}",
            )
        )
        kind, snap = first_event(api)
        results.append(
            Result(
                "api: live stream",
                kind == "snapshot" and len(snap.get("vehicles", [])) > 0,
                f"{kind} of tick {snap.get('tick')}, forecast: {snap.get('load_source', '')[:60]}",
            )
        )
        status, page = get(f"{novnc}/vnc.html")
        results.append(Result("noVNC: page", status == 200 and b"noVNC" in page, f"{status}"))
        try:
            results.append(Result("noVNC: VNC behind it", True, check_novnc_speaks_rfb(novnc_port)))
        except (OSError, RuntimeError) as exc:
            results.append(Result("noVNC: VNC behind it", False, str(exc)))
        status, page = get(f"{api}/dashboard/")
        script_status, _ = get(f"{api}/dashboard/dashboard.js")
        ok = status == 200 and b'<canvas id="map"' in page and script_status == 200
        results.append(Result("dashboard", ok, f"page {status}, script {script_status}"))
        if args.screenshots:
            log(f"screenshots: once the run has {args.screenshot_tick} ticks")
            while (poller.latest() is None or poller.latest().tick < args.screenshot_tick) and poller.seen:
                time.sleep(1.0)
            shots = screenshots(api, novnc, args.screenshots)
            results.append(Result("screenshots", True, ", ".join(str(s) for s in shots)))

        for service in ("redis-flushall", *SERVICES):
            log(f"{'FLUSHALL on redis' if service == 'redis-flushall' else 'restart ' + service}")
            results += restart_and_recover(stack, api, poller, service, args.recover_s)
    except (RuntimeError, OSError) as exc:
        results.append(Result("stack", False, str(exc)))
    finally:
        poller.stop()
        if not args.keep:
            t = time.monotonic()
            logs = stack.run("logs", "--no-color", "--tail", "40", "bridge", check=False)
            stack.run("down", "--remove-orphans", check=False)
            timings["down"] = time.monotonic() - t
            if any(not r.ok for r in results):
                print(logs[-4000:])
    return report(results, timings)


def report(results: list[Result], timings: dict[str, float]) -> int:
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.name:<{width}}  {r.detail}")
    print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    passed = all(r.ok for r in results)
    print(f"check_stack: {'passed' if passed else 'FAILED'} ({sum(r.ok for r in results)} of {len(results)} checks)")
    return 0 if passed else 1


def main_cluster(args: argparse.Namespace) -> int:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = {"TWIN_CLUSTER_API_PORT": str(port), "TWIN_CLUSTER_SPEED": args.speed}
    stack = Stack(args.project, env, profile="cluster")
    results: list[Result] = []
    timings: dict[str, float] = {}
    try:
        if not args.no_build:
            t = time.monotonic()
            log("build: compose build (the first build takes several minutes)")
            stack.run("build", *CLUSTER_UP)
            timings["build"] = time.monotonic() - t
        t = time.monotonic()
        results += check_cluster(stack, api, args.up_timeout_s)
        timings["up and checks"] = time.monotonic() - t
    except (RuntimeError, OSError) as exc:
        results.append(Result("cluster stack", False, str(exc)))
    finally:
        if not args.keep:
            t = time.monotonic()
            logs = stack.run("logs", "--no-color", "--tail", "20", *CLUSTER_UP, check=False)
            stack.run("down", "--remove-orphans", check=False)
            timings["down"] = time.monotonic() - t
            if any(not r.ok for r in results):
                print(logs[-4000:])
    return report(results, timings)


if __name__ == "__main__":
    sys.exit(main())
