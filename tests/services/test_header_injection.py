"""Nothing injected through a header-bound pair ever reaches the wire, on any service.

Each store talks to its real server (moto, gcp-storage-emulator, Azurite) through a
recording proxy on 127.0.0.1: a raw TCP relay that keeps every byte the client sends.
A legitimate write first proves the recorder sees the store's traffic; then every
header-bound pair the store's operations accept gets CR, LF, CRLF with a header, NUL,
DEL and a smuggled request: each call raises PairInvalidError and not one byte more
goes out. The s3 lean writer's own last line of defence is checked below the pairs,
against a raw socket server that answers every request head with an empty 200.
"""

from __future__ import annotations

import json
import secrets
import selectors
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from azure.storage.blob import BlobServiceClient

import storager
from storager import (
    ConnectionStringInvalidError,
    InvalidArgumentError,
    NotFoundError,
    PairInvalidError,
    StorageError,
    Storager,
)
from storager._header_pairs import HEADER_PAIRS
from storager.services.s3 import S3Storage
from storager.services.s3._connections import ConnectionPool, UnsafeRequestError
from storager.services.s3._errors import map_error
from tests.servers.azurite import AzuriteServer
from tests.servers.gcs import GCSServer
from tests.servers.moto import MotoServer

PAYLOADS = (
    "text/plain\r",
    "text/plain\n",
    "text/plain\r\nX-Injected: 1",
    "text/plain\x00",
    "text/plain\x7f",
    "text/plain\r\n\r\nGET /smuggled HTTP/1.1",
)
#: Bytes that only an injection would put on the wire.
MARKERS = (b"X-Injected", b"/smuggled", b"INJECTED", b"\x00", b"\x7f")
NON_ASCII = ("text/plain; charset=\u65e5\u672c", "caf\u00e9", "\u65e5\u672c")


class Recorder:
    """A TCP server on 127.0.0.1 that records what clients send.

    With ``upstream``, it relays both ways to that ``(host, port)``; without, it answers
    each request head with an empty ``200``.
    """

    def __init__(self, upstream: tuple[str, int] | None = None) -> None:
        self.upstream = upstream
        self.sent = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _record(self, data: bytes) -> None:
        with self._lock:
            self.sent += data

    def _serve(self, conn: socket.socket) -> None:
        if self.upstream is None:
            self._answer(conn)
            return
        try:
            up = socket.create_connection(self.upstream)
        except OSError:
            conn.close()
            return
        with self._lock:
            self._open.append(up)
        sel = selectors.DefaultSelector()
        sel.register(conn, selectors.EVENT_READ, up)
        sel.register(up, selectors.EVENT_READ, conn)
        try:
            while not self._stopped:
                for key, _ in sel.select(timeout=0.5):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is conn:
                        self._record(data)
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            conn.close()
            up.close()

    def _answer(self, conn: socket.socket) -> None:
        pending = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                self._record(data)
                pending += data
                while b"\r\n\r\n" in pending:
                    _, _, pending = pending.partition(b"\r\n\r\n")
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            return
        finally:
            conn.close()

    def endpoint_for(self, url: str) -> str:
        """``url`` with its host and port replaced by this recorder's."""
        parts = urlsplit(url)
        return parts._replace(netloc=f"127.0.0.1:{self.port}").geturl()

    def mark(self) -> int:
        with self._lock:
            return len(self.sent)

    def since(self, mark: int) -> bytes:
        with self._lock:
            return bytes(self.sent[mark:])

    def close(self) -> None:
        self._stopped = True
        self._listener.close()
        with self._lock:
            for sock in self._open:
                sock.close()


def _upstream(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


# -- stores behind a recording proxy -----------------------------------------------------


Opener = Callable[[Recorder, dict[str, Any]], Storager]


def _s3_opener(moto_server: MotoServer, request_path: str) -> tuple[str, Opener]:
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key,
        region_name=moto_server.region,
    )
    bucket = f"storager-hdr-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)

    def open_store(proxy: Recorder, pairs: dict[str, Any]) -> Storager:
        return S3Storage(
            name=bucket,
            work_dir=f"/t-{secrets.token_hex(4)}/",
            endpoint=proxy.endpoint_for(moto_server.endpoint),
            location="us-east-1",
            credential=f"hmac:{moto_server.access_key}:{moto_server.secret_key}",
            request_path=request_path,
            **pairs,
        )

    return moto_server.endpoint, open_store


