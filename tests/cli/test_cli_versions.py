"""How sync and the parallel-parts copy tell versions apart: reported MD5s, exact stats."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

import storager
from storager._object import Object
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
