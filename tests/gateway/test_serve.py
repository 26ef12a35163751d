"""``storager serve`` as a process, the upload expiry sweep, and the access log."""

from __future__ import annotations

import logging
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from storager.gateway import S3App
from storager.services.memory import MemoryStorage
from tests.gateway.conftest import REGION, Gateway, _free_port, _Served

BIN = Path(sys.executable).parent


class _Process:
    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, *, ca: str | None = None
    ) -> None:
        self.port = _free_port()
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN / "storager"), "serve", *args, "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                scheme = "https" if ca else "http"
                context = ssl.create_default_context(cafile=ca) if ca else None
                url = f"{scheme}://127.0.0.1:{self.port}/healthz"
                with urllib.request.urlopen(url, timeout=2, context=context):
                    return
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    self.stop()
                    raise RuntimeError(f"storager serve did not start: {err}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def _client(port: int, key: str = "AKSERVE", secret: str = "serve-secret") -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture
def served_dir(tmp_path: Path) -> Iterator[tuple[_Process, Path]]:
    root = tmp_path / "photos"
    root.mkdir()
    server = _Process(
        [str(root), "--bucket", "photos", "--workers", "2"],
        env={"STORAGER_SERVE_CREDENTIALS": "AKSERVE:serve-secret"},
    )
    yield server, root
    server.stop()


def test_serve_a_directory_with_two_workers(served_dir: tuple[_Process, Path]) -> None:
    server, root = served_dir
    s3 = _client(server.port)
    for i in range(4):  # spread over both workers
        s3.put_object(Bucket="photos", Key=f"2024/p{i}.jpg", Body=b"jpeg%d" % i)
    assert (root / "2024" / "p3.jpg").read_bytes() == b"jpeg3"
    listed = s3.list_objects_v2(Bucket="photos", Prefix="2024/")
    assert [o["Key"] for o in listed["Contents"]] == [f"2024/p{i}.jpg" for i in range(4)]
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        _client(server.port, secret="wrong").list_objects_v2(Bucket="photos")


def test_serve_under_granian(tmp_path: Path) -> None:
    server = _Process(
        [
            "memory://",
            "--bucket",
            "g",
            "--server",
            "granian",
            "--credential",
            "AKSERVE:serve-secret",
        ]
    )
    try:
        s3 = _client(server.port)
        s3.put_object(Bucket="g", Key="k", Body=b"granian")
        assert s3.get_object(Bucket="g", Key="k")["Body"].read() == b"granian"
    finally:
        server.stop()


def test_serve_over_https(tmp_path: Path) -> None:
    import trustme

    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1")
    ca, cert, key = (str(tmp_path / n) for n in ("ca.pem", "cert.pem", "key.pem"))
    authority.cert_pem.write_to_path(ca)
    leaf.cert_chain_pems[0].write_to_path(cert)
    leaf.private_key_pem.write_to_path(key)
    args = ["memory://", "--bucket", "tls", "--credential", "AKSERVE:serve-secret"]
    server = _Process([*args, "--tls-cert", cert, "--tls-key", key], ca=ca)
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=f"https://127.0.0.1:{server.port}",
            aws_access_key_id="AKSERVE",
            aws_secret_access_key="serve-secret",
            region_name=REGION,
            verify=ca,
        )
        s3.put_object(Bucket="tls", Key="k", Body=b"secure")
        assert s3.get_object(Bucket="tls", Key="k")["Body"].read() == b"secure"
        s3.close()  # an idle TLS keep-alive connection would hold uvicorn's shutdown
    finally:
        server.stop()


def test_serve_trees_of_a_config_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    config = tmp_path / "tree.toml"
    config.write_text(
        f'[trees.photos_tree]\nkind = "fs"\nroot = "{tmp_path / "a"}"\n'
        '[trees.logs_tree]\nkind = "memory"\n'
    )
    server = _Process(
        [
            "--config",
            str(config),
            "--bucket",
            "photos=photos_tree",
            "--bucket",
            "logs=logs_tree",
            "--credential",
            "AKSERVE:serve-secret",
        ]
    )
    try:
        s3 = _client(server.port)
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["photos", "logs"]
        s3.put_object(Bucket="photos", Key="x.txt", Body=b"tree")
        assert (tmp_path / "a" / "x.txt").read_bytes() == b"tree"
        s3.put_object(Bucket="logs", Key="l", Body=b"mem")
        assert s3.get_object(Bucket="logs", Key="l")["Body"].read() == b"mem"
    finally:
        server.stop()


def test_serve_refuses_to_run_without_credentials_or_anonymous() -> None:
    done = subprocess.run(
        [str(BIN / "storager"), "serve", "memory://"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "STORAGER_SERVE_CREDENTIALS"},
    )
    assert done.returncode == 2
    assert "--anonymous" in done.stderr


