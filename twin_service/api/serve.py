"""Serve the decision API: uvicorn's settings, on a thread of another command, or in processes of its own.

``twin-service run --api`` serves the API from its own processes (:class:`ApiProcesses`): in a thread of the
bridge it shares the bridge's GIL, and under load each slows the other (measured in ``scripts/bench_load.py``).
:class:`ApiThread` keeps it in the calling process, for tests and ``run --api-workers 0``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from twin_service.api.metrics import MULTIPROCESS_DIR_VAR
from twin_service.api.worker import FACTORY
from twin_service.twins.server import terminate_with_this_process

KEEP_ALIVE_S = 5
"""An idle keep-alive connection is closed after this many seconds (uvicorn ``timeout_keep_alive``)."""
GRACEFUL_SHUTDOWN_S = 5
"""On stop, requests in progress get this long to finish (uvicorn ``timeout_graceful_shutdown``)."""
SERVER_OPTIONS: dict[str, Any] = {
    "timeout_keep_alive": KEEP_ALIVE_S,
    "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    "access_log": False,
}
"""uvicorn settings of every way this service runs. A body that arrives too slowly is cut off by the app
itself (``Settings.api_body_timeout_s``): uvicorn has no timeout for a request's headers or body."""


class ApiThread:
    """uvicorn on a daemon thread; ``start`` returns once it listens, ``stop`` shuts it down."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", **SERVER_OPTIONS)
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # the command that runs us owns the signals
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self.server.run, name="twin-api", daemon=True)

    def start(self, timeout_s: float = 15.0) -> ApiThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the decision API could not start on {self.url} (is the port in use?)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the decision API did not start on {self.url} within {timeout_s:.0f} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


def uvicorn_command(host: str, port: int, workers: int) -> list[str]:
    """``python -m uvicorn`` serving :func:`twin_service.api.worker.app_from_env` from ``workers`` processes."""
    return [
        sys.executable, "-m", "uvicorn", FACTORY, "--factory",
        "--host", host, "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log",
        "--timeout-keep-alive", str(KEEP_ALIVE_S), "--timeout-graceful-shutdown", str(GRACEFUL_SHUTDOWN_S),
    ]  # fmt: skip


class ApiProcesses:
    """The API served by ``uvicorn --workers N`` in a process of its own (N > 1: a supervisor and N workers).

    The processes get their options from ``env`` (:func:`twin_service.api.worker.worker_env`). They run in
    a session of their own, so a terminal's Ctrl-C reaches only the command that started them, which stops
    them after its last request; if that command dies, the kernel sends them SIGTERM.
    """

    def __init__(self, host: str, port: int, workers: int, env: dict[str, str]) -> None:
        self.url = f"http://{host}:{port}"
        self.workers = workers
        self._cmd = uvicorn_command(host, port, workers)
        self._env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self._metrics_dir: str | None = None

    def start(self, timeout_s: float = 60.0) -> ApiProcesses:
        if self.workers > 1:  # /metrics adds up every worker's counts (see twin_service.api.metrics)
            self._metrics_dir = tempfile.mkdtemp(prefix="twin-metrics-")
            self._env[MULTIPROCESS_DIR_VAR] = self._metrics_dir
        self.proc = subprocess.Popen(
            self._cmd,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=terminate_with_this_process(),
        )
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                try:
                    client.get(self.url + "/v1/health")
                    return self  # any answer: a worker serves
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"the decision API exited (code {self.proc.returncode}) before it listened on {self.url}: "
                        "see its message above (the port in use, or a setting it refused)"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the decision API did not start on {self.url} within {timeout_s:.0f} s")
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (requests in progress finish), then SIGKILL if it has not stopped in time."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=GRACEFUL_SHUTDOWN_S + 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