def _gcs_opener(gcs_server: GCSServer) -> tuple[str, Opener]:
    bucket = f"storager-hdr-{secrets.token_hex(4)}"
    request = urllib.request.Request(
        f"{gcs_server.endpoint}/storage/v1/b?project={gcs_server.project}",
        data=json.dumps({"name": bucket}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200

    def open_store(proxy: Recorder, pairs: dict[str, Any]) -> Storager:
        return storager.open(
            f"gcs://{bucket}/t-{secrets.token_hex(4)}/",
            endpoint=proxy.endpoint_for(gcs_server.endpoint),
            credential="token:anon",
            **pairs,
        )

    return gcs_server.endpoint, open_store


def _azblob_opener(azurite_server: AzuriteServer) -> tuple[str, Opener]:
    container = f"storager-hdr-{secrets.token_hex(4)}"
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as client:
        client.create_container(container)

    def open_store(proxy: Recorder, pairs: dict[str, Any]) -> Storager:
        return storager.open(
            f"azblob://{container}/t-{secrets.token_hex(4)}/",
            endpoint=proxy.endpoint_for(azurite_server.endpoint),
            credential=f"shared_key:{azurite_server.account_name}:{azurite_server.account_key}",
            **pairs,
        )

    return azurite_server.endpoint, open_store


SERVICES = [
    pytest.param("s3-lean", marks=pytest.mark.s3),
    pytest.param("s3-s3fs", marks=pytest.mark.s3),
    pytest.param("gcs", marks=pytest.mark.gcs),
    pytest.param("azblob", marks=pytest.mark.azblob),
]


@pytest.fixture(params=SERVICES)
def opener(request: pytest.FixtureRequest) -> tuple[str, Opener]:
    name: str = request.param
    if name.startswith("s3-"):
        return _s3_opener(request.getfixturevalue("moto_server"), name.removeprefix("s3-"))
    if name == "gcs":
        return _gcs_opener(request.getfixturevalue("gcs_server"))
    return _azblob_opener(request.getfixturevalue("azurite_server"))


@pytest.fixture
def proxied(opener: tuple[str, Opener]) -> Iterator[tuple[Recorder, Storager, Opener]]:
    upstream, open_store = opener
    proxy = Recorder(_upstream(upstream))
    store = open_store(proxy, {})
    try:
        yield proxy, store, open_store
    finally:
        store.close()
        proxy.close()


def _calls(store: Storager) -> Iterator[tuple[str, str, Callable[..., object]]]:
    """``(op, pair, call)`` for every header-bound pair each operation of ``store`` accepts."""
    capability = store.metadata().capability
    ops: dict[str, Callable[..., Callable[..., object]]] = {
        "write": lambda **kw: lambda: store.write("inj.txt", b"INJECTED", **kw),
        "append": lambda **kw: lambda: store.append("inj.txt", b"INJECTED", **kw),  # type: ignore[attr-defined]
        "create_multipart": lambda **kw: lambda: store.create_multipart("inj.txt", **kw),  # type: ignore[attr-defined]
    }
    for op, pairs in capability.operations.items():
        for pair in sorted(pairs & HEADER_PAIRS):
            assert op in ops, f"no call for {op}, which accepts the header pair {pair}"
            for payload in PAYLOADS:
                if pair == "user_metadata":
                    yield op, pair, ops[op](user_metadata={"k": payload})
                    yield op, pair, ops[op](user_metadata={f"k{payload}": "v"})
                else:
                    yield op, pair, ops[op](**{pair: payload})


def _assert_refused(call: Callable[[], object], op: str, pair: str) -> PairInvalidError:
    with pytest.raises(PairInvalidError) as info:
        call()
    err = info.value
    assert err.op == op
    for word in (pair, "inj.txt"):
        assert word in str(err)
    assert not any(c in str(err) for c in "\r\n\x00\x7f")
    return err


def test_injected_header_pairs_never_reach_the_wire(
    proxied: tuple[Recorder, Storager, Opener],
) -> None:
    proxy, store, _ = proxied
    store.write("ok.txt", b"fine", content_type="text/plain", user_metadata={"k": "v"})
    assert b"fine" in proxy.since(0)  # the recorder sees the store's traffic
    mark, connections = proxy.mark(), proxy.connections
    tried = 0
    for op, pair, call in _calls(store):
        _assert_refused(call, op, pair)
        tried += 1
    assert tried >= len(PAYLOADS) * 2  # at least content_type and user_metadata
    assert proxy.since(mark) == b""  # not one byte more, so no extra request
    assert proxy.connections == connections
    with pytest.raises(NotFoundError):
        store.stat("inj.txt")
    assert not any(m in proxy.since(0) for m in MARKERS)


def test_injected_default_pairs_are_refused_at_construction(
    proxied: tuple[Recorder, Storager, Opener],
) -> None:
    proxy, store, open_store = proxied
    defaults = [
        name
        for name in ("default_content_type", "default_storage_class")
        if name in type(store).init_pairs  # type: ignore[attr-defined]
    ]
    mark = proxy.mark()
    for name in defaults:
        for payload in PAYLOADS:
            with pytest.raises(PairInvalidError) as info:
                open_store(proxy, {name: payload})
            assert info.value.op == "new" and name in str(info.value)
    assert "default_content_type" in defaults
    assert proxy.since(mark) == b""


def test_non_ascii_header_values_are_pair_invalid_not_unexpected(
    proxied: tuple[Recorder, Storager, Opener],
) -> None:
    proxy, store, _ = proxied
    mark = proxy.mark()
    for text in NON_ASCII:
        for given in ({"content_type": text}, {"user_metadata": {"k": text}}):
            with pytest.raises(PairInvalidError) as info:
                store.write("inj.txt", b"x", **given)
            assert "non-ASCII" in str(info.value)
    with pytest.raises(PairInvalidError, match="RFC 7230 token"):
        store.write("inj.txt", b"x", user_metadata={"caf\u00e9": "v"})
    assert proxy.since(mark) == b""
    with pytest.raises(NotFoundError):
        store.stat("inj.txt")


@pytest.mark.gcs
def test_gcs_content_type_with_blank_line_no_longer_rewrites_the_bytes(
    gcs_server: GCSServer,
) -> None:
    _, open_store = _gcs_opener(gcs_server)
    proxy = Recorder(_upstream(gcs_server.endpoint))
    store = open_store(proxy, {})
    try:
        with pytest.raises(PairInvalidError):
            store.write("new.txt", b"hello", content_type="text/plain\n\nINJECTED")
        with pytest.raises(NotFoundError):
            store.stat("new.txt")
        store.write("kept.txt", b"hello", content_type="text/plain")
        with pytest.raises(PairInvalidError):
            store.write("kept.txt", b"other", content_type="text/plain\n\nINJECTED")
        assert store.read("kept.txt") == b"hello"
        assert b"INJECTED" not in proxy.since(0)
    finally:
        store.close()
        proxy.close()


# -- the s3 lean writer's last line of defence -------------------------------------------


@pytest.fixture
def answering() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/b/k", {"x-amz-meta-a": "v\r\nX-Injected: 1"}),
        ("/b/k", {"content-type": "text/plain\r\n\r\nGET /smuggled HTTP/1.1"}),
        ("/b/k", {"x-amz-meta-a": "v\x00"}),
        ("/b/k", {"x-amz-meta-a": "v\n"}),
        ("/b/k", {"X-Injected: 1\r\nx-a": "v"}),
        ("/b/k HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /smuggled", {}),
        ("/b/k\x00", {}),
        ("/b/k", {"x-amz-meta-a": "\u65e5"}),
    ],
)
def test_lean_writer_refuses_control_characters_and_sends_nothing(
    answering: Recorder, target: str, headers: dict[str, str]
) -> None:
    pool = ConnectionPool("http", "127.0.0.1", answering.port, max_idle=2, timeout=5)
    try:
        good = pool.request("PUT", "/b/k", {"x-amz-meta-a": "v"}, b"x")
        assert good.status == 200
        mark, connections = answering.mark(), answering.connections
        with pytest.raises(UnsafeRequestError) as info:
            pool.request("PUT", target, headers, b"INJECTED")
        assert not any(c in str(info.value) for c in "\r\n\x00")
        assert answering.since(mark) == b""
        assert answering.connections == connections
        # The pooled connection stays clean: the next request is the only thing sent.
        assert pool.request("GET", "/b/k", {}).status == 200
        assert answering.since(mark).startswith(b"GET /b/k HTTP/1.1\r\n")
        assert not any(m in answering.since(0) for m in MARKERS)
    finally:
        pool.close()


