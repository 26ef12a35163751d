"""Azurite's Blob service (Microsoft's Azure Storage emulator, from npm) on 127.0.0.1.

Azurite is installed into the project-local ``.cache/azurite`` (``.ci/install-servers`` does
it; so does :func:`start_azurite` when it is missing). It serves the single development
account ``devstoreaccount1`` with the well-known key that Microsoft documents for it. With
adlfs, directory ``info`` gives size None.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers._process import (
    LOOPBACK,
    ServerProcess,
    free_port,
    make_temp_dir,
    start_server,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_DIR = REPO_ROOT / ".cache" / "azurite"
AZURITE_BLOB = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"

ACCOUNT_NAME = "devstoreaccount1"
# Azurite's documented, public development key (not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass(frozen=True, slots=True)
class AzuriteServer:
    """A running Azurite Blob service; ``stop()`` stops it and deletes its data."""

    endpoint: str
    """Blob endpoint, ``http://127.0.0.1:PORT/devstoreaccount1``."""
    account_name: str
    account_key: str
    connection_string: str
    _process: ServerProcess = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        """The Azurite (node) process id."""
        return self._process.pid

    def stop(self) -> None:
        """Stop Azurite by its PID and delete its data dir."""
        self._process.stop()


def ensure_azurite_installed(*, timeout: float = 600.0) -> Path:
    """Install Azurite into ``.cache/azurite`` with npm unless it is there; return its binary.

    Raises:
        RuntimeError: node or npm is missing, or ``npm install`` failed.
    """
    if AZURITE_BLOB.exists():
        return AZURITE_BLOB
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError(
            "Azurite: node and npm are needed to install and run it (Node >= 18); "
            "install Node.js, then run .ci/install-servers"
        )
    AZURITE_DIR.mkdir(parents=True, exist_ok=True)
    # A lock, so parallel test processes do not run npm into the same folder at once.
    with (AZURITE_DIR.parent / "azurite.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if AZURITE_BLOB.exists():
            return AZURITE_BLOB
        argv = [npm, "install", "--prefix", str(AZURITE_DIR), "--no-audit", "--no-fund"]
        try:
            result = subprocess.run(
                [*argv, "azurite"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"Azurite: npm install took over {timeout:.0f} s") from exc
        if result.returncode != 0 or not AZURITE_BLOB.exists():
            output = (result.stdout + result.stderr).strip().splitlines()[-30:]
            raise RuntimeError(
                f"Azurite: 'npm install --prefix {AZURITE_DIR} azurite' failed "
                f"(exit {result.returncode}):\n" + "\n".join(output)
            )
    return AZURITE_BLOB


def start_azurite(*, timeout: float = 60.0) -> AzuriteServer:
    """Start Azurite's Blob service on a free loopback port and wait until it answers.

    Raises:
        RuntimeError: Azurite cannot be installed, or did not start in time.
    """
    binary = ensure_azurite_installed()
    port = free_port()
    temp_dir = make_temp_dir("azurite")
    data_dir = temp_dir / "data"
    data_dir.mkdir()
    argv = [
        str(binary),
        "--blobHost",
        LOOPBACK,
        "--blobPort",
        str(port),
        "--location",
        str(data_dir),
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--silent",
    ]
    endpoint = f"http://{LOOPBACK}:{port}/{ACCOUNT_NAME}"
    # Any HTTP status means it is up: an unsigned list answers 403.
    process = start_server(
        "azurite", argv, f"{endpoint}?comp=list", temp_dir=temp_dir, timeout=timeout, cwd=temp_dir
    )
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
        f"AccountKey={ACCOUNT_KEY};BlobEndpoint={endpoint};"
    )
    return AzuriteServer(
        endpoint=endpoint,
        account_name=ACCOUNT_NAME,
        account_key=ACCOUNT_KEY,
        connection_string=connection_string,
        _process=process,
    )
