"""Resumable parts copies into SeaweedFS S3: kill ``storager cp`` mid-upload, run it again."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import storager
from storager import Multipart, Segmenter
from storager.cli._parts import CopiedParts, copy_in_parts
from storager.cli._resume import UploadRecord, source_version

pytestmark = pytest.mark.s3

MiB = 1 << 20
PART = 5 * MiB  # SeaweedFS's (and S3's) smallest part


@pytest.fixture(scope="module")
def server(seaweedfs_server: Any) -> Iterator[tuple[str, str, Any]]:
    """A fresh bucket: yields its name, the store URL's query and a boto3 client."""
    client = boto3.client(
        "s3",
        endpoint_url=seaweedfs_server.endpoint,
        aws_access_key_id=seaweedfs_server.access_key,
        aws_secret_access_key=seaweedfs_server.secret_key,
        region_name=seaweedfs_server.region,
    )
    name = f"storager-resume-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    query = (
        f"endpoint={seaweedfs_server.endpoint}&location=us-east-1"
        f"&credential=hmac:{seaweedfs_server.access_key}:{seaweedfs_server.secret_key}"
    )
    yield name, query, client
    client.close()


def _pending_uploads(client: Any, bucket: str) -> list[Any]:
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def _record_lines(directory: Path) -> int:
    """Parts acknowledged so far in the one record of ``directory`` (0 if none yet)."""
    for file in directory.glob("*.jsonl"):
        try:
            return max(0, len(file.read_bytes().splitlines()) - 1)
        except OSError:
            return 0
    return 0


@pytest.mark.slow
def _killed_after_three_parts(argv: list[str], records: Path) -> bool:
    """Run ``argv``; SIGKILL it once its record holds 3 parts. False if it ended first."""
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _record_lines(records) < 3 and child.poll() is None:
            assert time.monotonic() < deadline, "no part was acknowledged in 60 s"
            time.sleep(0.002)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        _, err = child.communicate(timeout=30)
    if child.returncode == -signal.SIGKILL:
        return True
    assert child.returncode == 0, err
    return False


def test_a_killed_cp_is_resumed_sending_only_the_parts_the_server_lacks(
    tmp_path: Path, server: tuple[str, str, Any], resume_records: Path
) -> None:
    bucket, query, client = server
    big = tmp_path / "big.bin"
    data = os.urandom(14 * PART)  # 3 acknowledged + 8 in flight still leave 3
    big.write_bytes(data)
    # A loaded machine may let the copy finish before the kill lands: then again, elsewhere.
    for _attempt in range(3):
        key = f"k-{secrets.token_hex(4)}/big.bin"
        argv = [sys.executable, "-m", "storager", "cp", "--json", "--no-progress"]
        argv += ["--part-size", "5MiB", str(big), f"s3://{bucket}/{key}?{query}"]
        if _killed_after_three_parts(argv, resume_records):
            break
    else:
        pytest.fail("the copy finished before it could be killed, three times")

    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=key)
    (record_file,) = resume_records.glob("*.jsonl")
    store_url = f"s3://{bucket}?{query}"
    with storager.open(store_url) as store:
        assert isinstance(store, Segmenter)
        record = UploadRecord(resume_records, "", store, "/" + key, "")
        record.file = record_file
        pending = record.pending()
        assert pending is not None
        upload = Multipart("/" + key, pending.upload_id)
        on_server = {p.number: p for p in store.list_multipart(upload)}
        recorded = set(pending.parts)
        assert recorded and recorded <= set(on_server)
        assert len(on_server) < 14
        # A recorded part replaced behind the record's back must be sent again.
        swapped = min(recorded)
        store.write_multipart(upload, swapped, os.urandom(PART))
    reusable = recorded - {swapped}

    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout.splitlines()[-1])
    assert summary["copied"] == 1 and summary["copied_bytes"] == len(data)
    assert summary["resumed_bytes"] == len(reusable) * PART
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert not list(resume_records.glob("*.jsonl"))
    assert not _pending_uploads(client, bucket)


def _store_url(server: tuple[str, str, Any]) -> str:
    bucket, query, _ = server
    return f"s3://{bucket}?{query}"


class _StopAfter:
    """An on_bytes callback that fails the copy once ``parts`` parts were sent."""

    def __init__(self, parts: int) -> None:
        self.left = parts

    def __call__(self, _n: int) -> None:
        self.left -= 1
        if self.left < 0:
            raise KeyboardInterrupt


