"""Real S3 clients against the gateway: aws-cli, rclone, minio-py, s3fs, obstore and s3cmd, each
doing put, get, ranged get, head, list (v1/v2, delimiters, paging past 1,000 keys), copy,
delete, multi-delete, a multipart upload over 20 MiB and a presigned URL, over HTTP and
HTTPS (a throwaway certificate); and pandas writing and reading CSV and Parquet through s3fs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import REGION, Gateway

MiB = 1 << 20
BIN = Path(sys.executable).parent
PAGED = 1103  # keys under one prefix: more than one 1,000-key page


@pytest.fixture(params=[False, True], ids=["http", "https"])
def tls(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gateway-clients") / "big.bin"
    path.write_bytes(os.urandom(21 * MiB))
    return path


def _paged(gateway: Gateway, prefix: str) -> list[str]:
    names = [f"{prefix}paged/{i:05d}" for i in range(PAGED)]
    for name in names:
        gateway.stores["mem"].write(name, b"p")
    return names


def _endpoint(gateway: Gateway, tls: bool) -> str:
    return gateway.tls_endpoint if tls else gateway.endpoint


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _urlopen(url: str, gateway: Gateway) -> bytes:
    import ssl

    context = ssl.create_default_context(cafile=gateway.ca_file)
    with urllib.request.urlopen(url, timeout=30, context=context) as response:
        return bytes(response.read())


# -- aws-cli (a subprocess: it vendors its own botocore) -----------------------------------


def _aws(gateway: Gateway, tls: bool, *args: str) -> str:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": gateway.access_key,
        "AWS_SECRET_ACCESS_KEY": gateway.secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    if tls:
        env["AWS_CA_BUNDLE"] = gateway.ca_file
    done = subprocess.run(
        [str(BIN / "aws"), "--endpoint-url", _endpoint(gateway, tls), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_aws_cli(gateway: Gateway, tls: bool, big_file: Path, tmp_path: Path, prefix: str) -> None:
    base = f"s3://mem/{prefix}"
    _aws(gateway, tls, "s3", "cp", str(big_file), base + "big.bin", "--only-show-errors")
    _aws(gateway, tls, "s3", "cp", base + "big.bin", str(tmp_path / "back"), "--only-show-errors")
    assert _sha((tmp_path / "back").read_bytes()) == _sha(big_file.read_bytes())
    head = json.loads(
        _aws(gateway, tls, "s3api", "head-object", "--bucket", "mem", "--key", prefix + "big.bin")
    )
    assert head["ContentLength"] == 21 * MiB
    assert head["ETag"].endswith('-3"') or head["ETag"].startswith('"')
    _aws(
        gateway,
        tls,
        "s3api",
        "get-object",
        "--bucket",
        "mem",
        "--key",
        prefix + "big.bin",
        "--range",
        "bytes=100-199",
        str(tmp_path / "range"),
    )
    assert (tmp_path / "range").read_bytes() == big_file.read_bytes()[100:200]
    if tls:
        return  # the rest is transport-independent; run once
    names = _paged(gateway, prefix)
    listed = _aws(gateway, tls, "s3", "ls", base + "paged/")
    assert len(listed.splitlines()) == PAGED
    v1 = json.loads(
        _aws(
            gateway,
            tls,
            "s3api",
            "list-objects",
            "--bucket",
            "mem",
            "--prefix",
            prefix,
            "--delimiter",
            "/",
        )
    )
    assert [p["Prefix"] for p in v1["CommonPrefixes"]] == [prefix + "paged/"]
    assert [o["Key"] for o in v1["Contents"]] == [prefix + "big.bin"]
    _aws(gateway, tls, "s3", "cp", base + "big.bin", base + "copy.bin", "--only-show-errors")
    assert gateway.stores["mem"].stat(prefix + "copy.bin").content_length == 21 * MiB
    url = _aws(gateway, tls, "s3", "presign", base + "paged/00001").strip()
    assert _urlopen(url, gateway) == b"p"
    delete = {"Objects": [{"Key": n} for n in names[:3]]}
    _aws(
        gateway,
        tls,
        "s3api",
        "delete-objects",
        "--bucket",
        "mem",
        "--delete",
        json.dumps(delete),
    )
    _aws(gateway, tls, "s3", "rm", base + "copy.bin", "--only-show-errors")
    left = [o.path for o in gateway.stores["mem"].list(prefix, list_mode="prefix")]
    assert prefix + "copy.bin" not in left
    assert len(left) == PAGED - 3 + 1


# -- rclone ------------------------------------------------------------------------------


def _rclone(gateway: Gateway, tls: bool, *args: str) -> str:
    endpoint = _endpoint(gateway, tls)
    remote = (
        f":s3,provider=Other,endpoint='{endpoint}',"
        f"access_key_id={gateway.access_key},secret_access_key={gateway.secret_key}:"
    )
    command = [
        str(BIN / "rclone"),
        "--config",
        "",
        "--s3-upload-cutoff",
        "8M",
        "--s3-chunk-size",
        "8M",
    ]
    if tls:
        command += ["--ca-cert", gateway.ca_file]
    command += [a.replace("REMOTE:", remote) for a in args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_rclone(gateway: Gateway, tls: bool, big_file: Path, tmp_path: Path, prefix: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(big_file.read_bytes())
    (source / "small.txt").write_bytes(b"small")
    _rclone(gateway, tls, "copy", str(source), f"REMOTE:mem/{prefix}dir/")
    _rclone(gateway, tls, "check", str(source), f"REMOTE:mem/{prefix}dir/")
    back = tmp_path / "back"
    _rclone(gateway, tls, "copy", f"REMOTE:mem/{prefix}dir/", str(back))
    assert _sha((back / "big.bin").read_bytes()) == _sha(big_file.read_bytes())
    ranged = _rclone(
        gateway, tls, "cat", "--offset", "1", "--count", "3", f"REMOTE:mem/{prefix}dir/small.txt"
    )
    assert ranged == "mal"
    if tls:
        return
    _paged(gateway, prefix)
    listed = json.loads(_rclone(gateway, tls, "lsjson", f"REMOTE:mem/{prefix}paged/"))
    assert len(listed) == PAGED
    top = json.loads(_rclone(gateway, tls, "lsjson", f"REMOTE:mem/{prefix}"))
    assert sorted((e["Name"], e["IsDir"]) for e in top) == [("dir", True), ("paged", True)]
    _rclone(
        gateway,
        tls,
        "copyto",
        f"REMOTE:mem/{prefix}dir/small.txt",
        f"REMOTE:mem/{prefix}copied.txt",
    )
    assert gateway.stores["mem"].read(prefix + "copied.txt") == b"small"
    _rclone(gateway, tls, "delete", f"REMOTE:mem/{prefix}dir/")
    left = [o.path for o in gateway.stores["mem"].list(prefix + "dir/", list_mode="prefix")]
    assert left == []


# -- minio-py ----------------------------------------------------------------------------


def _minio(gateway: Gateway, tls: bool) -> Any:
    import urllib3
    from minio import Minio

    http = urllib3.PoolManager(ca_certs=gateway.ca_file) if tls else None
    return Minio(
        _endpoint(gateway, tls).partition("://")[2],
        access_key=gateway.access_key,
        secret_key=gateway.secret_key,
        secure=tls,
        region=REGION,
        http_client=http,
    )


def _read(response: Any) -> bytes:
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def test_minio(gateway: Gateway, tls: bool, big_file: Path, prefix: str) -> None:
    import io

    from minio.commonconfig import CopySource
    from minio.deleteobjects import DeleteObject

    client = _minio(gateway, tls)
    data = big_file.read_bytes()
    client.put_object("mem", prefix + "big.bin", io.BytesIO(data), -1, part_size=5 * MiB)
    assert _sha(_read(client.get_object("mem", prefix + "big.bin"))) == _sha(data)
    assert _read(client.get_object("mem", prefix + "big.bin", offset=7, length=5)) == data[7:12]
    assert client.stat_object("mem", prefix + "big.bin").size == len(data)
    client.put_object("mem", prefix + "s.txt", io.BytesIO(b"minio"), 5)
    if tls:
        return
    names = _paged(gateway, prefix)
    listed = [o.object_name for o in client.list_objects("mem", prefix + "paged/")]
    assert listed == names
    # minio-py yields a page's keys, then its prefixes
    v1 = sorted(o.object_name for o in client.list_objects("mem", prefix, use_api_v1=True))
    assert v1 == [prefix + "big.bin", prefix + "paged/", prefix + "s.txt"]
    client.copy_object("mem", prefix + "c.txt", CopySource("mem", prefix + "s.txt"))
    assert _read(client.get_object("mem", prefix + "c.txt")) == b"minio"
    url = client.presigned_get_object("mem", prefix + "c.txt")
    assert _urlopen(url, gateway) == b"minio"
    errors = list(client.remove_objects("mem", [DeleteObject(n) for n in names]))
    assert errors == []
    client.remove_object("mem", prefix + "c.txt")
    left = sorted(o.path for o in gateway.stores["mem"].list(prefix, list_mode="prefix"))
    assert left == [prefix + "big.bin", prefix + "s.txt"]


# -- s3fs --------------------------------------------------------------------------------


def test_s3fs(gateway: Gateway, tls: bool, big_file: Path, prefix: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=gateway.access_key,
        secret=gateway.secret_key,
        endpoint_url=_endpoint(gateway, tls),
        client_kwargs={"verify": gateway.ca_file} if tls else {},
        skip_instance_cache=True,
    )
    base = f"mem/{prefix}"
    fs.pipe(base + "a.txt", b"s3fs bytes")
    assert fs.cat(base + "a.txt") == b"s3fs bytes"
    assert fs.cat_file(base + "a.txt", start=2, end=6) == b"fs b"
    assert fs.info(base + "a.txt")["size"] == 10
    fs.put(str(big_file), base + "big.bin")
    assert fs.info(base + "big.bin")["size"] == 21 * MiB
    with fs.open(base + "big.bin", "rb") as f:
        f.seek(20 * MiB)
        assert f.read(10) == big_file.read_bytes()[20 * MiB : 20 * MiB + 10]
    if tls:
        return
    _paged(gateway, prefix)
    assert len(fs.ls(base + "paged/")) == PAGED
    assert sorted(fs.ls(base, detail=False)) == [base + "a.txt", base + "big.bin", base + "paged"]
    fs.copy(base + "a.txt", base + "b.txt")
    assert fs.cat(base + "b.txt") == b"s3fs bytes"
    assert _urlopen(fs.url(base + "b.txt"), gateway) == b"s3fs bytes"
    fs.rm([base + "a.txt", base + "b.txt"])
    fs.rm(base + "paged/", recursive=True)
    left = sorted(o.path for o in gateway.stores["mem"].list(prefix, list_mode="prefix"))
    assert left == [prefix + "big.bin"]


# -- obstore -----------------------------------------------------------------------------


def test_obstore(gateway: Gateway, tls: bool, big_file: Path, prefix: str) -> None:
    import obstore
    from obstore.store import S3Store

    options: dict[str, Any] = {"allow_http": True}
    if tls:
        options = {"root_certificate": Path(gateway.ca_file).read_text()}
    store = S3Store(
        "mem",
        endpoint=_endpoint(gateway, tls),
        access_key_id=gateway.access_key,
        secret_access_key=gateway.secret_key,
        region=REGION,
        client_options=options,
    )
    data = big_file.read_bytes()
    obstore.put(store, prefix + "big.bin", data, use_multipart=True, chunk_size=6 * MiB)
    assert _sha(bytes(obstore.get(store, prefix + "big.bin").bytes())) == _sha(data)
    assert bytes(obstore.get_range(store, prefix + "big.bin", start=5, end=9)) == data[5:9]
    assert obstore.head(store, prefix + "big.bin")["size"] == len(data)
    obstore.put(store, prefix + "s.txt", b"obstore")
    if tls:
        return
    names = _paged(gateway, prefix)
    listed = [o["path"] for page in obstore.list(store, prefix + "paged/") for o in page]
    assert sorted(listed) == names
    top = obstore.list_with_delimiter(store, prefix)
    assert top["common_prefixes"] == [prefix + "paged"]
    assert sorted(o["path"] for o in top["objects"]) == [prefix + "big.bin", prefix + "s.txt"]
    obstore.copy(store, prefix + "s.txt", prefix + "c.txt")
    url = obstore.sign(store, "GET", prefix + "c.txt", timedelta(seconds=60))
    assert _urlopen(url, gateway) == b"obstore"
    obstore.delete(store, [prefix + "c.txt", prefix + "s.txt"])
    assert {o.path for o in gateway.stores["mem"].list(prefix, list_mode="prefix")} == {
        prefix + "big.bin",
        *names,
    }


# -- s3cmd (a subprocess; path-style: host_bucket without %(bucket)s) ---------------------


def _s3cmd(gateway: Gateway, tls: bool, config: Path, *args: str) -> str:
    host = _endpoint(gateway, tls).partition("://")[2]
    config.write_text(
        "[default]\n"
        f"access_key = {gateway.access_key}\n"
        f"secret_key = {gateway.secret_key}\n"
        f"host_base = {host}\n"
        f"host_bucket = {host}\n"
        f"bucket_location = {REGION}\n"
        f"use_https = {tls}\n"
        f"ca_certs_file = {gateway.ca_file if tls else ''}\n"
        "check_ssl_certificate = True\n"
        "multipart_chunk_size_mb = 5\n"
    )
    done = subprocess.run(
        [sys.executable, str(BIN / "s3cmd"), "--config", str(config), "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(config.parent)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_s3cmd(gateway: Gateway, tls: bool, big_file: Path, tmp_path: Path, prefix: str) -> None:
    config = tmp_path / "s3cfg"
    base = f"s3://mem/{prefix}"
    _s3cmd(gateway, tls, config, "put", str(big_file), base + "big.bin")
    assert gateway.stores["mem"].stat(prefix + "big.bin").content_length == 21 * MiB
    _s3cmd(gateway, tls, config, "get", base + "big.bin", str(tmp_path / "back"))
    assert _sha((tmp_path / "back").read_bytes()) == _sha(big_file.read_bytes())
    info = _s3cmd(gateway, tls, config, "info", base + "big.bin")
    assert str(21 * MiB) in info
    if tls:
        return
    small = tmp_path / "small.txt"
    small.write_bytes(b"s3cmd small")
    _s3cmd(gateway, tls, config, "put", str(small), base + "small.txt")
    names = _paged(gateway, prefix)
    listed = _s3cmd(gateway, tls, config, "ls", base + "paged/")
    assert len(listed.splitlines()) == PAGED
    top = _s3cmd(gateway, tls, config, "ls", base)
    assert "DIR" in top and f"{base}paged/" in top and f"{base}small.txt" in top
    _s3cmd(gateway, tls, config, "cp", base + "small.txt", base + "copy.txt")
    assert gateway.stores["mem"].read(prefix + "copy.txt") == b"s3cmd small"
    url = _s3cmd(gateway, tls, config, "signurl", base + "copy.txt", "+300").strip()
    assert _urlopen(url, gateway) == b"s3cmd small"
    _s3cmd(gateway, tls, config, "del", "--recursive", "--force", base + "paged/")
    _s3cmd(gateway, tls, config, "del", base + "copy.txt")
    left = sorted(o.path for o in gateway.stores["mem"].list(prefix, list_mode="prefix"))
    assert left == [prefix + "big.bin", prefix + "small.txt"]
    assert names[0] not in left


# -- pandas (through s3fs; parquet through pyarrow) --------------------------------------


def test_pandas(gateway: Gateway, tls: bool, prefix: str) -> None:
    import pandas as pd

    options: dict[str, Any] = {
        "key": gateway.access_key,
        "secret": gateway.secret_key,
        "endpoint_url": _endpoint(gateway, tls),
        "client_kwargs": {"verify": gateway.ca_file} if tls else {},
        "skip_instance_cache": True,
    }
    frame = pd.DataFrame(
        {
            "n": range(5000),
            "word": [f"w{i % 7}" for i in range(5000)],
            "x": [i / 3 for i in range(5000)],
        }
    )
    base = f"s3://mem/{prefix}"
    frame.to_csv(base + "frame.csv", index=False, storage_options=options)
    assert gateway.stores["mem"].read(prefix + "frame.csv").startswith(b"n,word,x\n0,w0,0.0\n")
    back = pd.read_csv(base + "frame.csv", storage_options=options)
    pd.testing.assert_frame_equal(back, frame)
    frame.to_parquet(base + "frame.parquet", engine="pyarrow", storage_options=options)
    assert gateway.stores["mem"].read(prefix + "frame.parquet")[:4] == b"PAR1"
    columns = pd.read_parquet(
        base + "frame.parquet", engine="pyarrow", columns=["word"], storage_options=options
    )
    pd.testing.assert_frame_equal(columns, frame[["word"]])
