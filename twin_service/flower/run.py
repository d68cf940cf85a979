"""Start AF-MARL on Flower's Deployment Engine: a SuperLink and SuperNodes on this machine, or a SuperLink elsewhere.

``twin-service train af-marl --federation flower`` calls :func:`run_on_flower`. Without ``superlink`` it starts a
SuperLink and ``supernodes`` SuperNodes on localhost (no Ray: the Deployment Engine runs ClientApps as
subprocesses of the SuperNodes), submits the AF-MARL Flower App (``fab/``) with ``flwr run``, streams its
logs until the run ends and stops the processes it started. With ``superlink=HOST:PORT`` (the SuperLink's Control
API) it submits to a federation running elsewhere: SuperNodes on vehicles' or RSUs' machines, see README.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from twin_service.learn.af_marl import AfMarlArgs

FAB_DIR = Path(__file__).with_name("fab")


class FlowerUnavailable(RuntimeError):
    """flwr (the ``federated`` extra) is not installed where this runs."""


def flower_bin(name: str) -> str:
    """A Flower executable beside this Python's (its venv), else on PATH."""
    try:
        import flwr  # noqa: F401
    except ImportError as exc:
        raise FlowerUnavailable(
            "Flower is not installed: pip install 'twin-service[federated]' (a separate virtualenv: flwr 1.42 pins "
            "starlette 1.3, which the dev extras' schemathesis 3 cannot share; ./scripts/test builds .venv-flower)"
        ) from exc
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise FlowerUnavailable(f"{name} not found beside {sys.executable} or on PATH")
    return found


def flower_env(home: Path) -> dict[str, str]:
    """The environment of Flower's processes: FLWR_HOME, and this venv's bin first on PATH (the SuperLink and
    SuperNodes start flower-superexec, flwr-serverapp and flwr-clientapp by name)."""
    bin_dir = str(Path(flower_bin("flwr")).parent)
    return {**os.environ, "FLWR_HOME": str(home), "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")


class LocalFederation:
    """A SuperLink and SuperNodes on localhost, stopped on exit (context manager)."""

    def __init__(self, supernodes: int = 2, workdir: Path | None = None) -> None:
        self.n = supernodes
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="twin-flower-"))
        self.procs: list[subprocess.Popen] = []
        self.port = 0

    def __enter__(self) -> LocalFederation:
        env = flower_env(self.workdir / "home")
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        # Flower 1.42 serves the Control, Fleet and runtime APIs over HTTP on one address
        self.port = free_port()
        link = [
            flower_bin("flower-superlink"),
            "--insecure",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database",
            str(self.workdir / "state.db"),
            "--disable-runtime-dependency-installation",  # the apps run in this venv, twin-service included
        ]
        try:
            self._start(link, logs / "superlink.log", env)
            wait_for_port(self.port)
            self._start_nodes(env, logs)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_nodes(self, env: dict[str, str], logs: Path) -> None:
        for k in range(self.n):
            node = [
                flower_bin("flower-supernode"),
                "--insecure",
                "--superlink",
                f"127.0.0.1:{self.port}",
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--node-config",
                f"partition-id={k} num-partitions={self.n}",
            ]
            self._start(node, logs / f"supernode-{k}.log", env)

    def _start(self, cmd: list[str], log: Path, env: dict[str, str]) -> None:
        out = log.open("w")
        self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True))

    @property
    def control_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def submit(args: AfMarlArgs, control_address: str, workdir: Path, timeout_s: float | None = None) -> None:
    """``flwr run`` the AF-MARL app on the SuperLink at ``control_address``; returns when the run has ended."""
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "twin"\n\n[superlink.twin]\naddress = "{control_address}"\ninsecure = true\n'
    )
    payload = asdict(args)
    payload["recordings"] = [str(Path(p).resolve()) for p in args.recordings]
    payload["validation"] = [str(Path(p).resolve()) for p in args.validation]
    payload["out"] = str(Path(args.out).resolve())
    payload["federation"] = "flower"
    args_file = workdir / "args.json"
    args_file.write_text(json.dumps(payload, default=str))
    app = workdir / "app"
    shutil.rmtree(app, ignore_errors=True)
    shutil.copytree(FAB_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    env = flower_env(home)
    cmd = [flower_bin("flwr"), "run", str(app), "twin", "--run-config", f"args-file='{args_file}'", "--stream"]
    done = subprocess.run(cmd, env=env, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"flwr run exited with {done.returncode}")


def run_on_flower(
    args: AfMarlArgs, superlink: str | None = None, supernodes: int = 2, timeout_s: float | None = None
) -> Path:
    """Train AF-MARL with its clients on Flower SuperNodes (module docstring); returns the model folder."""
    workdir = Path(tempfile.mkdtemp(prefix="twin-flower-"))
    if superlink is None:
        with LocalFederation(supernodes, workdir) as fed:
            submit(args, fed.control_address, workdir, timeout_s)
    else:
        submit(args, superlink, workdir, timeout_s)
    if not (Path(args.out) / "manifest.json").is_file():
        raise RuntimeError(f"the Flower run ended without writing {args.out}/manifest.json (logs in {workdir})")
    return Path(args.out)
