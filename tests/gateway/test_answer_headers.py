"""Headers every object answer carries: Last-Modified in RFC 7231 form and a request id
of its own per request."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from storager.gateway._http import http_date
from tests.gateway.conftest import Gateway


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_last_modified_is_the_rfc_7231_date_of_any_time_in_any_zone(
    moment: datetime, offset_minutes: int
) -> None:
    in_utc = moment.replace(tzinfo=UTC)
    expected = format_datetime(in_utc, usegmt=True)
    assert http_date(in_utc) == expected
    assert http_date(in_utc.astimezone(timezone(timedelta(minutes=offset_minutes)))) == expected
    assert http_date(moment) == expected  # a naive time is taken as UTC


def test_each_answer_has_a_request_id_of_its_own(gateway: Gateway, prefix: str) -> None:
    s3 = gateway.client()
    s3.put_object(Bucket="mem", Key=f"{prefix}a", Body=b"x")
    ids = [
        s3.head_object(Bucket="mem", Key=f"{prefix}a")["ResponseMetadata"]["RequestId"]
        for _ in range(5)
    ]
    assert len(set(ids)) == 5
    assert all(re.fullmatch(r"[0-9a-f]{16,}", one) for one in ids), ids


_FORKED_IDS = r"""
import asyncio, os, sys
from storager.gateway import S3App
from storager.services.memory import MemoryStorage

app = S3App({"b": MemoryStorage()}, anonymous=True)
ids = []

async def send(message):
    for name, value in message.get("headers", []):
        if name == b"x-amz-request-id":
            ids.append(value.decode())

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

def one():
    scope = {"type": "http", "method": "HEAD", "path": "/b", "raw_path": b"/b",
             "query_string": b"", "headers": [(b"host", b"127.0.0.1")]}
    asyncio.run(app(scope, receive, send))

one()
read, write = os.pipe()
child = os.fork()
if child == 0:
    one()
    os.write(write, ids[-1].encode())
    os._exit(0)
os.waitpid(child, 0)
one()
print(ids[0], ids[-1], os.read(read, 100).decode())
"""


def test_a_forked_child_answers_with_request_ids_of_its_own() -> None:
    # An app made before a fork (a pre-forking server) must not repeat ids across children.
    done = subprocess.run(
        [sys.executable, "-c", _FORKED_IDS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    first, parent_next, child_next = done.stdout.split()
    assert parent_next[:8] == first[:8]  # the parent keeps counting under its prefix
    assert child_next[:8] != first[:8]  # the child took a prefix of its own
    assert len({first, parent_next, child_next}) == 3
