"""The redis service against a real standalone redis-server: the conformance suite, and
what is particular to it (connection strings, layout, errors, sharing generations
between copies). The cluster runs are in test_redis_cluster.py.

The tests look at the server's keys with redis-py directly, behind the service, never
in place of it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import storager
import storager.services.redis as redis_service
from storager import (
    AlreadyExistsError,
    Copier,
    Direr,
    InsufficientStorageError,
    InvalidArgumentError,
    Mover,
    NotFoundError,
    ObjectModeInvalidError,
    OperationTimeoutError,
    OutcomeUnknownError,
    PairInvalidError,
    PermissionDeniedError,
    PreconditionFailedError,
    ServiceInternalError,
)
from storager._registry import redact_url
from storager.services.redis import RedisStorage
from storager.services.redis._listing import list_index
from storager.testing import StoragerSuite, url_factory
from tests.servers._process import free_port
from tests.servers.redis import RedisServer, start_redis

pytestmark = pytest.mark.redis


class TestRedis(StoragerSuite):
    """Every behaviour contract, against a standalone redis-server."""

    @pytest.fixture
    def storager_factory(self, redis_server: RedisServer) -> Any:
        return url_factory(redis_server.url())


# -- helpers ----------------------------------------------------------------------------


def open_url(url: str, **pairs: Any) -> RedisStorage:
    """Open a connection string that must give a redis store."""
    store = storager.open(url, **pairs)
    assert isinstance(store, RedisStorage)
    return store


@pytest.fixture
def namespace() -> str:
    """A fresh namespace, so a test sees only its own keys."""
    return f"t-{secrets.token_hex(4)}"


@pytest.fixture
def open_store(redis_server: RedisServer, namespace: str) -> Iterator[Callable[..., RedisStorage]]:
    """Open stores on the standalone server in ``namespace``; closed after the test."""
    opened: list[RedisStorage] = []

    def open_(**pairs: Any) -> RedisStorage:
        pairs.setdefault("namespace", namespace)
        store = storager.open(redis_server.url(), **pairs)
        assert type(store) is RedisStorage
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """redis-py on the standalone server, to look behind the service."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()


def chunk_keys(client: redis.Redis, namespace: str) -> set[bytes]:
    """Every chunk key of ``namespace``."""
    return set(client.scan_iter(match=f"{namespace}:c:*", count=1000))


def generations(client: redis.Redis, namespace: str) -> set[bytes]:
    """The generations that still have chunks in ``namespace``."""
    return {key.split(b":")[2] for key in chunk_keys(client, namespace)}


# -- connection strings, layout -----------------------------------------------------------


