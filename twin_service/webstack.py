"""The live city in a browser: sumo-gui on a virtual display, served over VNC and noVNC, beside the bridge.

``python -m twin_service.webstack up [OPTIONS] [-- RUN OPTIONS]`` starts, in order,

1. ``Xvfb`` on a free display,
2. ``x11vnc`` on that display (listening on localhost only),
3. ``websockify`` serving noVNC's page and relaying its WebSocket to x11vnc,
4. ``twin-service run --gui`` on that display, so that sumo-gui *is* the live simulation, with the
   migration overlay; with ``--api`` the same process serves the decision API and the dashboard,

and stops them in reverse order when the bridge ends, on Ctrl-C or SIGTERM, or when a helper dies. Any
option it does not know goes to ``twin-service run`` (``--ticks``, ``--redis-url``, ``--decisions`` ...).
``./scripts/demo --web`` runs it with ``--api``; the Docker image's ``bridge`` service runs it against the
``api`` service. ``python -m twin_service.webstack check`` is that service's health check.

The display tools are Debian packages (xvfb, x11vnc, novnc, websockify; websockify may also come from
PyPI into the project's environment). When one is missing, ``up`` installs them with apt-get if it runs as
root (as in CI and the image build), and otherwise names exactly what to install.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

APT_PACKAGES = {"Xvfb": "xvfb", "x11vnc": "x11vnc", "websockify": "websockify", "noVNC": "novnc"}
"""Each display tool and the Debian package that provides it."""
NOVNC_DIRS = ("/usr/share/novnc",)
SCREEN = "1280x1024x24"
"""The virtual screen: sumo-gui opens a 1280 x 960 window (``bridge/backends.py``)."""
START_TIMEOUT_S = 30.0


class StackError(RuntimeError):
    """The stack cannot start: a tool is missing, a port is taken, or a helper did not come up."""


@dataclass(frozen=True)
class Tools:
    xvfb: str
    x11vnc: str
    websockify: str
    novnc_dir: Path


def _novnc_dir() -> Path | None:
    for candidate in (os.environ.get("TWIN_NOVNC_DIR", ""), *NOVNC_DIRS):
        if candidate and (Path(candidate) / "vnc.html").is_file():
            return Path(candidate)
    return None


def _websockify() -> str | None:
    beside = Path(sys.executable).parent / "websockify"  # pip-installed into this environment (the image)
    return str(beside) if beside.is_file() else shutil.which("websockify")


def find_tools() -> tuple[Tools | None, list[str]]:
    """The display tools, or None and the names of the missing ones."""
    found = {
        "Xvfb": shutil.which("Xvfb"),
        "x11vnc": shutil.which("x11vnc"),
        "websockify": _websockify(),
        "noVNC": _novnc_dir(),
    }
    missing = [name for name, path in found.items() if path is None]
    if missing:
        return None, missing
    return Tools(str(found["Xvfb"]), str(found["x11vnc"]), str(found["websockify"]), Path(found["noVNC"])), []


def ensure_tools(install: bool = True) -> Tools:
    """The display tools, installed with apt-get first when missing and allowed (root with apt-get)."""
    tools, missing = find_tools()
    if tools is not None:
        return tools
    packages = sorted({APT_PACKAGES[name] for name in missing})
    can_install = install and os.geteuid() == 0 and shutil.which("apt-get") is not None
    if not can_install:
        raise StackError(
            f"missing {', '.join(missing)}: install the Debian packages with "
            f"'sudo apt-get install {' '.join(packages)}'"
            + ("" if install else " (or run without --no-install as root)")
            + "; TWIN_NOVNC_DIR may point at another noVNC folder (the one holding vnc.html)"
        )
    print(f"==> installing {' '.join(packages)} with apt-get (missing: {', '.join(missing)})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    tools, missing = find_tools()
    if tools is None:
        raise StackError(f"apt-get installed {' '.join(packages)} but {', '.join(missing)} is still missing")
    return tools


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def _own_session_dying_with_us():  # noqa: ANN202 - a preexec_fn
    """A ``preexec_fn``: the child leaves the terminal's session (Ctrl-C reaches the launcher only, which
    stops everything in order) and gets SIGTERM if the launcher dies, even by SIGKILL."""
    from twin_service.twins.server import terminate_with_this_process

    tie = terminate_with_this_process()

    def preexec() -> None:
        os.setsid()
        if tie is not None:
            tie()

    return preexec


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our own localhost URL
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _public(host: str) -> str:
    return "localhost" if host in ("0.0.0.0", "::", "") else host


class Stack:
    """The helper processes of one stack, stopped in reverse order of starting."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed by the child's exit
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_own_session_dying_with_us(),  # noqa: PLW1509 - two system calls, nothing else
            **kwargs,  # type: ignore[arg-type]
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, chars: int = 1500) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def wait_for(self, name: str, proc: subprocess.Popen[bytes], ready, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if proc.poll() is not None:
                raise StackError(f"{name} exited ({proc.returncode}) before {what}:\n{self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} did not {what} within {START_TIMEOUT_S:.0f} s:\n{self.log_tail(name)}")
            time.sleep(0.05)

    def dead_helper(self) -> str | None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                return f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}"
        return None

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def start_display(stack: Stack, tools: Tools, display: str | None) -> str:
    """Xvfb on ``display`` or, by default, on the first free one (Xvfb picks it: no race)."""
    base = [tools.xvfb, "-screen", "0", SCREEN, "-nolisten", "tcp", "-noreset"]
    if display:
        proc = stack.start("xvfb", [tools.xvfb, display, *base[1:]])
        number = display.lstrip(":").split(".")[0]
        stack.wait_for("xvfb", proc, lambda: Path(f"/tmp/.X11-unix/X{number}").exists(), "open its display")
        return display
    read_fd, write_fd = os.pipe()
    try:
        proc = stack.start("xvfb", [*base, "-displayfd", str(write_fd)], pass_fds=(write_fd,))
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()  # Xvfb writes the display number once it accepts clients
    if not number.isdigit():
        proc.wait(timeout=5)
        raise StackError(f"Xvfb did not start (exit code {proc.returncode}):\n{stack.log_tail('xvfb')}")
    return f":{number}"


