"""cp -r -j, sync, mv, du, doctor and bench against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from storager.cli import EXIT_FAILED, EXIT_OK, main

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def bucket(seaweedfs_server: Any) -> Iterator[tuple[str, Any]]:
    """A fresh bucket; yields its base URL (ending in '?...') maker and a boto3 client."""
    client = boto3.client(
        "s3",
        endpoint_url=seaweedfs_server.endpoint,
        aws_access_key_id=seaweedfs_server.access_key,
        aws_secret_access_key=seaweedfs_server.secret_key,
        region_name=seaweedfs_server.region,
    )
    name = f"storager-cli-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    query = (
        f"endpoint={seaweedfs_server.endpoint}&location=us-east-1"
        f"&credential=hmac:{seaweedfs_server.access_key}:{seaweedfs_server.secret_key}"
    )
    yield f"s3://{name}/{{path}}?{query}", client
    client.close()


@pytest.fixture
def s3url(bucket: tuple[str, Any]) -> Any:
    """Return ``url(path)``: the URL of ``path`` under a fresh prefix of the bucket."""
    template, _ = bucket
    prefix = f"t-{secrets.token_hex(4)}/"

    def url(path: str = "") -> str:
        return template.format(path=prefix + path)

    return url


def make_tree(root: Path, count: int = 40) -> dict[str, bytes]:
    files = {f"d{i % 4}/f{i:03d}.bin": os.urandom(1000 + i) for i in range(count)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def last_json(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])


def listed(s3url: Any, capsys: pytest.CaptureFixture[str], path: str = "") -> set[str]:
    capsys.readouterr()
    assert main(["ls", "-r", s3url(path)]) == EXIT_OK
    return set(capsys.readouterr().out.split())


def test_cp_r_parallel_to_s3_and_back_keeps_every_byte(
    tmp_path: Path, s3url: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src")
    assert main(["cp", "-r", "-j", "8", "--json", str(tmp_path / "src"), s3url("up/")]) == 0
    summary = last_json(capsys.readouterr().out)
    assert (summary["copied"], summary["failed"]) == (len(files), 0)
    assert summary["copied_bytes"] == sum(len(d) for d in files.values())
    assert listed(s3url, capsys, "up/") == set(files)
    assert main(["cp", "-r", "-j", "8", s3url("up/"), str(tmp_path / "back")]) == EXIT_OK
    back = tmp_path / "back"
    assert {p.relative_to(back).as_posix(): p.read_bytes() for p in back.rglob("*.bin")} == files


def test_cp_r_within_one_bucket_copies_server_side(
    tmp_path: Path, s3url: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src", count=6)
    assert main(["cp", "-r", str(tmp_path / "src"), s3url("a/")]) == EXIT_OK
    assert main(["cp", "-r", "--json", s3url("a/"), s3url("b/")]) == EXIT_OK
    assert last_json(capsys.readouterr().out)["copied"] == len(files)
    assert listed(s3url, capsys, "b/") == set(files)


def test_sync_to_s3_second_run_transfers_nothing_by_mtime_and_by_checksum(
    tmp_path: Path, s3url: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src")
    assert main(["sync", "--json", str(tmp_path / "src"), s3url("s/")]) == EXIT_OK
    assert last_json(capsys.readouterr().out)["copied"] == len(files)
    assert main(["sync", "--json", str(tmp_path / "src"), s3url("s/")]) == EXIT_OK
    again = last_json(capsys.readouterr().out)
    assert (again["copied"], again["skipped"]) == (0, len(files))
    assert main(["sync", "--checksum", str(tmp_path / "src"), s3url("s/")]) == EXIT_OK
    assert capsys.readouterr().out.startswith("nothing to transfer")
    # An equal-size change with an old mtime: only --checksum sees it (ETag is the MD5).
    changed = tmp_path / "src" / "d1" / "f001.bin"
    changed.write_bytes(b"z" * 1001)
    os.utime(changed, (0, 0))
    assert main(["sync", "--json", "--checksum", str(tmp_path / "src"), s3url("s/")]) == 0
    assert last_json(capsys.readouterr().out)["copied"] == 1
    capsys.readouterr()
    assert main(["cat", s3url("s/d1/f001.bin")]) == EXIT_OK


def test_sync_delete_removes_extra_objects_from_the_bucket(
    tmp_path: Path, s3url: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src", count=5)
    (tmp_path / "extra.txt").write_bytes(b"extra")
    assert main(["cp", str(tmp_path / "extra.txt"), s3url("s/extra.txt")]) == EXIT_OK
    assert main(["sync", "--delete", "--dry-run", str(tmp_path / "src"), s3url("s/")]) == 0
    assert "delete  extra.txt" in capsys.readouterr().out
    assert "extra.txt" in listed(s3url, capsys, "s/")
    assert main(["sync", "--delete", str(tmp_path / "src"), s3url("s/")]) == EXIT_OK
    assert listed(s3url, capsys, "s/") == set(files)


def test_mv_within_the_bucket_and_du_after_it(
    tmp_path: Path, s3url: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src", count=8)
    assert main(["cp", "-r", str(tmp_path / "src"), s3url("m/")]) == EXIT_OK
    assert main(["mv", "-r", s3url("m/d0/"), s3url("moved/")]) == EXIT_OK
    assert listed(s3url, capsys, "moved/") == {r[3:] for r in files if r.startswith("d0/")}
    capsys.readouterr()
    assert main(["du", "--json", s3url("m/")]) == EXIT_OK
    report = last_json(capsys.readouterr().out)
    rest = {r: d for r, d in files.items() if not r.startswith("d0/")}
    assert report["objects"] == len(rest)
    assert report["bytes"] == sum(len(d) for d in rest.values())
    assert "d0/" not in {e["path"] for e in report["entries"]}


def test_doctor_on_s3_reports_endpoint_redacted_credential_and_a_passing_round_trip(
    s3url: Any, capsys: pytest.CaptureFixture[str], seaweedfs_server: Any
) -> None:
    assert main(["doctor", s3url("")]) == EXIT_OK
    out = capsys.readouterr().out
    assert seaweedfs_server.secret_key not in out
    assert "credential: the URL's credential pair (hmac:****" in out
    assert f"endpoint:   {seaweedfs_server.endpoint}" in out
    assert "verdict: ok" in out
    assert main(["doctor", "--json", s3url("")]) == EXIT_OK
    report = last_json(capsys.readouterr().out)
    assert report["service"] == "s3"
    assert report["pairs"]["credential"] == "***"
    assert report["capability"]["protocols"]["Segmenter"] is True
    assert report["round_trip"]["ok"] is True
    assert listed(s3url, capsys) == set()


def test_doctor_on_a_missing_bucket_fails_at_write_with_a_fix(
    seaweedfs_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = (
        f"s3://no-such-bucket-{secrets.token_hex(3)}/?endpoint={seaweedfs_server.endpoint}"
        f"&location=us-east-1&credential=hmac:{seaweedfs_server.access_key}:x"
    )
    assert main(["doctor", url]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "write   FAILED" in out
    assert "likely fix:" in out
    assert "verdict: FAILED at write" in out


def test_bench_on_s3_reports_every_figure_and_leaves_nothing(
    s3url: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--json", "--count", "30", "--large", "6MiB", "-j", "4", s3url("")]
    assert main(argv) == EXIT_OK
    report = last_json(capsys.readouterr().out)
    for key in ("put_ops", "get_ops", "head_ops", "large_write_mb_s", "large_read_mb_s"):
        assert report[key] > 0, key
    assert listed(s3url, capsys) == set()


def test_cp_of_a_large_file_goes_in_parallel_parts_and_leaves_no_upload_behind(
    tmp_path: Path, s3url: Any, bucket: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from storager.cli._parts import PART_SIZE, PARTS_MIN_SIZE

    big = tmp_path / "big.bin"
    data = os.urandom(PARTS_MIN_SIZE + PART_SIZE // 2)  # 4.5 parts: the last one short
    big.write_bytes(data)
    assert main(["cp", "--json", str(big), s3url("big/")]) == EXIT_OK
    assert last_json(capsys.readouterr().out)["copied_bytes"] == len(data)
    _, client = bucket
    name = s3url("").split("/")[2]
    key = s3url("big/big.bin").split("/", 3)[3].split("?")[0]
    head = client.head_object(Bucket=name, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-5")  # five parts
    assert main(["cp", s3url("big/big.bin"), str(tmp_path / "back.bin")]) == EXIT_OK
    assert (tmp_path / "back.bin").read_bytes() == data
    assert not client.list_multipart_uploads(Bucket=name).get("Uploads")


def test_a_source_changed_during_a_parts_copy_fails_and_leaves_no_object_nor_upload(
    tmp_path: Path, s3url: Any, bucket: tuple[str, Any]
) -> None:
    import storager
    from storager import PreconditionFailedError
    from storager.cli._parts import PARTS_MIN_SIZE, copy_in_parts

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(PARTS_MIN_SIZE))
    _, client = bucket
    name = s3url("").split("/")[2]
    store_url = s3url("").split("/t-")[0] + "?" + s3url("").split("?", 1)[1]
    key = s3url("changed.bin").split("/", 3)[3].split("?")[0]
    with storager.open("fs:///") as src, storager.open(store_url) as dst:
        listed = src.stat(str(big))
        changed: list[bool] = []

        def change_once(_n: int) -> None:
            # A same-size new version replaces the file once the first part is in.
            if not changed:
                changed.append(True)
                fresh = tmp_path / "fresh.bin"
                fresh.write_bytes(os.urandom(PARTS_MIN_SIZE))
                stamp = big.stat().st_mtime_ns + 1_000_000
                os.utime(fresh, ns=(stamp, stamp))
                os.replace(fresh, big)

        with pytest.raises(PreconditionFailedError, match="changed while it was copied"):
            copy_in_parts(src, str(big), dst, "/" + key, listed, change_once)  # type: ignore[arg-type]
        assert changed
    assert "Contents" not in client.list_objects_v2(Bucket=name, Prefix=key)
    assert not client.list_multipart_uploads(Bucket=name).get("Uploads")
