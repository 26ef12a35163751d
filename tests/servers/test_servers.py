"""Each test server starts through its fixture and does a real round trip with the vendor client."""

from __future__ import annotations

import importlib
import io
import json
import os
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import paramiko
import pytest
from azure.storage.blob import BlobServiceClient

from tests.servers.azurite import AzuriteServer
from tests.servers.gcs import GCSServer
from tests.servers.moto import MotoServer
from tests.servers.seaweedfs import SeaweedFSServer
from tests.servers.sshd import SSHDServer

pytest_plugins = ["tests.servers.fixtures"]


def _name(prefix: str) -> str:
    """A fresh bucket/container/file name, so tests never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _s3_client(endpoint: str, access_key: str, secret_key: str, region: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
    )


def _s3_round_trip(client: Any) -> None:
    bucket = _name("bucket")
    body = os.urandom(4096)
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="dir/object.bin", Body=body)
    assert client.get_object(Bucket=bucket, Key="dir/object.bin")["Body"].read() == body
    assert client.head_object(Bucket=bucket, Key="dir/object.bin")["ContentLength"] == len(body)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["dir/object.bin"]


def test_moto_put_get_round_trip(moto_server: MotoServer) -> None:
    assert moto_server.endpoint.startswith("http://127.0.0.1:")
    client = _s3_client(
        moto_server.endpoint, moto_server.access_key, moto_server.secret_key, moto_server.region
    )
    _s3_round_trip(client)


def test_seaweedfs_put_get_round_trip(seaweedfs_server: SeaweedFSServer) -> None:
    assert seaweedfs_server.endpoint.startswith("http://127.0.0.1:")
    client = _s3_client(
        seaweedfs_server.endpoint,
        seaweedfs_server.access_key,
        seaweedfs_server.secret_key,
        seaweedfs_server.region,
    )
    _s3_round_trip(client)


def test_seaweedfs_accepts_any_access_key(seaweedfs_server: SeaweedFSServer) -> None:
    owner = _s3_client(
        seaweedfs_server.endpoint,
        seaweedfs_server.access_key,
        seaweedfs_server.secret_key,
        seaweedfs_server.region,
    )
    bucket = _name("anykey")
    owner.create_bucket(Bucket=bucket)
    other = _s3_client(seaweedfs_server.endpoint, "someone-else", "whatever", "us-east-1")
    other.put_object(Bucket=bucket, Key="k", Body=b"other key")
    assert owner.get_object(Bucket=bucket, Key="k")["Body"].read() == b"other key"


def _http(method: str, url: str, body: bytes | None = None, content_type: str = "") -> bytes:
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=10) as response:
        data: bytes = response.read()
        return data


def test_gcs_create_bucket_upload_download_json_api(gcs_server: GCSServer) -> None:
    base = gcs_server.endpoint
    bucket = _name("bucket")
    name = "dir/object name+é.bin"
    body = os.urandom(4096)
    created = json.loads(
        _http(
            "POST",
            f"{base}/storage/v1/b?project={gcs_server.project}",
            json.dumps({"name": bucket}).encode(),
            "application/json",
        )
    )
    assert created["name"] == bucket
    query = urllib.parse.urlencode({"uploadType": "media", "name": name})
    uploaded = json.loads(
        _http(
            "POST",
            f"{base}/upload/storage/v1/b/{bucket}/o?{query}",
            body,
            "application/octet-stream",
        )
    )
    assert uploaded["name"] == name
    assert int(uploaded["size"]) == len(body)
    quoted = urllib.parse.quote(name, safe="")
    assert _http("GET", f"{base}/storage/v1/b/{bucket}/o/{quoted}?alt=media") == body


def test_gcs_round_trip_with_gcsfs(gcs_server: GCSServer) -> None:
    # The core class: the default one probes each bucket over gRPC+TLS (60 s per call here).
    # Imported by name because gcsfs ships no type information.
    gcsfs_core: Any = importlib.import_module("gcsfs.core")
    fs = gcsfs_core.GCSFileSystem(
        endpoint_url=gcs_server.endpoint, token="anon", project=gcs_server.project
    )
    bucket = _name("gcsfs")
    fs.mkdir(bucket)
    fs.pipe(f"{bucket}/a/b.txt", b"hello gcs")
    assert fs.cat(f"{bucket}/a/b.txt") == b"hello gcs"
    assert fs.info(f"{bucket}/a/b.txt")["size"] == len(b"hello gcs")


def test_azurite_create_container_upload_download(azurite_server: AzuriteServer) -> None:
    assert azurite_server.endpoint.startswith("http://127.0.0.1:")
    assert azurite_server.endpoint.endswith("/devstoreaccount1")
    service = BlobServiceClient.from_connection_string(azurite_server.connection_string)
    container = service.create_container(_name("container"))
    body = os.urandom(4096)
    container.upload_blob("dir/blob.bin", body)
    assert container.download_blob("dir/blob.bin").readall() == body
    assert [b.name for b in container.list_blobs()] == ["dir/blob.bin"]


def _ssh_client(server: SSHDServer, known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            server.host,
            port=server.port,
            username=server.username,
            key_filename=str(server.client_key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    except BaseException:
        client.close()
        raise
    return client


def test_sshd_sftp_put_get_with_verified_host_key(sshd_server: SSHDServer) -> None:
    body = os.urandom(64 * 1024)
    name = _name("file") + ".bin"
    client = _ssh_client(sshd_server, sshd_server.known_hosts_path)
    try:
        sftp = client.open_sftp()
        # Sessions start in root_dir, so a relative path lands there.
        assert sftp.normalize(".") == str(sshd_server.root_dir)
        sftp.putfo(io.BytesIO(body), name)
        assert (sshd_server.root_dir / name).read_bytes() == body
        out = io.BytesIO()
        sftp.getfo(str(sshd_server.root_dir / name), out)
        assert out.getvalue() == body
        assert sftp.stat(name).st_size == len(body)
        sftp.close()
    finally:
        client.close()


def test_sshd_host_key_matches_known_hosts(sshd_server: SSHDServer) -> None:
    line = sshd_server.known_hosts_path.read_text().strip()
    assert line == f"[{sshd_server.host}]:{sshd_server.port} {sshd_server.host_key}"


def test_sshd_unknown_host_key_is_rejected(sshd_server: SSHDServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _ssh_client(sshd_server, empty)