def start_vnc(stack: Stack, tools: Tools, display: str, vnc_port: int, password: str | None) -> None:
    cmd = [tools.x11vnc, "-display", display, "-rfbport", str(vnc_port), "-localhost", "-forever", "-shared"]
    cmd += ["-noxdamage", "-noxrecord", "-quiet"]
    if password:
        fd, path = tempfile.mkstemp(prefix="twin-vnc-", dir=stack.log_dir)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        cmd += ["-passwdfile", f"rm:{path}"]  # x11vnc reads it and removes it
    else:
        cmd += ["-nopw"]
    proc = stack.start("x11vnc", cmd)
    stack.wait_for("x11vnc", proc, lambda: _port_open(vnc_port), f"listen on port {vnc_port}")


def start_novnc(stack: Stack, tools: Tools, host: str, port: int, vnc_port: int) -> str:
    cmd = [tools.websockify, "--web", str(tools.novnc_dir), f"{host}:{port}", f"127.0.0.1:{vnc_port}"]
    proc = stack.start("websockify", cmd)
    probe = f"http://127.0.0.1:{port}/vnc.html" if host in ("0.0.0.0", "127.0.0.1", "localhost") else None
    probe = probe or f"http://{host}:{port}/vnc.html"
    stack.wait_for("websockify", proc, lambda: _http_ok(probe), f"serve noVNC on port {port}")
    return f"http://{_public(host)}:{port}/vnc.html?autoconnect=1&resize=scale"


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m twin_service.webstack",
        allow_abbrev=False,
        description="The live city in a browser: sumo-gui under Xvfb served by x11vnc and noVNC, beside the bridge.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # No abbreviations: an option meant for `twin-service run` must never be taken for a prefix of ours.
    up = sub.add_parser(
        "up",
        allow_abbrev=False,
        help="start Xvfb, x11vnc, noVNC and 'twin-service run --gui' (unknown options go to 'twin-service run')",
        description="Start the display stack and the bridge; stop all of it when the bridge ends or on Ctrl-C. "
        "Options not listed here go to 'twin-service run' (e.g. --ticks 120, --redis-url URL, --decisions URL).",
    )
    add = up.add_argument
    add("--scenario", default=env("TWIN_SCENARIO", "city"), help="city, rural or a folder (env TWIN_SCENARIO)")
    add("--speed", default=env("TWIN_SPEED", "1"), help="sim s per wall s; 'max': as fast as it goes (env TWIN_SPEED)")
    add("--api", action="store_true", help="serve the decision API and the dashboard from the bridge")
    add("--api-host", default=env("TWIN_API_HOST", "127.0.0.1"), help="with --api (env TWIN_API_HOST)")
    add("--api-port", type=int, default=int(env("TWIN_API_PORT", "8000")), help="with --api (default 8000)")
    add("--novnc-host", default=env("TWIN_NOVNC_HOST", "127.0.0.1"), help="noVNC's interface (env TWIN_NOVNC_HOST)")
    add("--novnc-port", type=int, default=int(env("TWIN_NOVNC_PORT", "6080")), help="noVNC's port (default 6080)")
    add("--vnc-port", type=int, default=int(env("TWIN_VNC_PORT", "5900")), help="x11vnc's, on localhost (5900)")
    add("--display", default=None, help="X display to create, e.g. :99 (default: the first free one)")
    add("--no-install", action="store_true", help="never apt-get install a missing tool")
    check = sub.add_parser(
        "check",
        allow_abbrev=False,
        help="health check: noVNC answers, and the bridge wrote a recent tick, its run's records are in Redis and "
        "most of its recent ticks were decided by the service (not fallback)",
    )
    add = check.add_argument
    add("--novnc-port", type=int, default=int(env("TWIN_NOVNC_PORT", "6080")), help="noVNC's port (default 6080)")
    add("--max-tick-age-s", type=float, default=30.0, help="a tick older than this is unhealthy (default 30)")
    add("--redis-url", default=env("TWIN_REDIS_URL"), help="the bridge's Redis (env TWIN_REDIS_URL); else noVNC only")
    return parser