def test_a_recorded_part_is_not_sent_again(
    tmp_path: Path, server: tuple[str, str, Any], resume_records: Path
) -> None:
    """Proof that reuse skips the upload: a part that an earlier run recorded (here
    uploaded with other bytes) ends up in the object as the server holds it."""
    big = tmp_path / "big.bin"
    data = os.urandom(8 * PART)
    big.write_bytes(data)
    key = f"/reuse-{secrets.token_hex(4)}.bin"
    marker = b"\x00" * PART
    with storager.open("fs:///") as src, storager.open(_store_url(server)) as dst:
        assert isinstance(dst, Segmenter)
        listed = src.stat(str(big))
        upload = dst.create_multipart(key)
        record = UploadRecord(resume_records, "u", dst, key, "src")
        assert record.start(upload.upload_id, source_version("src", listed, PART))
        record.add(dst.write_multipart(upload, 3, marker))
        record.close()

        again = UploadRecord(resume_records, "u", dst, key, "src")
        copied = copy_in_parts(src, str(big), dst, key, listed, record=again, part_size=PART)
        assert copied == CopiedParts(len(data), PART)
        body = dst.read(key)
    start = 2 * PART
    assert body[start : start + PART] == marker
    assert body[:start] + body[start + PART :] == data[:start] + data[start + PART :]


def test_a_changed_source_aborts_the_old_upload_and_starts_anew(
    tmp_path: Path, server: tuple[str, str, Any], resume_records: Path
) -> None:
    bucket, _, client = server
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * PART))
    key = f"/changed-{secrets.token_hex(4)}.bin"
    with storager.open("fs:///") as src, storager.open(_store_url(server)) as dst:
        assert isinstance(dst, Segmenter)

        def record() -> UploadRecord:
            return UploadRecord(resume_records, "u", dst, key, "src")

        with pytest.raises(KeyboardInterrupt):
            first = src.stat(str(big))
            copy_in_parts(
                src, str(big), dst, key, first, _StopAfter(2), record=record(), part_size=PART
            )
        old = record().pending()
        assert old is not None and old.parts
        # Same size, new bytes and a new modification time: a new version.
        fresh = os.urandom(8 * PART)
        big.write_bytes(fresh)
        stamp = big.stat().st_mtime_ns + 2_000_000_000
        os.utime(big, ns=(stamp, stamp))

        now = src.stat(str(big))
        copied = copy_in_parts(src, str(big), dst, key, now, record=record(), part_size=PART)
        assert copied.reused == 0
        assert dst.read(key) == fresh
    uploads = _pending_uploads(client, bucket)
    assert old.upload_id not in {u["UploadId"] for u in uploads}
    assert not list(resume_records.glob("*.jsonl"))


def test_a_failed_copy_without_a_record_still_aborts_its_upload(
    tmp_path: Path, server: tuple[str, str, Any]
) -> None:
    bucket, _, client = server
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * PART))
    key = f"/norecord-{secrets.token_hex(4)}.bin"
    before = {u["UploadId"] for u in _pending_uploads(client, bucket)}
    with storager.open("fs:///") as src, storager.open(_store_url(server)) as dst:
        assert isinstance(dst, Segmenter)
        with pytest.raises(KeyboardInterrupt):
            copy_in_parts(
                src, str(big), dst, key, src.stat(str(big)), _StopAfter(1), part_size=PART
            )
    assert {u["UploadId"] for u in _pending_uploads(client, bucket)} <= before


def test_an_interrupted_cp_says_its_upload_is_kept_and_the_same_command_resumes_it(
    tmp_path: Path,
    server: tuple[str, str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from storager.cli import EXIT_INTERRUPTED, EXIT_OK, _transfer, main

    bucket, query, client = server
    big = tmp_path / "big.bin"
    data = os.urandom(8 * PART)
    big.write_bytes(data)
    key = f"ctrl-c-{secrets.token_hex(4)}/big.bin"
    argv = ["cp", "--json", "--part-size", "5MiB", str(big), f"s3://{bucket}/{key}?{query}"]
    real = _transfer.copy_in_parts

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        return real(*args[:5], _StopAfter(2), **kwargs)  # Ctrl-C after two parts

    monkeypatch.setattr(_transfer, "copy_in_parts", interrupted)
    capsys.readouterr()
    assert main(argv) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert f"1 unfinished upload(s) kept ({big})" in err
    assert "run the same command again" in err
    monkeypatch.setattr(_transfer, "copy_in_parts", real)

    assert main(argv) == EXIT_OK
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["resumed_bytes"] >= 2 * PART
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data
