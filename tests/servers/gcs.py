"""gcp-storage-emulator (a Python GCS JSON API emulator), in memory, on 127.0.0.1.

With gcsfs use ``gcsfs.core.GCSFileSystem(endpoint_url=endpoint, token="anon", project=project)``
(or set ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` before importing gcsfs): the default class
probes each bucket over gRPC+TLS and waits 60 s per call. gcsfs ``mv`` first tries a move API
the emulator answers 501 to and retries for ~34 s before copying.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field

from tests.servers._process import (
    LOOPBACK,
    ServerProcess,
    free_port,
    make_temp_dir,
    start_server,
)

PROJECT = "test"


@dataclass(frozen=True, slots=True)
class GCSServer:
    """A running GCS emulator; ``stop()`` stops it (its data lives only in RAM)."""

    endpoint: str
    """``http://127.0.0.1:PORT`` (JSON API under ``/storage/v1``, uploads under ``/upload``)."""
    project: str
    _process: ServerProcess = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        """The emulator's process id."""
        return self._process.pid

    def stop(self) -> None:
        """Stop the emulator by its PID."""
        self._process.stop()


def start_gcs(*, timeout: float = 30.0) -> GCSServer:
    """Start gcp-storage-emulator on a free loopback port and wait until it answers.

    Raises:
        RuntimeError: the emulator is not installed or did not start in time.
    """
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        raise RuntimeError(
            "GCS emulator: the gcp-storage-emulator package is not installed in this Python; "
            "pip install gcp-storage-emulator (part of the [test] extra)"
        )
    port = free_port()
    temp_dir = make_temp_dir("gcs")
    scratch = temp_dir / "cwd"  # it may write a .cloudstorage dir into its working directory
    scratch.mkdir()
    argv = [
        sys.executable,
        "-m",
        "gcp_storage_emulator",
        "start",
        f"--host={LOOPBACK}",
        f"--port={port}",
        "--in-memory",
        "-q",
    ]
    endpoint = f"http://{LOOPBACK}:{port}"
    process = start_server(
        "gcs",
        argv,
        f"{endpoint}/storage/v1/b?project={PROJECT}",
        temp_dir=temp_dir,
        timeout=timeout,
        cwd=scratch,
    )
    return GCSServer(endpoint=endpoint, project=PROJECT, _process=process)