def _speed_options(speed: str) -> list[str]:
    if speed.strip().lower() in ("max", "fast", "0", ""):
        return []
    try:
        value = float(speed)
    except ValueError:
        raise StackError(f"--speed / TWIN_SPEED: sim seconds per wall second or 'max', not {speed!r}") from None
    return ["--speed", repr(value)]


def run_command(args: argparse.Namespace, rest: list[str]) -> list[str]:
    """The ``twin-service run`` command line the launcher starts."""
    cmd = [sys.executable, "-m", "twin_service.cli", "run", "--gui", "--scenario", args.scenario]
    cmd += _speed_options(args.speed)
    if args.api:
        cmd += ["--api", "--api-host", args.api_host, "--api-port", str(args.api_port)]
    return cmd + rest


def up(args: argparse.Namespace, rest: list[str]) -> int:
    bridge_cmd = run_command(args, rest)
    busy = [f"{what} port {port}" for what, host, port in (
        ("noVNC", args.novnc_host, args.novnc_port),
        ("VNC", "127.0.0.1", args.vnc_port),
        *((("API", args.api_host, args.api_port),) if args.api else ()),
    ) if not _port_free(host, port)]  # fmt: skip
    if busy:
        raise StackError(f"{', '.join(busy)} in use: choose others (--novnc-port, --vnc-port, --api-port)")
    tools = ensure_tools(install=not args.no_install)
    log_dir = Path(tempfile.mkdtemp(prefix="twin-webstack-"))
    stack = Stack(log_dir)
    bridge: subprocess.Popen[bytes] | None = None
    stop_signals: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stop_signals.append(signum)
        if bridge is not None and bridge.poll() is None:
            bridge.send_signal(signal.SIGINT)  # the bridge finishes its tick; a second one aborts it

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        display = start_display(stack, tools, args.display)
        start_vnc(stack, tools, display, args.vnc_port, os.environ.get("TWIN_VNC_PASSWORD") or None)
        novnc_url = start_novnc(stack, tools, args.novnc_host, args.novnc_port, args.vnc_port)
        print(f"sumo-gui in the browser (noVNC): {novnc_url}", flush=True)
        if args.api:
            root = f"http://{_public(args.api_host)}:{args.api_port}"
            print(f"dashboard: {root}/dashboard/  (API docs: {root}/docs)", flush=True)
        print(f"display {display}; helper logs in {log_dir}", flush=True)
        if stop_signals:
            return 130
        bridge = subprocess.Popen(
            bridge_cmd,
            env={**os.environ, "DISPLAY": display},
            preexec_fn=_own_session_dying_with_us(),  # noqa: PLW1509
        )
        while bridge.poll() is None:
            dead = stack.dead_helper()
            if dead is not None:
                print(f"error: {dead}", file=sys.stderr, flush=True)
                bridge.send_signal(signal.SIGINT)
                try:
                    bridge.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    bridge.kill()
                return 1
            time.sleep(0.5)
        return bridge.returncode
    finally:
        if bridge is not None and bridge.poll() is None:
            bridge.kill()
            bridge.wait()
        stack.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
        for sig, old in previous.items():
            signal.signal(sig, old)


def check(args: argparse.Namespace) -> int:
    """Exit 0 when noVNC answers and (with a Redis URL) the bridge does its job: a recent tick, the run's
    records in Redis, and decisions from the service in most of its recent ticks (not mostly fallback)."""
    url = f"http://127.0.0.1:{args.novnc_port}/vnc.html"
    if not _http_ok(url):
        print(f"unhealthy: noVNC does not answer at {url}")
        return 1
    if not args.redis_url:
        print("ok: noVNC answers")
        return 0
    from twin_service.config import Settings
    from twin_service.twins import TwinStore, TwinStoreError, connect
    from twin_service.twins.health import read_run_health

    try:
        settings = Settings()
        run = read_run_health(TwinStore(connect(args.redis_url, cluster=settings.redis_cluster), settings.key_prefix))
    except (TwinStoreError, ValueError) as exc:
        print(f"unhealthy: Redis at {args.redis_url}: {exc}")
        return 1
    meta = run.latest
    if meta is None:
        print("unhealthy: the bridge has written no tick yet")
        return 1
    age = time.time() - meta.wall_time
    problems = []
    if age > args.max_tick_age_s:
        problems.append(f"the latest tick ({meta.tick}) is {age:.0f} s old")
    if run.missing:
        problems.append(f"Redis lacks {' and '.join(run.missing)} of the run")
    if run.fallback_reason():
        problems.append(run.fallback_reason())
    if problems:
        print("unhealthy: " + "; ".join(problems))
        return 1
    print(
        f"ok: tick {meta.tick}, {age:.1f} s old; {run.recent_fallback_ticks} fallback ticks of the last "
        f"{run.recent_ticks}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "check":
            if rest:
                parser.error(f"unrecognized arguments: {' '.join(rest)}")
            return check(args)
        return up(args, [r for r in rest if r != "--"])
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
