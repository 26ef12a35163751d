"""The s3 reader on one streaming GET: read in order from one answer, ranged GETs after.

Against real servers (SeaweedFS streams; moto too, or the reader falls back to ranges).
A tiny TCP proxy between the store and SeaweedFS cuts a connection mid-answer, the way
a network does, to check the reader resumes from the right byte.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from storager import NotFoundError, PreconditionFailedError
from storager.services.s3 import S3Storage
from storager.services.s3._http_transport import HttpTransport
from storager.services.s3._reader import StreamingReader

pytestmark = pytest.mark.s3

MiB = 1 << 20
SIZE = 9 * MiB + 12345  # three ranged blocks and a bit: the stream outlives a block


class CuttingProxy:
    """Forwards 127.0.0.1 TCP to ``upstream``; cuts the first answer past ``cut_at`` bytes.

    With ``hold`` set, an answer is not forwarded past ``cut_at`` until ``armed`` is set
    (and then cut there): loopback buffers hold megabytes, so without it the whole answer
    may already sit in the client's socket before the test arms the cut.
    """

    def __init__(self, upstream: tuple[str, int], cut_at: int) -> None:
        self.upstream = upstream
        self.cut_at = cut_at
        self.cuts = 0
        self.armed = threading.Event()
        self.armed.set()
        self.hold = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._start(self._accept)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=10)
            with self._lock:
                self._sockets += [client, server]
            self._start(self._pump, client, server, False)
            self._start(self._pump, server, client, True)

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        sent = 0
        try:
            while not self._stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                past = downstream and sent + len(data) > self.cut_at
                while past and self.hold.is_set() and not self.armed.is_set():
                    if self._stop.is_set():
                        return
                    self.armed.wait(0.05)
                if past and self.armed.is_set():
                    sink.sendall(data[: max(0, self.cut_at - sent)])
                    self.armed.clear()
                    self.cuts += 1
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture(scope="module")
def seaweed(seaweedfs_server: Any) -> Iterator[tuple[Any, str]]:
    client = boto3.client(
        "s3",
        endpoint_url=seaweedfs_server.endpoint,
        aws_access_key_id=seaweedfs_server.access_key,
        aws_secret_access_key=seaweedfs_server.secret_key,
        region_name=seaweedfs_server.region,
    )
    name = f"stream-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    yield seaweedfs_server, name
    client.close()


def _open(server: Any, bucket: str, endpoint: str | None = None, **pairs: Any) -> S3Storage:
    return S3Storage(
        name=bucket,
        endpoint=endpoint or server.endpoint,
        location="us-east-1",
        credential=f"hmac:{server.access_key}:{server.secret_key}",
        work_dir=f"/s-{secrets.token_hex(4)}/",
        **pairs,
    )


@pytest.fixture
def store(seaweed: tuple[Any, str]) -> Iterator[S3Storage]:
    with _open(*seaweed) as store:
        yield store


@pytest.fixture
def proxy(seaweedfs_server: Any) -> Iterator[CuttingProxy]:
    host, port = seaweedfs_server.endpoint.removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port.rstrip("/"))), cut_at=3 * MiB)
    yield proxy
    proxy.close()


def _raw(reader: Any) -> StreamingReader:
    raw = reader.raw
    assert isinstance(raw, StreamingReader)
    return raw


def _read_all(reader: Any, chunk: int) -> bytes:
    parts = []
    while part := reader.read(chunk):
        parts.append(part)
    return b"".join(parts)


@pytest.mark.parametrize("chunk", [8 * MiB, MiB + 7, 100_000])
def test_sequential_read_is_one_stream_and_equals_the_data(store: S3Storage, chunk: int) -> None:
    data = os.urandom(SIZE)
    store.write("big", data)
    pool = store._transport.pool if isinstance(store._transport, HttpTransport) else None
    assert pool is not None
    with store.open_reader("big") as reader:
        assert _read_all(reader, chunk) == data
        assert _raw(reader)._streaming  # never fell back to ranged GETs
    # The stream, read to its end, gave its connection back to the pool.
    assert len(pool._idle) >= 1
    assert store.read("big") == data


def test_offset_and_size_are_streamed(store: S3Storage) -> None:
    data = os.urandom(SIZE)
    store.write("part", data)
    with store.open_reader("part", offset=MiB + 3, size=5 * MiB) as reader:
        assert reader.read() == data[MiB + 3 : 6 * MiB + 3]
        assert _raw(reader)._streaming


def test_seek_mid_stream_then_read(store: S3Storage) -> None:
    data = os.urandom(SIZE)
    store.write("seek", data)
    with store.open_reader("seek") as reader:
        assert reader.read(MiB) == data[:MiB]
        reader.seek(5 * MiB + 1)
        assert reader.read(2 * MiB) == data[5 * MiB + 1 : 7 * MiB + 1]
        assert not _raw(reader)._streaming
        reader.seek(100)
        assert reader.read(300) == data[100:400]
        reader.seek(-10, os.SEEK_END)
        assert reader.read() == data[-10:]


def test_closing_mid_stream_closes_its_connection_and_the_pool_goes_on(
    store: S3Storage,
) -> None:
    data = os.urandom(SIZE)
    store.write("abandoned", data)
    transport = store._transport
    assert isinstance(transport, HttpTransport)
    reader = store.open_reader("abandoned")
    assert reader.read(MiB) == data[:MiB]
    stream = _raw(reader)._stream
    assert stream is not None
    conn = stream._conn
    reader.close()
    assert conn.sock is None  # closed, not pooled half-read
    assert conn not in transport.pool._idle
    # The pool's connections still carry whole answers.
    for _ in range(3):
        assert store.read("abandoned") == data
    with store.open_reader("abandoned") as again:
        assert again.read() == data


def test_a_cut_stream_resumes_with_ranges_from_the_same_byte(
    seaweed: tuple[Any, str], proxy: CuttingProxy
) -> None:
    server, bucket = seaweed
    data = os.urandom(SIZE)
    with _open(server, bucket, f"http://127.0.0.1:{proxy.port}") as store:
        proxy.armed.clear()
        store.write("cut", data)
        proxy.armed.set()
        with store.open_reader("cut") as reader:
            got = _read_all(reader, MiB + 1)
            assert proxy.cuts == 1
            assert not _raw(reader)._streaming
        assert got == data


def test_an_object_overwritten_mid_read_never_mixes_versions(
    seaweed: tuple[Any, str], proxy: CuttingProxy
) -> None:
    server, bucket = seaweed
    old, new = os.urandom(SIZE), os.urandom(SIZE)
    with _open(server, bucket, f"http://127.0.0.1:{proxy.port}") as store:
        proxy.armed.clear()
        store.write("moving", old)
        proxy.hold.set()  # the answer waits at cut_at until the cut is armed
        with store.open_reader("moving") as reader:
            first = reader.read(MiB)
            store.write("moving", new)
            proxy.armed.set()  # the stream is cut: its ranged resumption sees the new ETag
            with pytest.raises((PreconditionFailedError, NotFoundError)):
                _read_all(reader, MiB)
        assert first == old[:MiB]
        assert proxy.cuts == 1
        # Uncut, the stream may finish the version it started on, or fail: never mix.
        proxy.hold.clear()
        proxy.armed.clear()
        store.write("moving", old)
        with store.open_reader("moving") as reader:
            head = reader.read(MiB)
            store.write("moving", new)
            try:
                rest = _read_all(reader, MiB)
            except (PreconditionFailedError, NotFoundError):
                rest = None
        if rest is not None:
            assert head + rest == old
        assert store.read("moving") == new


def test_deleted_before_the_first_read_is_not_found(store: S3Storage) -> None:
    store.write("gone", os.urandom(MiB))
    with store.open_reader("gone") as reader:
        store.delete("gone")
        with pytest.raises(NotFoundError):
            reader.read()


def test_moto_reads_in_order_and_after_a_seek(moto_server: Any) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key,
        region_name=moto_server.region,
    )
    name = f"stream-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    client.close()
    data = os.urandom(5 * MiB + 3)
    with _open(moto_server, name) as store:
        store.write("m", data)
        with store.open_reader("m") as reader:
            assert _read_all(reader, MiB) == data
        with store.open_reader("m") as reader:
            assert reader.read(MiB) == data[:MiB]
            reader.seek(3)
            assert reader.read(MiB) == data[3 : MiB + 3]
