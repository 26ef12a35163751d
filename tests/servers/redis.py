"""redis-server on 127.0.0.1: a standalone server, and a three-master Redis Cluster.

Each server runs with no persistence (``--save '' --appendonly no``) in a fresh temp dir
(a cluster node writes its ``nodes-PORT.conf`` there even so). Cluster nodes also listen
on their bus port, PORT + 10000, so ports are chosen with that one free too; the
cluster is joined with ``redis-cli --cluster create``. redis-server and redis-cli come
from Debian's redis-server package: run ``.ci/install-servers``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers._process import (
    LOOPBACK,
    ServerProcess,
    free_port,
    log_tail,
    make_temp_dir,
    start_server,
)

REDIS_SERVER = "redis-server"
REDIS_CLI = "redis-cli"
#: Where a cluster node's bus listens, relative to its client port.
BUS_PORT_OFFSET = 10000


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: run .ci/install-servers (Debian's redis-server)")
    return path


def _answers_ping(port: int) -> bool:
    """Whether a Redis server answers PING on ``port`` (any answer, NOAUTH included)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return bool(sock.recv(64))
    except OSError:
        return False


def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on ``port`` (a TLS port cannot PING)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _start_node(
    name: str, port: int, temp_dir: Path, extra: Sequence[str] = (), *, tls: bool = False
) -> ServerProcess:
    argv = [
        _program(REDIS_SERVER),
        *(["--port", "0", "--tls-port"] if tls else ["--port"]),
        str(port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(temp_dir),
        *extra,
    ]
    ready = (lambda: _accepts(port)) if tls else (lambda: _answers_ping(port))
    return start_server(name, argv, ready, temp_dir=temp_dir, timeout=20)


@dataclass(frozen=True, slots=True)
class RedisServer:
    """A running standalone redis-server; ``stop()`` stops it and deletes its temp dir."""

    host: str
    port: int
    password: str | None
    _process: ServerProcess = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self._process.pid

    def url(self, path: str = "/", **query: str) -> str:
        """A ``redis://`` connection string for this server (no credential in it)."""
        text = "&".join(f"{key}={value}" for key, value in query.items())
        return f"redis://{self.host}:{self.port}{path}" + (f"?{text}" if text else "")

    def stop(self) -> None:
        """Stop the server by its PID and delete its temp dir."""
        self._process.stop()


def start_redis(
    *,
    password: str | None = None,
    extra: Sequence[str] = (),
    tls_files: tuple[Path, Path] | None = None,
) -> RedisServer:
    """Start a standalone redis-server on a free loopback port.

    Args:
        password: When given, the default user needs it (``requirepass``).
        extra: More ``--option value`` arguments (``--maxmemory 1mb``, ACL ``--user``...).
        tls_files: A PEM certificate and its key: the server then speaks only TLS on the
            port (clients need no certificate of their own).
    """
    port = free_port()
    temp_dir = make_temp_dir("redis")
    args = [*(["--requirepass", password] if password else []), *extra]
    if tls_files is not None:
        cert, key = tls_files
        args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
        args += ["--tls-auth-clients", "no"]
    process = _start_node("redis-server", port, temp_dir, args, tls=tls_files is not None)
    return RedisServer(LOOPBACK, port, password, process)


@dataclass(frozen=True, slots=True)
class RedisCluster:
    """A running three-master Redis Cluster; ``stop()`` stops every node."""

    host: str
    ports: tuple[int, ...]
    _processes: tuple[ServerProcess, ...] = field(repr=False, compare=False)
    temp_dir: Path = field(repr=False, compare=False)

    @property
    def port(self) -> int:
        """The seed node's port."""
        return self.ports[0]

    def url(self, path: str = "/", **query: str) -> str:
        """A ``redis://`` connection string with ``cluster=true``."""
        text = "&".join(f"{key}={value}" for key, value in {"cluster": "true", **query}.items())
        return f"redis://{self.host}:{self.port}{path}?{text}"

    def stop(self) -> None:
        """Stop every node by its PID and delete the cluster's temp dir."""
        for process in self._processes:
            process.stop(remove_temp_dir=False)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_redis_cluster(masters: int = 3) -> RedisCluster:
    """Start ``masters`` cluster-enabled servers and join them into one cluster.

    Raises:
        RuntimeError: A node did not start or ``redis-cli --cluster create`` failed; the
            message holds the logs' tails.
    """
    temp_dir = make_temp_dir("redis-cluster")
    processes: list[ServerProcess] = []
    ports: list[int] = []
    try:
        for number in range(masters):
            port = free_port(also_free_offsets=(BUS_PORT_OFFSET,))
            ports.append(port)
            node_dir = temp_dir / f"node-{port}"
            node_dir.mkdir()
            extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node_dir / f"nodes-{port}.conf"),
                "--cluster-node-timeout",
                "5000",
            ]
            processes.append(_start_node(f"redis-node-{number}", port, node_dir, extra))
        create = [
            _program(REDIS_CLI),
            "--cluster",
            "create",
            *(f"{LOOPBACK}:{port}" for port in ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create exited {done.returncode}:\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        _wait_cluster_ok(ports, processes)
    except BaseException:
        for process in processes:
            process.stop(remove_temp_dir=False)
        raise
    return RedisCluster(LOOPBACK, tuple(ports), tuple(processes), temp_dir)


def _wait_cluster_ok(ports: Sequence[int], processes: Sequence[ServerProcess]) -> None:
    """Wait until every node reports ``cluster_state:ok``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = []
        for port in ports:
            done = subprocess.run(
                [_program(REDIS_CLI), "-h", LOOPBACK, "-p", str(port), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            states.append("cluster_state:ok" in done.stdout)
        if all(states):
            return
        time.sleep(0.1)
    logs = "\n".join(f"{p.name}:\n{log_tail(p.log_path)}" for p in processes)
    raise RuntimeError(f"the redis cluster did not reach cluster_state:ok in 30 s:\n{logs}")