def test_s3app_needs_credentials_or_anonymous() -> None:
    with pytest.raises(ValueError, match="anonymous"):
        S3App({"b": MemoryStorage()})


@pytest.mark.parametrize("bucket", ["mem", "files"])
def test_expiry_sweep_aborts_old_uploads_only(gateway: Gateway, bucket: str, prefix: str) -> None:
    import asyncio

    s3 = gateway.client()
    old = s3.create_multipart_upload(Bucket=bucket, Key=prefix + "old")["UploadId"]
    s3.upload_part(Bucket=bucket, Key=prefix + "old", UploadId=old, PartNumber=1, Body=b"x")
    later = datetime.now(UTC) + gateway.app.upload_max_age + timedelta(seconds=1)
    aborted = asyncio.run(gateway.app.sweep_uploads(now=later))
    assert aborted >= 1
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert uploads == []
    with pytest.raises(Exception, match="NoSuchUpload"):
        s3.list_parts(Bucket=bucket, Key=prefix + "old", UploadId=old)
    fresh = s3.create_multipart_upload(Bucket=bucket, Key=prefix + "fresh")["UploadId"]
    asyncio.run(gateway.app.sweep_uploads())
    assert s3.list_parts(Bucket=bucket, Key=prefix + "fresh", UploadId=fresh).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=bucket, Key=prefix + "fresh", UploadId=fresh)


def test_access_log_line_per_request(
    gateway: Gateway, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = gateway.client()
    with caplog.at_level(logging.INFO, logger="storager.gateway.access"):
        s3.put_object(Bucket="mem", Key=prefix + "logged", Body=b"12345")
        with pytest.raises(Exception, match="NoSuchKey"):
            s3.get_object(Bucket="mem", Key=prefix + "missing")
    records = [r for r in caplog.records if r.name == "storager.gateway.access"]
    put = next(r for r in records if getattr(r, "key", "") == prefix + "logged")
    assert (put.method, put.bucket, put.operation, put.status) == (  # type: ignore[attr-defined]
        "PUT",
        "mem",
        "PutObject",
        200,
    )
    assert put.request_id and put.duration_ms >= 0  # type: ignore[attr-defined]
    miss = next(r for r in records if getattr(r, "key", "") == prefix + "missing")
    assert miss.status == 404  # type: ignore[attr-defined]
    assert "status=404" in miss.getMessage()


def test_uploads_of_another_process_are_listed_on_reserved_prefix_stores(
    gateway: Gateway, prefix: str
) -> None:
    s3 = gateway.client()
    upload = s3.create_multipart_upload(Bucket="files", Key=prefix + "other")["UploadId"]
    gateway.app.uploads.drop(upload)  # as if another gateway process had started it
    listed = s3.list_multipart_uploads(Bucket="files", Prefix=prefix)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [(prefix + "other", upload)]
    s3.abort_multipart_upload(Bucket="files", Key=prefix + "other", UploadId=upload)
    assert s3.list_multipart_uploads(Bucket="files", Prefix=prefix).get("Uploads", []) == []


def test_stalled_uploads_do_not_hold_the_threads_quick_calls_need() -> None:
    import socket

    from tests.gateway._raw import send, signed_headers

    store = MemoryStorage()
    store.write("there", b"yes")
    app = S3App(
        {"b": store},
        credentials={"AKIDGATEWAYTEST": "gateway-test-secret"},
        threads=1,
        upload_threads=1,
    )
    served = _Served(app, lifespan="on")
    try:
        path = "/b/slow-upload"
        headers = signed_headers(served.port, "PUT", path, "UNSIGNED-PAYLOAD")
        headers["content-length"] = str(8 << 20)
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            sock.sendall(head.encode() + b"\r\n" + b"x" * (2 << 20))  # then it stalls
            time.sleep(0.3)
            get = signed_headers(served.port, "GET", "/b/there", "UNSIGNED-PAYLOAD")
            began = time.monotonic()
            assert send(served.port, "GET", "/b/there", headers=get).body == b"yes"
            assert time.monotonic() - began < 5
    finally:
        served.stop()


def test_the_serving_process_keeps_freed_buffers_for_reuse() -> None:
    # A fresh interpreter: whether glibc's knobs are set is process state.
    code = (
        "import storager._malloc as m\n"
        "from storager.cli._serve import ServeSettings, build_app\n"
        "assert m._applied is None\n"
        "build_app(ServeSettings(buckets={'demo': 'memory://'}, anonymous=True))\n"
        "print(m._applied)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == str((32 << 20, 256 << 20))
