"""The redis service when writers die, stall or race: the old version stays whole, and
after the sweep no chunk is left that no object uses.

Each test runs on the standalone server and on the three-master cluster. A killed writer
is a real process (SIGKILL while it streams chunks); the checks look at the server's keys
with redis-py directly.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

import storager
from storager import ServiceInternalError
from storager.services.redis import RedisStorage
from tests.servers.redis import RedisCluster, RedisServer

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def namespace() -> str:
    """A fresh namespace, so a test sees only its own keys."""
    return f"crash-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Target:
    """Where a test runs: the store's URL and redis-py on the same server or cluster."""

    url: str
    raw: Any


@pytest.fixture(params=["standalone", "cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The standalone server, then the three-master cluster."""
    if request.param == "standalone":
        server: RedisServer = request.getfixturevalue("redis_server")
        client: Any = redis.Redis(host=server.host, port=server.port)
        url = server.url()
    else:
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        client = redis.cluster.RedisCluster(host=cluster.host, port=cluster.port)
        url = cluster.url()
    yield Target(url, client)
    client.close()


@pytest.fixture
def raw(target: Target) -> Any:
    """redis-py on the target, to look behind the service."""
    return target.raw


@pytest.fixture
def open_store(target: Target, namespace: str) -> Iterator[Callable[..., RedisStorage]]:
    """Open stores in ``namespace`` (small chunks, nothing inline); closed after the test."""
    opened: list[RedisStorage] = []

    def open_(**pairs: Any) -> RedisStorage:
        pairs = {"namespace": namespace, "chunk_size": 4096, "inline_limit": 0, **pairs}
        store = storager.open(target.url, **pairs)
        assert isinstance(store, RedisStorage)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def chunk_keys(client: Any, namespace: str) -> list[bytes]:
    """Every chunk key of ``namespace`` (on every master of a cluster)."""
    return list(client.scan_iter(match=f"{namespace}:c:*", count=1000))


def generations(client: Any, namespace: str) -> set[bytes]:
    """The generations that still have chunks in ``namespace``."""
    return {key.split(b":")[2] for key in chunk_keys(client, namespace)}


def manifest_generation(client: Any, namespace: str, path: str) -> bytes:
    value = client.hget(f"{{{namespace}}}:m:{path}", "gen")
    assert isinstance(value, bytes)
    return value


_WRITER = textwrap.dedent(
    """
    import sys, time
    import storager
    url, namespace = sys.argv[1], sys.argv[2]
    store = storager.open(url, namespace=namespace, chunk_size=4096, inline_limit=0)

    def chunks():
        for n in range(100_000):
            yield bytes([n % 251]) * 4096
            time.sleep(0.001)

    store.write("obj.bin", chunks())
    """
)


def test_writer_killed_mid_object_leaves_old_version_and_sweep_leaves_no_orphans(
    target: Target,
    raw: Any,
    namespace: str,
    open_store: Callable[..., RedisStorage],
) -> None:
    store = open_store()
    old = secrets.token_bytes(3 * 4096 + 11)
    store.write("obj.bin", old)
    old_generation = manifest_generation(raw, namespace, "/obj.bin")
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, target.url, namespace],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        # Kill it once it has sent a few batches of chunks of its own generation.
        while len(chunk_keys(raw, namespace)) < 4 + 600:
            assert writer.poll() is None, writer.stderr.read() if writer.stderr else b""
            assert time.monotonic() < deadline, "the writer sent no chunks in 30 s"
            time.sleep(0.02)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    assert store.read("obj.bin") == old
    assert store.stat("obj.bin").content_length == len(old)
    assert raw.zcard(f"{{{namespace}}}:p") == 1  # the dead writer's registration
    assert generations(raw, namespace) - {old_generation}

    report = store.sweep(grace=0)

    assert report.generations == 1 and report.chunks >= 600
    assert generations(raw, namespace) == {old_generation}
    assert raw.zcard(f"{{{namespace}}}:p") == 0 and raw.zcard(f"{{{namespace}}}:g") == 0
    assert raw.hkeys(f"{{{namespace}}}:n") == [old_generation]
    assert store.read("obj.bin") == old


def test_writer_stalled_past_the_grace_fails_cleanly(
    raw: Any, namespace: str, open_store: Callable[..., RedisStorage]
) -> None:
    store = open_store()
    sweeper = open_store()
    store.write("stall.bin", b"old" * 3000)

    def chunks() -> Iterator[bytes]:
        for n in range(64 * 6):
            if n == 64 * 3:
                # The writer pauses; meanwhile a sweep with no grace takes its generation.
                assert sweeper.sweep(grace=0).generations == 1
            yield bytes([n % 256]) * 4096

    with pytest.raises(ServiceInternalError) as info:
        store.write("stall.bin", chunks())
    assert "sweep_grace" in info.value.reason and info.value.retryable
    assert store.read("stall.bin") == b"old" * 3000
    store.sweep(grace=0)
    assert generations(raw, namespace) == {manifest_generation(raw, namespace, "/stall.bin")}


def test_concurrent_chunked_writers_leave_one_whole_version_and_no_orphans(
    raw: Any, namespace: str, open_store: Callable[..., RedisStorage]
) -> None:
    store = open_store()
    writers, chunks = 8, 40
    versions = {bytes([65 + i]) * (chunks * 4096 + i) for i in range(writers)}
    barrier = threading.Barrier(writers)

    def write(i: int) -> None:
        def gen() -> Iterator[bytes]:
            for _ in range(chunks):
                yield bytes([65 + i]) * 4096
                time.sleep(0.0005 * (i % 3))
            yield bytes([65 + i]) * i

        barrier.wait()
        store.write("contended.bin", gen())

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    content = store.read("contended.bin")
    assert content in versions
    store.sweep(grace=0)
    assert generations(raw, namespace) == {manifest_generation(raw, namespace, "/contended.bin")}
    assert raw.hlen(f"{{{namespace}}}:r") == 1
