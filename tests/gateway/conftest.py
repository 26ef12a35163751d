"""The gateway under test: one S3App over several stores, served by uvicorn on 127.0.0.1.

The app runs in this process (in a thread), once per session, over HTTP and over HTTPS
with a throwaway certificate, so tests can look behind it at the stores it serves.
Buckets: ``mem`` (a memory store, Segmenter), ``striped`` (Striped over three memory
backends), ``files`` (a local directory: multipart through the reserved prefix), and
``open`` on a second, anonymous app.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import storager
from storager.combinators.striped import Replicas, Striped
from storager.gateway import S3App
from storager.services.memory import MemoryStorage

ACCESS_KEY = "AKIDGATEWAYTEST"
SECRET_KEY = "gateway-test-secret"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Served:
    """uvicorn serving one app in a thread, stopped by ``stop``."""

    def __init__(self, app: Any, *, lifespan: str, **options: Any) -> None:
        import uvicorn

        from storager.gateway._server import uvicorn_options

        self.port = _free_port()
        # Configured as `storager serve` configures it (its protocol, polling after answers).
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan=lifespan,
            **(uvicorn_options() | options),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Recorder:
    """ASGI middleware remembering each request's payload form, by path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.payloads: dict[str, str] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            form = headers.get(b"x-amz-content-sha256", b"").decode()
            self.payloads[scope["path"]] = form
        await self.app(scope, receive, send)


@dataclass
class Gateway:
    """A running gateway: its endpoints, credentials and the stores behind its buckets."""

    endpoint: str
    tls_endpoint: str
    ca_file: str
    stores: dict[str, storager.Storager]
    app: S3App
    anonymous_endpoint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def client(self, *, tls: bool = False, secret: str | None = None, **config: Any) -> Any:
        """A boto3 S3 client for this gateway."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.tls_endpoint if tls else self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret or self.secret_key,
            region_name=REGION,
            verify=self.ca_file if tls else None,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
        )


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    import trustme

    folder = tempfile.mkdtemp(prefix="storager-gateway-")
    files_root = os.path.join(folder, "files")
    os.mkdir(files_root)
    backends: dict[str, storager.Storager] = {f"b{i}": MemoryStorage() for i in range(3)}
    stores: dict[str, storager.Storager] = {
        "mem": MemoryStorage(),
        "striped": Striped(
            backends, codec=Replicas(2), manifests=MemoryStorage(), chunk_size=1 << 20
        ),
        "files": storager.open(f"fs://{files_root}"),
    }
    app = S3App(stores, credentials={ACCESS_KEY: SECRET_KEY})
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = os.path.join(folder, "ca.pem")
    cert_file = os.path.join(folder, "cert.pem")
    key_file = os.path.join(folder, "key.pem")
    ca.cert_pem.write_to_path(ca_file)
    leaf.private_key_pem.write_to_path(key_file)
    leaf.cert_chain_pems[0].write_to_path(cert_file)
    recorder = Recorder(app)
    plain = _Served(recorder, lifespan="on")
    tls = _Served(recorder, lifespan="off", ssl_certfile=cert_file, ssl_keyfile=key_file)
    open_app = S3App({"open": MemoryStorage()}, anonymous=True)
    anonymous = _Served(open_app, lifespan="off")
    yield Gateway(
        endpoint=f"http://127.0.0.1:{plain.port}",
        tls_endpoint=f"https://127.0.0.1:{tls.port}",
        ca_file=ca_file,
        stores=stores,
        app=app,
        anonymous_endpoint=f"http://127.0.0.1:{anonymous.port}",
        extra={"open_app": open_app, "recorder": recorder},
    )
    for served in (anonymous, tls, plain):
        served.stop()
    for store in stores.values():
        store.close()


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix per test, so tests never see each other's keys."""
    return f"t-{secrets.token_hex(4)}/"