def test_lean_writer_refusal_is_a_storager_error() -> None:
    err = map_error(UnsafeRequestError("header 'x' refused"), "write", "/a.txt", "b")
    assert isinstance(err, InvalidArgumentError)
    assert (err.op, err.path) == ("write", "/a.txt")


@pytest.mark.s3
def test_lean_client_does_not_retry_or_send_an_unsafe_request(moto_server: MotoServer) -> None:
    _, open_store = _s3_opener(moto_server, "lean")
    proxy = Recorder(_upstream(moto_server.endpoint))
    store = open_store(proxy, {})
    try:
        mark = proxy.mark()
        with pytest.raises(InvalidArgumentError) as info:
            store._transport.put("write", "/k", "k", b"x", {"x-amz-meta-a": "v\r\nX-Injected: 1"})  # type: ignore[attr-defined]
        assert isinstance(info.value.__cause__, UnsafeRequestError)
        assert proxy.since(mark) == b""
    finally:
        store.close()
        proxy.close()


# -- s3 endpoint validation --------------------------------------------------------------

BAD_ENDPOINTS = [
    "ftp://x",
    "http://h:99999",
    "http://h:0",
    "http://h:port",
    "http://:9000",
    "localhost:9000",
    "http://AKIA:s3cr3t-value@h:9000",
    "http://h:9000/?X-Amz-Signature=s3cr3t-value",
    "http://h\n:9000",
]


