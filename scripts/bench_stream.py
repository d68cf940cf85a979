#!/usr/bin/env python
"""Viewers against the simulation: does ``/v1/stream`` slow the bridge? One run, three phases.

What runs, all on this machine:

* the bridge as ``./scripts/demo`` runs it: ``twin-service run --scenario city --api --speed 10 --predictor
  city-predictor``, from ``--begin`` (default 1500 s, near the peak: about 1,500 vehicles), the bridge asking the
  API for every tick's decisions over HTTP;
* after a warm-up, ``--baseline-s`` seconds with no viewer (the baseline), then ``--viewers-s`` seconds with
  ``--readers`` clients reading ``/v1/stream`` and ``--silent`` clients that send the request and never read
  (raw sockets with a 4 KiB receive buffer, as ``shared/repro/raw_slow.py``), in a process of their own, then
  ``--after-s`` seconds with no viewer again.

Reported per phase, from the KPI log's wall-clock time of every tick: the bridge's ticks/s (against its pace)
and its fallback ticks (ticks whose decisions did not come from the API); the ratio of the viewers phase to
the baseline (the mean of the phases before and after), in the same run; what the clients got (200 or 503,
events, bytes, connections the service closed); the service's own stream counters (``/metrics``: ticks read,
clients dropped and refused); and the CPU each process used meanwhile.

The last line is ``stream_ratio=<viewers ticks/s / baseline ticks/s>``.

    .venv/bin/python scripts/bench_stream.py [--readers 200] [--silent 200] [--max-clients N] [--speed 10]
    /other/checkout/.venv/bin/python scripts/bench_stream.py --repo /other/checkout    # its code, same bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MAX_CLIENTS = 2000


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> dict[int, str]:
    """Every process below ``pid``, named by what it is."""
    parent_of, cmd_of = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
            cmd = Path(stat.parent, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parent_of[int(stat.parent.name)] = int(rest[1])
        cmd_of[int(stat.parent.name)] = cmd
    found: dict[int, str] = {}
    frontier = {pid}
    while frontier:
        frontier = {c for c, p in parent_of.items() if p in frontier} - set(found)
        for c in frontier:
            cmd = cmd_of[c]
            found[c] = (
                "redis-server"
                if "redis-server" in cmd
                else "API"
                if "uvicorn" in cmd
                else "SUMO worker"
                if "spawn_main" in cmd
                else "other"
            )
    return found


class Bridge:
    """``twin-service run --api`` in a subprocess; its output read on a thread."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        cmd = [sys.executable, "-m", "twin_service.cli", "run", "--scenario", "city", "--api", "--api-port", str(port),
               "--speed", str(args.speed), "--begin", str(args.begin), "--predictor", args.predictor]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in ("TWIN_API_KEY", "TWIN_REDIS_URL")}
        if args.max_clients is not None:
            env["TWIN_STREAM_MAX_CLIENTS"] = str(args.max_clients)
        self.proc = subprocess.Popen(
            cmd, cwd=args.repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.lines: list[str] = []
        self.url: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if m := re.search(r"decision API at (http://\S+)", line):
                self.url = m.group(1)

    def wait_for_api(self, timeout_s: float = 180.0) -> str:
        deadline = time.monotonic() + timeout_s
        while self.url is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the bridge did not start its API:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.1)
        return self.url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------------------------------------------
# The viewers (a process of their own)
# ------------------------------------------------------------------------------------------------


