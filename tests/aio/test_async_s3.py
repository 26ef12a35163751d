"""The native async s3 store (``services/s3/_async*``) against moto and SeaweedFS.

The async conformance suite runs on it here on moto, and in test_async_services.py on
SeaweedFS (``async_view`` of an s3 store is the native store). The tests below check
what only the native path has: that it is the one ``store.aio`` gives, streaming and
cancelled writes (nothing left behind, no upload), parallel ranged reads, kept-alive
connections per loop, and the request retry policy on a server that throttles.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import secrets
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import storager
from storager import NotFoundError, RateLimitedError, Storager
from storager.aio import AsyncStorager, AsyncView, async_view
from storager.aio.combinators import AsyncLogged, AsyncRetry, AsyncTimeout
from storager.combinators import RetryPolicy
from storager.services.s3 import S3Storage
from storager.services.s3._async import S3Async
from storager.services.s3._async_wire import AsyncConnections
from storager.testing import AsyncStoragerSuite, url_factory
from tests.services import test_s3

moto_bucket = test_s3.moto_bucket
seaweedfs_bucket = test_s3.seaweedfs_bucket

pytestmark = pytest.mark.s3

MiB = 1 << 20


class TestAsyncS3NativeMoto(AsyncStoragerSuite):
    # moto keeps objects in this process's memory: the client's bound is checked on
    # SeaweedFS (test_async_services.py runs the suite there, natively).
    write_memory_limit = None

    def test_write_multipart_unknown_upload_raises_not_found(self, store: Any) -> None:
        pytest.skip("moto answers UploadPart for an unknown upload id with HTTP 500")

    @pytest.fixture
    def storager_factory(self, moto_bucket: test_s3.Bucket) -> Any:
        return url_factory(moto_bucket.url(), credential=moto_bucket.credential)


class TestAsyncTreeOverNativeS3Moto(AsyncStoragerSuite):
    """AsyncLogged(AsyncRetry(AsyncTimeout(s3.aio))): the native store under the combinators."""

    write_memory_limit = None

    def test_write_multipart_unknown_upload_raises_not_found(self, store: Any) -> None:
        pytest.skip("moto answers UploadPart for an unknown upload id with HTTP 500")

    @pytest.fixture
    def storager_factory(self, moto_bucket: test_s3.Bucket) -> Any:
        return url_factory(moto_bucket.url(), credential=moto_bucket.credential)

    def to_async(self, store: Storager) -> AsyncStorager:
        native = store.aio  # type: ignore[attr-defined]
        assert isinstance(native, S3Async)
        return AsyncLogged(AsyncRetry(AsyncTimeout(native, 30.0)))


@pytest.fixture(params=["moto", "seaweedfs"])
def bucket(request: pytest.FixtureRequest) -> test_s3.Bucket:
    return request.getfixturevalue(f"{request.param}_bucket")  # type: ignore[no-any-return]


@pytest.fixture
def sync(bucket: test_s3.Bucket) -> Iterator[S3Storage]:
    store = bucket.open(f"native-{secrets.token_hex(4)}/")
    try:
        yield store
    finally:
        for obj in store.list("", list_mode="prefix"):
            store.delete(obj.path)
        store.close()


@pytest.fixture
def native(sync: S3Storage) -> Iterator[S3Async]:
    twin = async_view(sync)
    assert isinstance(twin, S3Async)
    yield twin
    asyncio.run(twin.close())


def _uploads(bucket: test_s3.Bucket, sync: S3Storage, path: str) -> list[Any]:
    key = sync.metadata().work_dir.lstrip("/") + path
    return test_s3._uploads(bucket, key)


async def _parts(*sizes: int, fail: bool = False, stall: bool = False) -> AsyncIterator[bytes]:
    for i, size in enumerate(sizes):
        await asyncio.sleep(0)
        yield bytes([i + 1]) * size
    if fail:
        raise RuntimeError("source failed")
    if stall:
        await asyncio.sleep(30)  # cancelled long before


def test_store_aio_is_the_native_store_and_s3fs_keeps_the_view(bucket: test_s3.Bucket) -> None:
    store = bucket.open()
    s3fs = bucket.open(request_path="s3fs")
    try:
        assert isinstance(store.aio, S3Async)
        assert store.aio is store.aio
        assert isinstance(s3fs.aio, AsyncView)
        assert isinstance(async_view(store, native=False), AsyncView)
    finally:
        store.close()
        s3fs.close()


def test_stream_larger_than_a_part_is_a_multipart_upload(native: S3Async) -> None:
    async def run() -> tuple[storager.Object, bytes, storager.Object]:
        written = await native.write("big.bin", _parts(6 * MiB, 5 * MiB))
        return (
            written,
            await native.read("big.bin", offset=6 * MiB - 1, size=2),
            await native.stat("big.bin"),
        )

    written, middle, stat = asyncio.run(run())
    assert written.content_length == 11 * MiB
    assert written.etag is not None and written.etag.endswith("-3")  # 5 + 5 + 1 MiB
    assert stat.etag == written.etag and stat.content_length == 11 * MiB
    assert middle == bytes([1, 2])


def test_failed_stream_aborts_its_upload(
    bucket: test_s3.Bucket, sync: S3Storage, native: S3Async
) -> None:
    with pytest.raises(RuntimeError, match="source failed"):
        asyncio.run(native.write("broken.bin", _parts(6 * MiB, fail=True)))
    assert _uploads(bucket, sync, "broken.bin") == []
    with pytest.raises(NotFoundError):
        sync.stat("broken.bin")


def test_cancelled_stream_writes_nothing_and_leaves_no_upload(
    bucket: test_s3.Bucket, sync: S3Storage, native: S3Async
) -> None:
    sync.write("kept.bin", b"old")

    async def run() -> None:
        await asyncio.wait_for(native.write("kept.bin", _parts(6 * MiB, stall=True)), 2.0)

    with pytest.raises(TimeoutError):
        asyncio.run(run())
    assert _uploads(bucket, sync, "kept.bin") == []
    assert sync.read("kept.bin") == b"old"


def test_large_read_is_parallel_ranges_of_one_version(sync: S3Storage, native: S3Async) -> None:
    data = secrets.token_bytes(17 * MiB)  # three ranges of 8 MiB at most
    sync.write("large.bin", data)

    async def run() -> tuple[bytes, bytes]:
        whole = await native.read("large.bin")
        async with await native.open_reader("large.bin", offset=MiB) as reader:
            await reader.seek(7 * MiB, 1)
            part = await reader.read(2 * MiB)
        return whole, part

    whole, part = asyncio.run(run())
    assert whole == data
    assert part == data[8 * MiB : 10 * MiB]


def test_reader_streams_in_bounded_memory(seaweedfs_bucket: test_s3.Bucket) -> None:
    # SeaweedFS: a separate process, so tracemalloc sees only the client's buffers.
    store = seaweedfs_bucket.open(f"native-{secrets.token_hex(4)}/")
    data = secrets.token_bytes(32 * MiB)
    store.write("stream.bin", data)

    async def run() -> tuple[int, int]:
        digest, total = hashlib.sha256(), 0
        tracemalloc.start()
        try:
            async with await store.aio.open_reader("stream.bin") as reader:
                while chunk := await reader.read(MiB):
                    digest.update(chunk)
                    total += len(chunk)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            await store.aio.delete("stream.bin")
            await store.aio.close()
        assert digest.digest() == hashlib.sha256(data).digest()
        return total, peak

    total, peak = asyncio.run(run())
    assert total == 32 * MiB
    # The range being read, its copy as bytes and the range before it: ~13 MiB, not 32.
    assert peak < 20 * MiB


def test_large_bytes_are_sent_without_a_copy(seaweedfs_bucket: test_s3.Bucket) -> None:
    # One PUT of 32 MiB in memory: the transport must not hold a copy of what the socket
    # has not taken yet (it held up to two: a 64 MiB write peaked at 120 MiB).
    store = seaweedfs_bucket.open(f"native-{secrets.token_hex(4)}/")
    data = secrets.token_bytes(32 * MiB)

    async def run() -> tuple[int, bytes]:
        try:
            await store.aio.write("warm", b"x")  # the connection pool exists
            tracemalloc.start()
            try:
                await store.aio.write("big.bin", data)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            return peak, await store.aio.read("big.bin")
        finally:
            await store.aio.delete("big.bin")
            await store.aio.delete("warm")
            await store.aio.close()

    peak, back = asyncio.run(run())
    assert back == data
    assert peak < 8 * MiB


def test_reader_read_ahead_moves_between_loops_of_two_threads(
    sync: S3Storage, native: S3Async, caplog: pytest.LogCaptureFixture
) -> None:
    data = secrets.token_bytes(12 * MiB)
    sync.write("ahead.bin", data)
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()

    async def begin() -> tuple[Any, bytes]:
        reader = await native.open_reader("ahead.bin")
        return reader, await reader.read(MiB)  # the next 4 MiB block starts on this loop

    try:
        reader, first = asyncio.run_coroutine_threadsafe(begin(), other).result(timeout=60)

        async def go_on() -> bytes:
            async with reader:
                return await reader.read(6 * MiB)  # its rest, then the block ahead: refetched

        rest = asyncio.run(go_on())
    finally:
        # Closes that loop's connections (held open by an async generator), then stops it.
        asyncio.run_coroutine_threadsafe(other.shutdown_asyncgens(), other).result(timeout=10)
        other.call_soon_threadsafe(other.stop)
        thread.join(timeout=10)
        other.close()
    assert first + rest == data[: 7 * MiB]
    assert not [r for r in caplog.records if r.name == "asyncio"]


def test_connections_are_kept_alive_per_loop(
    seaweedfs_bucket: test_s3.Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SeaweedFS keeps connections alive (moto's server closes each one).
    opened: list[int] = []
    connect = AsyncConnections._connect

    async def counting(self: AsyncConnections) -> Any:
        opened.append(id(self))
        return await connect(self)

    monkeypatch.setattr(AsyncConnections, "_connect", counting)
    store = seaweedfs_bucket.open(f"native-{secrets.token_hex(4)}/", max_connections=8)

    async def run() -> tuple[int, int]:
        try:
            for i in range(20):
                await store.aio.write(f"k/{i}", b"x")
                assert await store.aio.read(f"k/{i}") == b"x"
            in_turn = len(opened)
            await asyncio.gather(*(store.aio.read(f"k/{i % 20}") for i in range(100)))
            return in_turn, len(opened)
        finally:
            await asyncio.gather(*(store.aio.delete(f"k/{i}") for i in range(20)))
            await store.aio.close()

    in_turn, at_once = asyncio.run(run())
    assert in_turn == 1  # 40 requests in turn: one connection
    assert at_once <= 8  # 100 at once: within max_connections
    assert len(set(opened)) == 1  # one pool: one loop


def test_cancelled_read_does_not_poison_the_pool(sync: S3Storage, native: S3Async) -> None:
    sync.write("r.bin", secrets.token_bytes(16 * MiB))
    sync.write("s.txt", b"small")

    async def run() -> bytes:
        assert await native.read("s.txt") == b"small"  # a kept-alive connection, idle
        task = asyncio.ensure_future(native.read("r.bin"))
        for _ in range(3):
            await asyncio.sleep(0)  # the GET is sent on it; its 8 MiB answer is not all in
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await native.read("s.txt")

    assert asyncio.run(run()) == b"small"


# -- the request retry policy, on a server that throttles ----------------------------------


class _Throttling(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str]

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.seen.append(self.command)
        body = b"<Error><Code>SlowDown</Code><Message>slow down</Message></Error>"
        self.send_response(503)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def throttling() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Throttling,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_throttled_requests_are_retried_by_the_store_policy(
    throttling: tuple[str, list[str]],
) -> None:
    endpoint, seen = throttling
    store = storager.open(f"s3://b/?endpoint={endpoint}&location=us-east-1", credential="hmac:a:b")
    assert isinstance(store, S3Storage)
    store.request_retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, jitter=0.0)

    async def run() -> None:
        try:
            await store.aio.write("a.txt", b"hi")
        finally:
            await store.aio.close()

    with pytest.raises(RateLimitedError) as caught:
        asyncio.run(run())
    assert seen == ["PUT"] * 3
    assert caught.value.op == "write" and caught.value.path.endswith("a.txt")
    assert any("gave up after 3 attempts" in note for note in caught.value.__notes__)


class _ClosingAfterEachAnswer(http.server.BaseHTTPRequestHandler):
    """Answers a GET, then closes the connection without saying so (an idle timeout)."""

    protocol_version = "HTTP/1.1"
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b"fresh"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header("etag", '"e"')
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


def test_a_connection_the_server_closed_while_idle_is_not_an_error() -> None:
    seen: list[str] = []
    handler = type("Handler", (_ClosingAfterEachAnswer,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    store = storager.open(f"s3://b/?endpoint={endpoint}&location=us-east-1", credential="hmac:a:b")
    assert isinstance(store, S3Storage)
    store.request_retry = RetryPolicy(max_attempts=1)  # only the stale-connection resend

    async def run() -> list[bytes]:
        try:
            out = []
            for _ in range(3):
                out.append(await store.aio.read("k"))
                await asyncio.sleep(0.05)  # the server's close arrives while idle
            out.append(await store.aio.read("k"))  # at once: the close may not have
            return out
        finally:
            await store.aio.close()

    try:
        assert asyncio.run(run()) == [b"fresh"] * 4
        assert len(seen) == 4  # each read answered once
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- https: storager's own S3 gateway over TLS, with a throwaway CA ------------------------


@pytest.fixture
def tls_gateway(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import trustme
    import uvicorn

    from storager.gateway import S3App
    from storager.services.memory import MemoryStorage

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    # ssl.create_default_context(), which both request paths use, trusts SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    backing = MemoryStorage()
    app = S3App({"tls": backing}, credentials={"AKIDTLS": "tls-secret"})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        ssl_certfile=str(tmp_path / "cert.pem"),
        ssl_keyfile=str(tmp_path / "key.pem"),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        backing.close()


def test_native_store_speaks_https_with_verified_certificates(
    tls_gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://tls/?endpoint={tls_gateway}&location=us-east-1&force_path_style=true"
    store = storager.open(url, credential="hmac:AKIDTLS:tls-secret")
    assert isinstance(store, S3Storage)

    async def run() -> tuple[bytes, list[str]]:
        await store.aio.write("dir/a.txt", b"over tls")
        listed = [o.path async for o in store.aio.list("dir/")]
        return await store.aio.read("dir/a.txt"), listed

    try:
        assert asyncio.run(run()) == (b"over tls", ["dir/a.txt"])
    finally:
        asyncio.run(store.aio.close())
    # Without the CA the certificate does not verify: refused, and not retried.
    monkeypatch.delenv("SSL_CERT_FILE")
    stranger = storager.open(url, credential="hmac:AKIDTLS:tls-secret")
    assert isinstance(stranger, S3Storage)
    with pytest.raises(storager.StorageError) as caught:
        asyncio.run(stranger.aio.read("dir/a.txt"))
    asyncio.run(stranger.aio.close())
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert not any("attempts" in note for note in getattr(caught.value, "__notes__", ()))