@pytest.mark.parametrize("request_path", ["lean", "s3fs"])
@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS)
def test_bad_s3_endpoint_is_pair_invalid_from_the_constructor(
    endpoint: str, request_path: str
) -> None:
    with pytest.raises(PairInvalidError) as info:
        S3Storage(name="b", endpoint=endpoint, request_path=request_path, credential="hmac:a:b")
    err = info.value
    assert err.op == "new" and "endpoint" in str(err)
    assert "s3cr3t" not in str(err) and "AKIA" not in str(err)
    assert "\n" not in str(err)


@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS)
def test_bad_s3_endpoint_from_a_connection_string_is_a_storager_value_error(
    endpoint: str,
) -> None:
    from urllib.parse import quote

    url = f"s3://b/?endpoint={quote(endpoint, safe='')}&credential=hmac:a:s3cr3t-key"
    with pytest.raises((PairInvalidError, ConnectionStringInvalidError)) as info:
        storager.open(url)
    err = info.value
    assert isinstance(err, StorageError) and isinstance(err, ValueError)
    assert err.op in ("new", "open") and "endpoint" in str(err)
    assert "s3cr3t" not in str(err) and "AKIA" not in str(err)


@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS)
def test_bad_gcs_endpoint_is_pair_invalid_before_anything_connects(endpoint: str) -> None:
    from storager.services.gcs import GcsStorage

    with pytest.raises(PairInvalidError) as info:
        GcsStorage(name="b", endpoint=endpoint, credential="token:anon")
    err = info.value
    assert err.op == "new" and err.service == "gcs" and "endpoint" in str(err)
    assert "s3cr3t" not in str(err) and "\n" not in str(err)


@pytest.mark.parametrize("endpoint", [*BAD_ENDPOINTS, "http://h:10000/acct;AccountKey=x"])
def test_bad_azblob_endpoint_is_pair_invalid_before_anything_connects(endpoint: str) -> None:
    from storager.services.azblob import AzblobStorage

    with pytest.raises(PairInvalidError) as info:
        AzblobStorage(name="c", endpoint=endpoint, credential="anonymous")
    err = info.value
    assert err.op == "new" and err.service == "azblob" and "endpoint" in str(err)
    assert "s3cr3t" not in str(err) and "\n" not in str(err)


def test_good_s3_endpoints_are_accepted() -> None:
    for endpoint in ("http://127.0.0.1:9000", "https://s3.example.com", "http://h:1/base"):
        S3Storage(name="b", endpoint=endpoint, credential="hmac:a:b").close()


@pytest.mark.parametrize(
    ("url", "shown", "what"),
    [
        ("gcs://b/?endpoint=ftp://x&credential=token:s3cr3t-value", "'ftp://x'", "scheme"),
        ("gcs://b/?endpoint=http://h:99999", "'http://h:99999'", "port"),
        ("azblob://c/?endpoint=ftp://x&credential=anonymous", "'ftp://x'", "scheme"),
        (
            "azblob://c/?endpoint=http%3A%2F%2FAKIA%3As3cr3t-value%40h%3A1&credential=anonymous",
            "'http://***@h:1'",
            "credentials belong in the credential pair",
        ),
    ],
)
def test_bad_gcs_and_azblob_endpoint_from_a_connection_string_names_pair_value_and_fault(
    url: str, shown: str, what: str
) -> None:
    with pytest.raises(PairInvalidError) as info:
        storager.open(url)
    err = info.value
    assert isinstance(err, ValueError) and err.op == "new"
    assert "pair 'endpoint'" in str(err) and shown in str(err) and what in str(err)
    assert "s3cr3t" not in str(err) and "AKIA" not in str(err)
