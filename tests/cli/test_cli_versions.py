"""How sync and the parallel-parts copy tell versions apart: reported MD5s, exact stats."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

import storager
from storager._errors import NotFoundError, PreconditionFailedError
from storager._object import Object
from storager._protocols import Segmenter
from storager.cli._parts import copy_in_parts
from storager.cli._sync import plan_sync
from storager.cli._versions import reported_md5


def b64_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def test_sync_checksum_plans_nothing_when_the_reported_base64_md5_matches(tmp_path: Path) -> None:
    files = {"a.txt": b"alpha", "sub/b.txt": b"bravo"}
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with storager.open(f"fs://{tmp_path}") as src, storager.open("memory://") as dst:
        for name, data in files.items():
            dst.write(f"/copy/{name}", data, content_md5=b64_md5(data))
        plan = plan_sync(src, "/", dst, "/copy/", checksum=True)
        assert plan.copies == [] and plan.same == 2
        dst.write("/copy/a.txt", b"ALPHA", content_md5=b64_md5(b"ALPHA"))
        again = plan_sync(src, "/", dst, "/copy/", checksum=True)
        assert [t.name for t in again.copies] == ["a.txt"]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (Object("x", content_md5=b64_md5(b"x")), hashlib.md5(b"x").hexdigest()),
        (
            Object("x", etag='"0CC175B9C0F1B6A831C399E269772661"'),
            "0cc175b9c0f1b6a831c399e269772661",
        ),
        (Object("x", etag='"0cc175b9c0f1b6a831c399e269772661-2"'), None),
        (Object("x", content_md5="not base64!"), None),
        (Object("x", content_md5=base64.b64encode(b"short").decode()), None),
    ],
    ids=["base64", "plain-etag", "multipart-etag", "bad-base64", "wrong-length"],
)
def test_reported_md5_is_lowercase_hex_or_none(obj: Object, expected: str | None) -> None:
    assert reported_md5(obj) == expected


def test_parts_copy_fails_when_the_source_is_rewritten_same_size_within_one_second(
    tmp_path: Path,
) -> None:
    """fs lists no ETag; a same-size rewrite in the same second must still abort the copy."""
    part = 8 << 20
    source_file = tmp_path / "big.bin"
    source_file.write_bytes(b"a" * (part + 1024))
    second = 1_700_000_000
    os.utime(source_file, ns=(second * 10**9 + 100_000_000,) * 2)
    rewritten = [False]

    with storager.open(f"fs://{tmp_path}") as src, storager.open("memory://") as dst:
        listed = src.stat("/big.bin")

        def rewrite_once(_n: int) -> None:
            if not rewritten[0]:
                rewritten[0] = True
                source_file.write_bytes(b"b" * (part + 1024))
                os.utime(source_file, ns=(second * 10**9 + 600_000_000,) * 2)

        assert isinstance(dst, Segmenter)
        with pytest.raises(PreconditionFailedError, match="changed"):
            copy_in_parts(src, "/big.bin", dst, "/copy.bin", listed, rewrite_once)
        assert rewritten[0]
        with pytest.raises(NotFoundError):
            dst.stat("/copy.bin")


def test_parts_copy_of_an_unchanged_source_completes(tmp_path: Path) -> None:
    data = bytes(range(256)) * ((9 << 20) // 256)
    (tmp_path / "big.bin").write_bytes(data)
    with storager.open(f"fs://{tmp_path}") as src, storager.open("memory://") as dst:
        assert isinstance(dst, Segmenter)
        listed = next(o for o in src.list("/") if o.path.endswith("big.bin"))
        assert copy_in_parts(src, "/big.bin", dst, "/copy.bin", listed).size == len(data)
        assert dst.read("/copy.bin") == data
