"""Serve the decision API from a thread of another command (``twin-service run --api``)."""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI


class ApiThread:
    """uvicorn on a daemon thread; ``start`` returns once it listens, ``stop`` shuts it down."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
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
