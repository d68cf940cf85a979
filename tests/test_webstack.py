"""The web stack's launcher without a browser: its command line, what it says when a tool is missing or a
port is taken, and its health check. The whole stack runs in tests/web."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from twin_service import webstack


def _args(*argv: str):  # noqa: ANN202
    args, rest = webstack._parser().parse_known_args(["up", *argv])
    return args, rest


def test_the_bridge_command_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TWIN_SPEED", raising=False)
    monkeypatch.setenv("TWIN_SCENARIO", "rural")
    args, rest = _args("--api", "--api-port", "8123", "--ticks", "5", "--decisions-timeout", "3")
    cmd = webstack.run_command(args, rest)
    assert cmd[:4] == [sys.executable, "-m", "twin_service.cli", "run"]
    assert cmd[4:] == ["--gui", "--scenario", "rural", "--speed", "1.0", "--api", "--api-host", "127.0.0.1",
                       "--api-port", "8123", "--ticks", "5", "--decisions-timeout", "3"]  # fmt: skip
    args, rest = _args("--speed", "max", "--seed", "4")  # --seed is run's, not a prefix of --speed
    assert webstack.run_command(args, rest)[4:] == ["--gui", "--scenario", "rural", "--seed", "4"]
    args, rest = _args("--speed", "fast-ish")
    with pytest.raises(webstack.StackError, match="sim seconds per wall second"):
        webstack.run_command(args, rest)


def test_missing_tools_are_named_with_the_packages_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(webstack.shutil, "which", lambda name: None)
    monkeypatch.setattr(webstack, "NOVNC_DIRS", (str(tmp_path),))
    monkeypatch.delenv("TWIN_NOVNC_DIR", raising=False)
    monkeypatch.setattr(webstack.sys, "executable", str(tmp_path / "bin" / "python"))
    tools, missing = webstack.find_tools()
    assert tools is None and missing == ["Xvfb", "x11vnc", "websockify", "noVNC"]
    with pytest.raises(webstack.StackError) as err:
        webstack.ensure_tools(install=False)
    assert "sudo apt-get install novnc websockify x11vnc xvfb" in str(err.value)
    (tmp_path / "vnc.html").write_text("<html></html>")
    monkeypatch.setenv("TWIN_NOVNC_DIR", str(tmp_path))
    assert webstack.find_tools()[1] == ["Xvfb", "x11vnc", "websockify"]


def test_a_taken_port_is_refused_before_anything_starts(capsys: pytest.CaptureFixture[str]):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = webstack.main(["up", "--novnc-port", str(port), "--no-install"])
    assert code == 2
    assert f"noVNC port {port} in use" in capsys.readouterr().err


def test_check_fails_while_novnc_does_not_answer(capsys: pytest.CaptureFixture[str]):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the check runs
    assert webstack.main(["check", "--novnc-port", str(port)]) == 1
    assert "unhealthy: noVNC does not answer" in capsys.readouterr().out


@pytest.fixture
def novnc_page(tmp_path: Path):  # noqa: ANN201
    """An HTTP server answering /vnc.html, as websockify does for the check."""
    import functools
    import http.server
    import threading

    (tmp_path / "vnc.html").write_text("<html></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_check_tells_the_truth_about_the_bridge(
    novnc_page: int, redis_server, redis_client, key_prefix: str, monkeypatch, capsys
):
    """Healthy while its ticks are fresh, its run's records are in Redis and the service decides; unhealthy,
    saying why, when most recent ticks are fallback or the records are gone."""
    import time as clock

    import numpy as np

    from tests.twins.conftest import synthetic_frame
    from twin_service.twins import TwinStore

    monkeypatch.setenv("TWIN_KEY_PREFIX", key_prefix)
    store = TwinStore(redis_client, key_prefix)
    store.begin_run("city", "0123abcd", [{"id": "rsu_0"}])
    rng = np.random.default_rng(0)

    def write(tick: int, fallback: float) -> None:
        frame = synthetic_frame(tick, ["a", "b"], rng)
        frame.kpis["fallback"] = fallback
        frame.wall_time = clock.time()
        store.write_tick(frame)

    def check() -> tuple[int, str]:
        code = webstack.main(["check", "--novnc-port", str(novnc_page), "--redis-url", redis_server.url])
        return code, capsys.readouterr().out

    for tick in range(1, 21):
        write(tick, 0.0)
    code, out = check()
    assert code == 0 and out.startswith("ok: tick 20") and "0 fallback ticks of the last 20" in out
    for tick in range(21, 41):
        write(tick, 1.0)
    code, out = check()
    assert code == 1 and "decided locally (fallback) in 20 of its last 30 ticks" in out
    for tick in range(41, 71):
        write(tick, 0.0)  # back to the service
    assert check()[0] == 0
    redis_client.delete(store.keys.run, store.keys.layout)  # what FLUSHALL does to them, before the next tick
    code, out = check()
    assert code == 1 and "Redis lacks the run's metadata and the edge-server layout of the run" in out
    write(71, 0.0)  # the bridge's next tick puts them back
    assert check()[0] == 0
