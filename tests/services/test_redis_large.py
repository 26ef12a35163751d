"""A 1 GiB object through the redis service, past Redis's 512 MB value limit, with the
client's memory bounded whatever the object's size.

The round trip runs in a child process so that its peak resident set (``VmHWM``)
is its own, once for 64 MiB and once for 1 GiB: the write streams from a generator and
the read goes through open_reader, both a MiB at a time, and each side is checked by
SHA-256.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20

_ROUND_TRIP = textwrap.dedent(
    """
    import hashlib, json, sys, time
    import storager

    def peak_kib():
        # VmHWM belongs to this process image: ru_maxrss would carry the peak of the
        # pytest process that started us across execve (getrusage(2)).
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmHWM in /proc/self/status")

    url, namespace, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = storager.open(url, namespace=namespace)
    base = bytes(range(256)) * 4096
    written = hashlib.sha256()

    def chunks():
        for n in range(mib):
            chunk = n.to_bytes(8, "big") + base[8:]
            written.update(chunk)
            yield chunk

    start = time.monotonic()
    obj = store.write("huge.bin", chunks())
    wrote = time.monotonic() - start
    after_write = peak_kib()
    read = hashlib.sha256()
    total = 0
    start = time.monotonic()
    with store.open_reader("huge.bin") as reader:
        while block := reader.read(1 << 20):
            read.update(block)
            total += len(block)
    took = time.monotonic() - start
    print(json.dumps({
        "length": obj.content_length, "stat": store.stat("huge.bin").content_length,
        "read": total, "same": read.hexdigest() == written.hexdigest(),
        "rss_after_write_kib": after_write,
        "rss_kib": peak_kib(),
        "write_s": wrote, "read_s": took,
    }))
    store.delete("huge.bin")
    store.sweep(grace=0)
    """
)


def _round_trip(server: RedisServer, mib: int) -> dict[str, Any]:
    """Run the round trip of a ``mib`` MiB object in a child; return what it measured."""
    namespace = f"huge-{secrets.token_hex(4)}"
    done = subprocess.run(
        [sys.executable, "-c", _ROUND_TRIP, server.url(), namespace, str(mib)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["length"] == result["stat"] == result["read"] == mib * MiB
    assert result["same"]
    raw = redis.Redis(host=server.host, port=server.port)
    try:
        assert not list(raw.scan_iter(match=f"{namespace}:*", count=1000))
        assert raw.zcard(f"{{{namespace}}}:i") == 0
    finally:
        raw.close()
    return result


def test_one_gib_round_trip_in_bounded_client_memory(redis_server: RedisServer) -> None:
    small = _round_trip(redis_server, 64)
    huge = _round_trip(redis_server, 1024)
    # Measured: 45 MiB for both sizes in a child run alone; once 125 MiB for the 1 GiB
    # object inside the whole redis test run (glibc may keep freed chunk buffers in its
    # heap). What must hold is that sixteen times the data does not grow the client
    # much, and that it stays far from the object's 1,024 MiB.
    assert huge["rss_kib"] < small["rss_kib"] + 64 * 1024, (small, huge)
    assert huge["rss_kib"] < 200 * 1024, str(huge)
