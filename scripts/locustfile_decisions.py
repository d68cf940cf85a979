"""Locust users for ``scripts/bench_load.py``: single-vehicle migration decisions against a live run.

Each user asks ``POST /v1/decisions/migration`` for one vehicle of the latest tick, as fast as the answers
come (no think time: a closed loop, the hardest steady load for ``--users`` clients). The vehicle is drawn
from the latest tick's vehicles, which a background greenlet rereads every 0.5 s outside the statistics.
A vehicle can leave the simulation between that read and the request; its 404 is the right answer, so it is
reported under its own name (``vehicle left``) instead of as a failure.

Only a service on this machine is accepted as the host.
"""

from __future__ import annotations

import json
import random
import urllib.parse
import urllib.request

import gevent
from locust import FastHttpUser, constant, events, task

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
REFRESH_S = 0.5
VEHICLE_IDS: list[str] = []


def _refresh_ids(host: str) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"{host}/v1/twins/vehicles?limit=1000", timeout=5) as r:
                ids = [item["id"] for item in json.load(r)["items"]]
            if ids:
                VEHICLE_IDS[:] = ids
        except (OSError, ValueError, KeyError):
            pass  # the run may be between ticks or busy; keep the last list
        gevent.sleep(REFRESH_S)


@events.test_start.add_listener
def _on_start(environment, **_kwargs) -> None:  # noqa: ANN001
    host = environment.host or ""
    if urllib.parse.urlsplit(host).hostname not in LOCAL_HOSTS:
        raise SystemExit(f"refusing to load {host!r}: this load test only runs against a service on localhost")
    gevent.spawn(_refresh_ids, host)


class DecisionClient(FastHttpUser):
    """One client asking for single-vehicle migration decisions back to back."""

    wait_time = constant(0)

    @task
    def migration(self) -> None:
        if not VEHICLE_IDS:
            gevent.sleep(0.05)
            return
        body = {"vehicle_ids": [random.choice(VEHICLE_IDS)]}
        with self.client.post(
            "/v1/decisions/migration", json=body, name="migration (1 vehicle)", catch_response=True
        ) as response:
            if response.status_code == 404:
                response.success()
                events.request.fire(
                    request_type="POST",
                    name="vehicle left (404)",
                    response_time=0,
                    response_length=0,
                    exception=None,
                    context={},
                )