def test_connection_string_fills_host_port_work_dir_and_pairs(
    redis_server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    url = redis_server.url("/photos/", db="2", namespace=namespace, chunk_size="4096")
    with open_url(url) as store:
        meta = store.metadata()
        assert meta.service == "redis"
        assert meta.work_dir == "/photos/"
        assert meta.name == f"{redis_server.host}:{redis_server.port}/2/{namespace}"
        store.write("a.txt", b"hello")
    assert raw.exists(f"{{{namespace}}}:m:/photos/a.txt".encode()) == 0  # db 0: nothing
    db2 = redis.Redis(host=redis_server.host, port=redis_server.port, db=2)
    try:
        assert db2.hget(f"{{{namespace}}}:m:/photos/a.txt", "data") == b"hello"
        assert db2.zrange(f"{{{namespace}}}:i", 0, -1) == [b"/photos/a.txt"]
    finally:
        db2.flushdb()
        db2.close()


def test_capabilities_match_the_protocols(open_store: Callable[..., RedisStorage]) -> None:
    store = open_store()
    capability = store.metadata().capability
    assert isinstance(store, Copier) and isinstance(store, Mover) and isinstance(store, Direr)
    assert not isinstance(store, storager.Appender)
    assert not isinstance(store, storager.Segmenter)
    assert capability.write_atomic and capability.list_sorted and capability.copy_server_side
    assert capability.accepts("write", "if_match") and capability.accepts("write", "content_md5")


def test_small_objects_live_inline_and_large_ones_in_chunks(
    open_store: Callable[..., RedisStorage], raw: redis.Redis, namespace: str
) -> None:
    store = open_store(chunk_size=4096, inline_limit=1000)
    store.write("small.bin", b"s" * 1000)
    content = secrets.token_bytes(4096 * 3 + 5)
    store.write("large.bin", content, content_type="application/x-test", user_metadata={"k": "v"})
    small = raw.hgetall(f"{{{namespace}}}:m:/small.bin")
    assert small[b"data"] == b"s" * 1000 and b"gen" not in small
    large: dict[bytes, bytes] = raw.hgetall(f"{{{namespace}}}:m:/large.bin")  # type: ignore[assignment]
    assert b"data" not in large
    assert (large[b"size"], large[b"csize"], large[b"chunks"]) == (b"12293", b"4096", b"4")
    assert large[b"ctype"] == b"application/x-test"
    assert json.loads(large[b"meta"]) == {"k": "v"}
    gen = large[b"gen"].decode()
    assert chunk_keys(raw, namespace) == {f"{namespace}:c:{gen}:{n}".encode() for n in range(4)}
    assert store.read("large.bin") == content
    stat = store.stat("large.bin")
    assert (stat.content_length, stat.content_type) == (len(content), "application/x-test")
    assert stat.user_metadata == {"k": "v"}
    assert stat.etag == large[b"etag"].decode() and stat.last_modified is not None


def test_ranged_reads_touch_only_their_chunks(open_store: Callable[..., RedisStorage]) -> None:
    store = open_store(chunk_size=1024, inline_limit=0)
    content = secrets.token_bytes(10 * 1024 + 7)
    store.write("r.bin", content)
    for offset, size in [(0, 1), (1023, 2), (1024, 1024), (5000, 4000), (10 * 1024, 7), (3, 0)]:
        assert store.read("r.bin", offset=offset, size=size) == content[offset : offset + size]
    with store.open_reader("r.bin", offset=100) as reader:
        reader.seek(2000)
        assert reader.read(3000) == content[2100:5100]


def test_overwrite_and_delete_free_old_chunks_after_the_sweep(
    open_store: Callable[..., RedisStorage], raw: redis.Redis, namespace: str
) -> None:
    store = open_store(chunk_size=1024, inline_limit=0)
    store.write("v.bin", b"1" * 5000)
    first = generations(raw, namespace)
    store.write("v.bin", b"2" * 5000)
    assert len(generations(raw, namespace)) == 2  # the old one waits for its grace period
    report = store.sweep(grace=0)
    assert report.generations == 1 and report.chunks == 5
    assert generations(raw, namespace).isdisjoint(first)
    assert store.read("v.bin") == b"2" * 5000
    store.delete("v.bin")
    store.sweep(grace=0)
    assert chunk_keys(raw, namespace) == set()
    assert raw.hlen(f"{{{namespace}}}:r") == 0 and raw.hlen(f"{{{namespace}}}:n") == 0


def test_copies_share_a_generation_until_the_last_one_goes(
    open_store: Callable[..., RedisStorage], raw: redis.Redis, namespace: str
) -> None:
    store = open_store(chunk_size=1024, inline_limit=0)
    content = secrets.token_bytes(4000)
    store.write("a.bin", content)
    store.copy("a.bin", "b.bin")
    store.copy("a.bin", "c/d.bin")
    assert len(generations(raw, namespace)) == 1  # no bytes were copied
    assert store.stat("b.bin").etag != store.stat("a.bin").etag
    store.delete("a.bin")
    store.move("b.bin", "e.bin")
    store.sweep(grace=0)
    assert store.read("e.bin") == content and store.read("c/d.bin") == content
    store.write("c/d.bin", b"other")
    store.sweep(grace=0)
    assert store.read("e.bin") == content
    store.delete("e.bin")
    store.delete("c/d.bin")
    store.sweep(grace=0)
    assert chunk_keys(raw, namespace) == set()


def test_dir_mode_lists_a_deep_subtree_once_across_pages(
    open_store: Callable[..., RedisStorage], namespace: str
) -> None:
    store = open_store()
    keys = [f"t/deep/{i:03d}/x.txt" for i in range(30)] + ["t/a.txt", "t/z/1", "t/zz"]
    for key in keys:
        store.write(key, b"x")
    store.create_dir("t/empty")
    expected = ["t/a.txt", "t/deep/", "t/empty/", "t/z/", "t/zz"]
    assert [o.path for o in store.list("t/")] == expected
    for page_size in (1, 2, 3, 7):
        listed = list_index(
            store._link,
            store._keys,
            b"/t/",
            dir_mode=True,
            shown=lambda p: p[1:],
            page_size=page_size,
        )
        assert [o.path for o in listed] == expected
        prefix = list_index(
            store._link, store._keys, b"/t/", dir_mode=False, shown=str, page_size=page_size
        )
        assert [o.path for o in prefix if not o.is_dir] == sorted("/" + k for k in keys)


def test_conditional_writes_check_the_etag(open_store: Callable[..., RedisStorage]) -> None:
    store = open_store(chunk_size=1024, inline_limit=100)
    first = store.write("c.txt", b"one", if_none_match="*")
    with pytest.raises(AlreadyExistsError):
        store.write("c.txt", b"two", if_none_match="*")
    with pytest.raises(AlreadyExistsError):
        store.write("c.txt", b"two" * 1000, if_none_match=first.etag)
    with pytest.raises(PreconditionFailedError):
        store.write("c.txt", b"two" * 1000, if_match="not-the-etag")
    with pytest.raises(PreconditionFailedError):
        store.write("missing.txt", b"x", if_match=first.etag)
    second = store.write("c.txt", b"two", if_match=first.etag)
    assert store.read("c.txt") == b"two" and second.etag != first.etag
    store.write("c.txt", b"three", if_none_match=first.etag)
    assert store.read("c.txt") == b"three"


def test_refused_chunked_writes_leave_no_chunks(
    open_store: Callable[..., RedisStorage], raw: redis.Redis, namespace: str
) -> None:
    store = open_store(chunk_size=1024, inline_limit=0)
    store.write("kept.bin", b"k" * 3000)
    before = chunk_keys(raw, namespace)
    with pytest.raises(PreconditionFailedError):
        store.write("kept.bin", b"x" * 5000, if_match="wrong")
    with pytest.raises(InvalidArgumentError):
        store.write("kept.bin", b"x" * 5000, content_md5="AAAAAAAAAAAAAAAAAAAAAA==")
    with pytest.raises(InvalidArgumentError):
        store.write("kept.bin", iter([b"x" * 3000, b"y" * 3000]), size=4000)
    with pytest.raises(ObjectModeInvalidError):
        store.write("kept.bin/under", b"x" * 5000)
    assert chunk_keys(raw, namespace) == before
    assert raw.zcard(f"{{{namespace}}}:p") == 0
    assert store.read("kept.bin") == b"k" * 3000
    digest = base64.b64encode(hashlib.md5(b"m" * 5000).digest()).decode()
    assert store.write("md5.bin", b"m" * 5000, content_md5=digest).content_md5 == digest
    assert store.stat("md5.bin").content_md5 == digest


# -- credentials and errors ---------------------------------------------------------------

SECRET = "s3cr3t-" + secrets.token_hex(6)


@pytest.fixture(scope="module")
def locked_server() -> Iterator[RedisServer]:
    """A server that needs a password, with ACL users limited to keys of one namespace:
    alice may do anything there, reader may only read."""
    server = start_redis(
        password=SECRET,
        extra=[
            *("--user", "alice", "on", f">{SECRET}-alice", "~{alice}*", "~alice:*", "+@all"),
            *("--user", "reader", "on", f">{SECRET}-reader", "~{alice}*", "~alice:*"),
            *("+@read", "+@connection"),
        ],
    )
    yield server
    server.stop()


def test_password_credential_works_and_is_never_shown(locked_server: RedisServer) -> None:
    url = locked_server.url(credential=f"password:{SECRET}")
    with open_url(url) as store:
        store.write("x.txt", b"x")
        assert store.read("x.txt") == b"x"
        assert SECRET not in repr(store)
    assert SECRET not in redact_url(url)
    with open_url(
        locked_server.url(), credential=f"user:alice:{SECRET}-alice", namespace="alice"
    ) as store:
        store.write("y.txt", b"y")
        assert store.read("y.txt") == b"y"


@pytest.mark.parametrize(
    "pairs",
    [
        {},
        {"credential": "password:wrong-" + SECRET},
        {"credential": f"user:bob:{SECRET}"},
    ],
    ids=["none", "wrong-password", "unknown-user"],
)
def test_bad_credentials_are_permission_denied_without_the_secret(
    locked_server: RedisServer, pairs: dict[str, str]
) -> None:
    with pytest.raises(PermissionDeniedError) as info:
        storager.open(locked_server.url(), **pairs)
    assert info.value.op == "new"
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert isinstance(info.value, PermissionError)


def test_acl_user_outside_its_keys_is_permission_denied(locked_server: RedisServer) -> None:
    with (
        pytest.raises(PermissionDeniedError) as info,
        open_url(
            locked_server.url(), credential=f"user:alice:{SECRET}-alice", namespace="other"
        ) as store,
    ):
        store.write("z.txt", b"z")
    assert info.value.op == "write" and SECRET not in str(info.value)


def test_malformed_credential_is_pair_invalid_without_the_value(redis_server: RedisServer) -> None:
    with pytest.raises(PairInvalidError) as info:
        storager.open(redis_server.url(), credential=SECRET)
    assert "credential" in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize("namespace", ["", "a{b}", "a b", "x" * 65, "a:b"])
def test_invalid_namespace_is_pair_invalid(redis_server: RedisServer, namespace: str) -> None:
    with pytest.raises(PairInvalidError, match="namespace"):
        storager.open(redis_server.url(), namespace=namespace)


def test_nothing_listening_is_a_retryable_error() -> None:
    port = free_port()
    with pytest.raises(ServiceInternalError) as info:
        storager.open(f"redis://127.0.0.1:{port}/", timeout=2.0)
    assert info.value.retryable and info.value.op == "new"


def test_out_of_memory_is_insufficient_storage() -> None:
    server = start_redis(extra=["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"])
    try:
        with open_url(server.url(), chunk_size=65536) as store:
            store.write("first.bin", b"f" * 1000)
            with pytest.raises(InsufficientStorageError) as info:
                for n in range(200):
                    store.write(f"fill-{n}.bin", secrets.token_bytes(65536))
            assert info.value.op == "write" and isinstance(info.value, OSError)
            assert store.read("first.bin") == b"f" * 1000
    finally:
        server.stop()


def test_key_of_another_type_is_object_mode_invalid(
    open_store: Callable[..., RedisStorage], raw: redis.Redis, namespace: str
) -> None:
    store = open_store()
    raw.set(f"{{{namespace}}}:m:/foreign.txt", b"not a hash")
    for call in (lambda: store.read("foreign.txt"), lambda: store.write("foreign.txt", b"x")):
        with pytest.raises(ObjectModeInvalidError) as info:
            call()
        assert "another type" in info.value.reason


# -- TLS and the rediss scheme --------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Path]]:
    """A redis-server speaking only TLS, and the CA file (its own certificate)."""
    cert, key = _self_signed(tmp_path_factory.mktemp("redis-tls"))
    server = start_redis(tls_files=(cert, key))
    yield server, cert
    server.stop()


def test_rediss_scheme_speaks_tls_and_verifies_the_server(
    tls_server: tuple[RedisServer, Path],
) -> None:
    server, ca_file = tls_server
    url = f"rediss://{server.host}:{server.port}/tls/?tls_ca_file={quote(str(ca_file))}"
    with open_url(url) as store:
        store.write("secure.txt", b"over tls")
        assert store.read("secure.txt") == b"over tls"
        assert store.metadata().work_dir == "/tls/"
    # The same server without the CA: its certificate is not trusted.
    with pytest.raises(ServiceInternalError):
        storager.open(f"rediss://{server.host}:{server.port}/", timeout=5.0)
    # Plain text to a TLS port gets no answer a client can use.
    with pytest.raises((ServiceInternalError, OperationTimeoutError)):
        storager.open(f"redis://{server.host}:{server.port}/", timeout=2.0)


# -- timeouts -------------------------------------------------------------------------------


def test_timed_out_commit_is_outcome_unknown_and_timed_out_read_is_retryable(
    open_store: Callable[..., RedisStorage], raw: redis.Redis
) -> None:
    store = open_store(timeout=0.3)
    store.write("t.txt", b"before")
    raw.client_pause(1000, all=False)  # writes wait, reads go on
    try:
        with pytest.raises(OutcomeUnknownError) as unknown:
            store.write("t.txt", b"after")
        assert not unknown.value.retryable and unknown.value.op == "write"
        assert store.read("t.txt") == b"before"  # paused: it has not run yet
    finally:
        raw.client_unpause()
    raw.client_pause(1000, all=True)
    try:
        with pytest.raises(OperationTimeoutError) as timeout:
            store.stat("t.txt")
        assert timeout.value.retryable and isinstance(timeout.value, TimeoutError)
    finally:
        raw.client_unpause()


def test_close_releases_the_connections(redis_server: RedisServer, raw: redis.Redis) -> None:
    def clients() -> int:
        return int(raw.info("clients")["connected_clients"])

    before = clients()
    stores = [open_url(redis_server.url()) for _ in range(5)]
    for store in stores:
        store.write("c.txt", b"x")
    assert clients() >= before + 5
    for store in stores:
        store.close()
    # The server counts a closed socket on its next event-loop turn, not at once.
    deadline = time.monotonic() + 5
    while clients() != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert clients() == before


# -- expiry -----------------------------------------------------------------------------------


def test_expiring_objects_vanish_and_leave_nothing_after_the_sweep(
    open_store: Callable[..., RedisStorage], raw: redis.Redis, namespace: str
) -> None:
    store = open_store(chunk_size=1024, inline_limit=100)
    store.write("cache/small.txt", b"s", expire=1)
    store.write("cache/large.bin", b"L" * 5000, expire=1)
    store.copy("cache/large.bin", "copy.bin")  # a copy keeps the expiry
    store.write("kept.txt", b"k")
    assert store.read("cache/large.bin") == b"L" * 5000
    assert 0 < raw.pttl(f"{{{namespace}}}:m:/copy.bin") <= 1000
    assert {o.path for o in store.list("")} == {"cache/", "copy.bin", "kept.txt"}
    time.sleep(1.1)
    for path in ("cache/small.txt", "cache/large.bin", "copy.bin"):
        with pytest.raises(NotFoundError):
            store.stat(path)
    with pytest.raises(NotFoundError):
        store.stat("cache")  # no stale entry makes it a directory
    assert [o.path for o in store.list("")] == ["kept.txt"]
    store.write("cache", b"a file where the expired directory was")
    assert chunk_keys(raw, namespace)  # the chunks wait for the grace period
    store.sweep(grace=0)
    assert chunk_keys(raw, namespace) == set()
    assert raw.zrange(f"{{{namespace}}}:i", 0, -1) == [b"/cache", b"/kept.txt"]
    assert raw.zcard(f"{{{namespace}}}:x") == 0 and raw.hlen(f"{{{namespace}}}:r") == 0


def test_overwriting_an_expiring_object_drops_its_expiry(
    open_store: Callable[..., RedisStorage], raw: redis.Redis, namespace: str
) -> None:
    store = open_store(chunk_size=1024, inline_limit=0)
    store.write("e.bin", b"1" * 3000, expire=1)
    store.write("e.bin", b"2" * 3000)
    assert raw.pttl(f"{{{namespace}}}:m:/e.bin") == -1
    time.sleep(1.1)
    assert store.read("e.bin") == b"2" * 3000
    store.sweep(grace=0)
    assert store.read("e.bin") == b"2" * 3000
    assert len(generations(raw, namespace)) == 1
    with pytest.raises(PairInvalidError, match="expire"):
        store.write("zero.bin", b"x", expire=0)


def test_commits_sweep_now_and_then(
    open_store: Callable[..., RedisStorage],
    raw: redis.Redis,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_service, "_SWEEP_INTERVAL", 0.0)
    store = open_store(chunk_size=1024, inline_limit=0, sweep_grace=0.0)
    store.write("n.bin", b"1" * 3000)
    first = generations(raw, namespace)
    store.write("n.bin", b"2" * 3000)  # releases the first generation, then sweeps it
    assert generations(raw, namespace).isdisjoint(first)
    assert len(generations(raw, namespace)) == 1


def test_credential_in_a_connection_string_is_never_shown(locked_server: RedisServer) -> None:
    wrong = quote(f"password:wrong-{SECRET}", safe="")
    with pytest.raises(PermissionDeniedError) as denied:
        storager.open(f"redis://{locked_server.host}:{locked_server.port}/?credential={wrong}")
    with pytest.raises(storager.ConnectionStringInvalidError) as invalid:
        storager.open(
            f"rediss://{locked_server.host}:{locked_server.port}/?credential={wrong}&bogus=1"
        )
    for error in (denied.value, invalid.value):
        assert SECRET not in str(error) and SECRET not in repr(error)
        assert "wrong-" not in str(error)
    assert "credential=***" in str(invalid.value)


def test_read_only_acl_user_reads_stats_and_lists(locked_server: RedisServer) -> None:
    with open_url(
        locked_server.url(), credential=f"user:alice:{SECRET}-alice", namespace="alice"
    ) as writer:
        writer.write("ro/file.txt", b"readable")
    reader = open_url(
        locked_server.url(), credential=f"user:reader:{SECRET}-reader", namespace="alice"
    )
    try:
        assert reader.read("ro/file.txt") == b"readable"
        assert reader.stat("ro").is_dir
        with pytest.raises(NotFoundError):
            reader.stat("ro/missing.txt")
        assert [o.path for o in reader.list("ro/")] == ["ro/file.txt"]
        with pytest.raises(PermissionDeniedError):
            reader.write("ro/new.txt", b"x")
    finally:
        reader.close()