async def _reader(port: int, seconds: float, stats: dict) -> None:
    """Reads the stream as the dashboard does; on 503 (the service streams to as many as it may) it tries
    again after the Retry-After 2 s, as the dashboard does."""
    end = time.monotonic() + seconds
    while end - time.monotonic() > 0:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_errors"] += 1
            return
        writer.write(b"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        first, refused = True, False
        try:
            while (left := end - time.monotonic()) > 0:
                data = await asyncio.wait_for(reader.read(1 << 16), left)
                if not data:
                    if not refused:
                        stats["closed_by_service"] += 1
                    break
                if first:
                    code = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "?"
                    stats["status"][code] = stats["status"].get(code, 0) + 1
                    refused = code == "503"
                    first = False
                stats["bytes"] += len(data)
                stats["events"] += data.count(b"\nevent: ") + data.startswith(b"event: ")
        except TimeoutError:
            pass
        except OSError:
            stats["closed_by_service"] += 1
        finally:
            writer.close()
        if not refused:
            return
        await asyncio.sleep(2.0)


def _silent(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        socks.append(s)
    return socks


def viewers(port: int, readers: int, silent: int, seconds: float, out: mp.Queue) -> None:
    """``readers`` reading clients and ``silent`` never-reading ones for ``seconds``; puts what they saw."""
    stats: dict = {"status": {}, "bytes": 0, "events": 0, "closed_by_service": 0, "connect_errors": 0}
    socks = _silent(port, silent)

    async def main() -> None:
        await asyncio.gather(*(_reader(port, seconds, stats) for _ in range(readers)))

    asyncio.run(main())
    reset = 0
    for s in socks:  # a silent client the service dropped finds its connection reset (or closed)
        s.setblocking(False)
        try:
            while True:
                if not s.recv(1 << 20):
                    reset += 1
                    break
        except BlockingIOError:
            pass
        except OSError:
            reset += 1
        s.close()
    stats["silent_closed_by_service"] = reset
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats["cpu_s"] = usage.ru_utime + usage.ru_stime
    out.put(stats)


# ------------------------------------------------------------------------------------------------


def _rate(samples: list[dict], t0: float, t1: float) -> tuple[float, int, int]:
    """Ticks/s over [t0, t1) from the ticks' wall-clock times; the ticks and fallback ticks in it."""
    inside = [s for s in samples if t0 <= s["wall_time"] < t1]
    if len(inside) < 2:
        return 0.0, len(inside), 0
    span = inside[-1]["wall_time"] - inside[0]["wall_time"]
    fallback = sum(1 for s in inside if s["kpis"].get("fallback"))
    return (len(inside) - 1) / span if span > 0 else 0.0, len(inside), fallback


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=200, help="Clients reading the stream.")
    ap.add_argument("--silent", type=int, default=200, help="Clients that connect and never read.")
    ap.add_argument("--max-clients", type=int, help="TWIN_STREAM_MAX_CLIENTS for the run (default: the service's).")
    ap.add_argument("--speed", type=float, default=10.0, help="The run's pace: sim seconds per wall second.")
    ap.add_argument("--begin", type=float, default=1500.0, help="Sim time the run starts at (near the peak).")
    ap.add_argument("--predictor", default="city-predictor", help="As ./scripts/demo serves it.")
    ap.add_argument(
        "--repo",
        type=Path,
        default=ROOT,
        help="Run the bridge of this checkout (with the Python running this script), e.g. to compare with main.",
    )
    ap.add_argument("--warmup-s", type=float, default=20.0)
    ap.add_argument("--baseline-s", type=float, default=30.0)
    ap.add_argument("--viewers-s", type=float, default=40.0)
    ap.add_argument("--after-s", type=float, default=20.0)
    args = ap.parse_args()
    if not 0 <= args.readers <= MAX_CLIENTS or not 0 <= args.silent <= MAX_CLIENTS:
        raise SystemExit(f"--readers and --silent must be 0..{MAX_CLIENTS}")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bridge = Bridge(args, port)
    try:
        url = bridge.wait_for_api()
        client = httpx.Client(base_url=url, timeout=30)
        time.sleep(args.warmup_s)
        t_base = time.time()
        time.sleep(args.baseline_s)
        procs = {bridge.proc.pid: "bridge", **_children(bridge.proc.pid)}
        out: mp.Queue = mp.Queue()
        crowd = mp.get_context("fork").Process(
            target=viewers, args=(port, args.readers, args.silent, args.viewers_s, out), daemon=True
        )
        t_view = time.time()
        crowd.start()
        cpu0 = {pid: _cpu_s(pid) for pid in procs}
        seen = out.get(timeout=args.viewers_s + 120)
        crowd.join(30)
        t_after = time.time()
        cpu1 = {pid: _cpu_s(pid) for pid in procs}
        time.sleep(args.after_s)
        t_end = time.time()
        n_ticks = int((t_end - t_base) * args.speed * 1.5) + 100
        samples = client.get("/v1/kpis", params={"last": min(3600, n_ticks)}).json()["samples"]
        metrics = client.get("/metrics").text
    finally:
        bridge.stop()
    if bridge.proc.returncode not in (0, None):
        print("\n".join(bridge.lines[-20:]))
    notices = [line for line in bridge.lines if line.startswith(("decision service", "Redis"))]
    if notices:
        print("the bridge said:\n  " + "\n  ".join(notices[:10]))
    gaps = sorted(
        (b["wall_time"] - a["wall_time"], a["tick"])
        for a, b in zip(samples, samples[1:], strict=False)
        if t_view <= a["wall_time"] < t_after
    )[-3:]
    if gaps:
        print(
            "longest waits between ticks while viewers watched: "
            + ", ".join(f"{g:.2f} s after tick {t}" for g, t in reversed(gaps))
        )

    base = _rate(samples, t_base, t_view)
    view = _rate(samples, t_view, t_after)
    after = _rate(samples, t_after, t_end)
    reference = (base[0] + after[0]) / 2
    ratio = view[0] / reference if reference > 0 else 0.0
    cpu: dict[str, float] = {}
    for pid, name in procs.items():
        cpu[name] = cpu.get(name, 0.0) + (cpu1[pid] - cpu0[pid]) / (t_after - t_view)
    cpu["viewers (the clients)"] = seen["cpu_s"] / (t_after - t_view)
    print(f"run: city from {args.begin:.0f} s, pace {args.speed:g}, API with {args.predictor}; bridge asks the API")
    print(f"viewers: {args.readers} reading + {args.silent} silent for {args.viewers_s:.0f} s")
    for name, (rate, ticks, fallback) in (("baseline", base), ("viewers", view), ("after", after)):
        print(f"  {name:<9} {rate:5.2f} ticks/s ({rate / args.speed:5.1%} of pace), {ticks} ticks, {fallback} fallback")
    print(
        f"readers: HTTP {json.dumps(seen['status'])} (a 503 is tried again after 2 s), {seen['events']} events, "
        f"{seen['bytes'] / 1e6:.1f} MB, "
        f"{seen['closed_by_service']} closed by the service, {seen['connect_errors']} failed to connect"
    )
    print(f"silent: {seen['silent_closed_by_service']} of {args.silent} closed by the service")
    print(
        "service: "
        + ", ".join(
            f"{label} {_metric(metrics, name):.0f}"
            for label, name in (
                ("ticks read", "twin_api_stream_ticks_read_total"),
                ("snapshots built", "twin_api_stream_snapshots_total"),
                ("clients refused", "twin_api_stream_refused_total"),
                ("dropped", "twin_api_stream_dropped_total"),
                ("resynced", "twin_api_stream_resyncs_total"),
            )
        )
    )
    print("CPU during the viewers (cores): " + ", ".join(f"{n} {c:.2f}" for n, c in cpu.items() if c >= 0.005))
    print(f"pace_share={view[0] / args.speed:.3f} viewers_fallback_ticks={view[2]}")
    print(f"stream_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
