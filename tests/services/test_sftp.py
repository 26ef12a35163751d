"""The sftp service against OpenSSH's sshd (the ``sshd_server`` fixture).

sshd runs on this machine, so the tests look behind the service at the server's
directory with the os module (temp files left over, files outside the root), never
in place of the service under test.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import storager
from storager import (
    Copier,
    Direr,
    Mover,
    NotFoundError,
    PairInvalidError,
    PathInvalidError,
    PermissionDeniedError,
    StorageError,
)
from storager.services.sftp import TEMP_PREFIX, SftpStorage, _connection
from storager.testing import StoragerSuite, url_factory
from tests.servers.sshd import SSHDServer

pytestmark = pytest.mark.sftp


def sftp_url(server: SSHDServer, root: Path | str | None = None, **query: str) -> str:
    """The connection string of the fixture's server, rooted at ``root``."""
    root_path = str(root if root is not None else server.root_dir)
    params = {
        "private_key": str(server.client_key_path),
        "known_hosts": str(server.known_hosts_path),
        **query,
    }
    encoded = "&".join(f"{key}={quote(value, safe='/')}" for key, value in params.items())
    return f"sftp://{server.username}@{server.host}:{server.port}{quote(root_path)}?{encoded}"


def open_url(url: str) -> SftpStorage:
    """Open a connection string that must give an sftp store."""
    store = storager.open(url)
    assert isinstance(store, SftpStorage)
    return store


@pytest.fixture
def root(sshd_server: SSHDServer) -> Path:
    """A fresh directory under the server's root, for one test."""
    path = sshd_server.root_dir / f"t-{secrets.token_hex(4)}"
    path.mkdir()
    return path


@pytest.fixture
def open_store(sshd_server: SSHDServer, root: Path) -> Iterator[Callable[..., SftpStorage]]:
    """Open stores rooted at ``root`` with the fixture's key; closed after the test."""
    opened: list[SftpStorage] = []

    def open_(**pairs: Any) -> SftpStorage:
        store = storager.open(sftp_url(sshd_server, root), **pairs)
        assert type(store) is SftpStorage
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def direct(server: SSHDServer, root: Path | None = None, **pairs: Any) -> SftpStorage:
    """Open a store from pairs, without the fixture's key files unless given."""
    return SftpStorage(
        host=server.host,
        port=server.port,
        user=server.username,
        root=str(root or server.root_dir),
        **pairs,
    )


# -- the conformance suite --------------------------------------------------------------


class TestSftp(StoragerSuite):
    """Every behaviour contract, against sshd."""

    @pytest.fixture
    def storager_factory(self, sshd_server: SSHDServer) -> Any:
        return url_factory(sftp_url(sshd_server))


# -- connection strings and metadata ----------------------------------------------------


def test_connection_string_fills_host_user_port_and_root(
    sshd_server: SSHDServer, root: Path
) -> None:
    with open_url(sftp_url(sshd_server, root, work_dir="/sub/")) as store:
        meta = store.metadata()
        assert meta.service == "sftp"
        assert meta.name == f"{sshd_server.host}:{sshd_server.port}{root}"
        assert meta.work_dir == "/sub/"
        store.write("a.txt", b"hello")
    assert (root / "sub" / "a.txt").read_bytes() == b"hello"


def test_capabilities_match_the_protocols(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store()
    capability = store.metadata().capability
    assert isinstance(store, Copier) and isinstance(store, Mover) and isinstance(store, Direr)
    assert isinstance(store, storager.Appender)
    assert not isinstance(store, storager.Segmenter)
    assert capability.write_atomic and capability.write_empty
    assert not capability.copy_server_side
    assert capability.accepts("read", "offset") and capability.accepts("read", "size")


def test_missing_root_is_created(sshd_server: SSHDServer, root: Path) -> None:
    target = root / "new" / "deeper"
    with open_url(sftp_url(sshd_server, target)) as store:
        store.write("x.txt", b"x")
    assert (target / "x.txt").read_bytes() == b"x"


# -- host keys ----------------------------------------------------------------------------


def test_unknown_host_key_is_refused_by_default(
    sshd_server: SSHDServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No known_hosts pair: the default ~/.ssh/known_hosts, here a HOME without one.
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(PermissionDeniedError) as info:
        direct(sshd_server, private_key=str(sshd_server.client_key_path))
    assert "unknown host key" in info.value.reason
    assert "accept_unknown_host" in info.value.reason
    assert isinstance(info.value, PermissionError)


def test_unknown_host_key_in_given_known_hosts_is_refused(
    sshd_server: SSHDServer, tmp_path: Path
) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(f"[other.example]:22 {sshd_server.host_key}\n")
    with pytest.raises(PermissionDeniedError, match="unknown host key"):
        direct(sshd_server, private_key=str(sshd_server.client_key_path), known_hosts=str(other))


def test_wrong_host_key_is_refused(sshd_server: SSHDServer) -> None:
    # The client's own public key: a valid ed25519 key, but not the server's.
    wrong = sshd_server.client_key_path.with_suffix(".pub").read_text().strip()
    with pytest.raises(PermissionDeniedError) as info:
        direct(sshd_server, private_key=str(sshd_server.client_key_path), host_key=wrong)
    assert info.value.reason == "host key mismatch"


def test_wrong_key_in_known_hosts_is_refused_even_with_opt_in(
    sshd_server: SSHDServer, tmp_path: Path
) -> None:
    wrong = " ".join(sshd_server.client_key_path.with_suffix(".pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd_server.host}]:{sshd_server.port} {wrong}\n")
    with pytest.raises(PermissionDeniedError) as info:
        direct(
            sshd_server,
            private_key=str(sshd_server.client_key_path),
            known_hosts=str(known),
            accept_unknown_host=True,
        )
    assert info.value.reason == "host key mismatch"


def test_pinned_host_key_is_accepted(
    sshd_server: SSHDServer, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with direct(
        sshd_server,
        root,
        private_key=str(sshd_server.client_key_path),
        host_key=sshd_server.host_key + " a-comment",
    ) as store:
        store.write("pinned.txt", b"ok")
        assert store.read("pinned.txt") == b"ok"


def test_unknown_host_opt_in_accepts_and_logs_the_fingerprint(
    sshd_server: SSHDServer,
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    url = sftp_url(sshd_server, root).split("&known_hosts=")[0] + "&accept_unknown_host=true"
    with caplog.at_level(logging.WARNING, logger="storager.services.sftp"), open_url(url) as store:
        store.write("accepted.txt", b"yes")
        assert store.read("accepted.txt") == b"yes"
    warnings = [r for r in caplog.records if r.name == "storager.services.sftp"]
    assert warnings and "accept_unknown_host" in warnings[0].getMessage()
    assert "SHA256:" in warnings[0].getMessage()


def test_malformed_host_key_is_a_pair_error(sshd_server: SSHDServer) -> None:
    with pytest.raises(PairInvalidError, match="host_key"):
        direct(sshd_server, private_key=str(sshd_server.client_key_path), host_key="nonsense")


# -- authentication and secrets -----------------------------------------------------------


def test_wrong_key_fails_authentication(sshd_server: SSHDServer, tmp_path: Path) -> None:
    # The host's public key is no private key; use a fresh unauthorised key instead.
    import subprocess

    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with pytest.raises(PermissionDeniedError) as info:
        direct(sshd_server, private_key=str(key), known_hosts=str(sshd_server.known_hosts_path))
    assert info.value.reason == "authentication failed"


def test_password_never_shows_in_errors_or_logs(
    sshd_server: SSHDServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-" + secrets.token_hex(8)
    url = sftp_url(sshd_server).split("?")[0]
    url += f"?known_hosts={sshd_server.known_hosts_path}&credential=password:{secret}"
    with caplog.at_level(logging.DEBUG), pytest.raises(PermissionDeniedError) as info:
        storager.open(url)  # sshd takes no passwords here
    assert info.value.reason == "authentication failed"
    shown = [str(info.value), repr(info.value), caplog.text]
    cause = info.value.__cause__
    while cause is not None:
        shown += [str(cause), repr(cause)]
        cause = cause.__cause__
    assert all(secret not in text for text in shown)


def test_bad_credential_form_does_not_echo_it(sshd_server: SSHDServer) -> None:
    secret = "token-" + secrets.token_hex(8)
    with pytest.raises(PairInvalidError) as info:
        direct(sshd_server, credential=secret)
    assert secret not in str(info.value)
    assert "credential" in str(info.value)


def test_key_material_never_shows_in_repr_or_errors(
    sshd_server: SSHDServer, open_store: Callable[..., SftpStorage], tmp_path: Path
) -> None:
    material = sshd_server.client_key_path.read_text()
    body = "".join(material.splitlines()[1:-1])
    store = open_store()
    with pytest.raises(NotFoundError) as missing:
        store.read("nope.txt")
    texts = [repr(store), str(store), str(missing.value), repr(store.metadata())]
    # A key file that is not a key: its content must not be echoed either.
    garbage = tmp_path / "not-a-key"
    garbage.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETSTUFF42\n")
    with pytest.raises(PairInvalidError) as bad_key:
        direct(sshd_server, private_key=str(garbage), known_hosts=str(sshd_server.known_hosts_path))
    texts.append(str(bad_key.value))
    assert all(body[:40] not in text and "SECRETSTUFF42" not in text for text in texts)
    assert "private_key" in str(bad_key.value)


# -- confinement ------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the server's root, with a file the store must not reach."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_bytes(b"outside secret")
    return path


def test_symlink_escape_is_refused(
    open_store: Callable[..., SftpStorage], root: Path, outside: Path
) -> None:
    (root / "dir-link").symlink_to(outside)
    (root / "file-link").symlink_to(outside / "secret.txt")
    store = open_store()
    attempts: list[Callable[[], object]] = [
        lambda: store.read("file-link"),
        lambda: store.stat("file-link"),
        lambda: store.open_reader("file-link"),
        lambda: store.read("dir-link/secret.txt"),
        lambda: store.stat("dir-link/secret.txt"),
        lambda: store.write("dir-link/new.txt", b"escaped"),
        lambda: store.write("dir-link/deep/new.txt", b"escaped"),
        lambda: store.write("dir-link/secret.txt", b"overwritten"),
        lambda: store.append("file-link", b"appended"),
        lambda: store.append("dir-link/secret.txt", b"appended"),
        lambda: store.copy("file-link", "copied.txt"),
        lambda: store.copy("copied-src.txt", "dir-link/copied.txt"),
        lambda: store.move("moved-src.txt", "dir-link/moved.txt"),
        lambda: store.create_dir("dir-link/made"),
        lambda: store.delete("dir-link/secret.txt"),
        lambda: list(store.list("dir-link/")),
        lambda: list(store.list("dir-link/", list_mode="prefix")),
    ]
    store.write("copied-src.txt", b"inside")
    store.write("moved-src.txt", b"inside")
    for attempt in attempts:
        with pytest.raises(PathInvalidError, match="outside the store's root"):
            attempt()
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"outside secret"
    assert store.read("moved-src.txt") == b"inside"


def test_symlink_inside_root_is_followed(
    open_store: Callable[..., SftpStorage], root: Path
) -> None:
    (root / "real").mkdir()
    (root / "real" / "data.txt").write_bytes(b"inside data")
    (root / "link.txt").symlink_to(root / "real" / "data.txt")
    (root / "dir-link").symlink_to("real")
    store = open_store()
    assert store.read("link.txt") == b"inside data"
    assert store.stat("link.txt").content_length == len(b"inside data")
    assert store.read("dir-link/data.txt") == b"inside data"
    listed = {obj.path: obj.mode for obj in store.list("")}
    assert listed["link.txt"] == storager.ObjectMode.LINK


def test_dot_dot_cannot_leave_the_root(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store(work_dir="/a/")
    with pytest.raises(PathInvalidError):
        store.read("../../secret.txt")


# -- atomic writes ----------------------------------------------------------------------


def test_failed_write_keeps_old_content_and_leaves_no_temp_file(
    open_store: Callable[..., SftpStorage], root: Path
) -> None:
    store = open_store()
    store.write("dir/obj.bin", b"old content")

    def failing() -> Iterator[bytes]:
        yield b"x" * (1 << 20)
        yield b"y" * (1 << 20)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):  # the caller's own error
        store.write("dir/obj.bin", failing())
    assert store.read("dir/obj.bin") == b"old content"
    assert os.listdir(root / "dir") == ["obj.bin"]
    with pytest.raises(StorageError):
        store.write("dir/other.bin", b"0123456789", size=5)
    assert os.listdir(root / "dir") == ["obj.bin"]


def test_temp_files_never_show_in_listings(
    open_store: Callable[..., SftpStorage], root: Path
) -> None:
    store = open_store()
    store.write("a.txt", b"a")
    # A temp file of a write in flight (or of a crashed client).
    (root / f"{TEMP_PREFIX}deadbeef-0").write_bytes(b"partial")
    assert [o.path for o in store.list("")] == ["a.txt"]
    assert [o.path for o in store.list("", list_mode="prefix")] == ["a.txt"]
    with pytest.raises(PathInvalidError):
        store.read(f"{TEMP_PREFIX}deadbeef-0")


def test_reader_keeps_its_version_while_a_write_replaces_it(
    open_store: Callable[..., SftpStorage],
) -> None:
    store = open_store()
    old = secrets.token_bytes(3 << 20)
    store.write("versioned.bin", old)
    with store.open_reader("versioned.bin") as reader:
        head = reader.read(1000)
        store.write("versioned.bin", b"new")
        assert head + reader.read() == old
    assert store.read("versioned.bin") == b"new"


# -- operations beyond the suite --------------------------------------------------------


def test_stat_fills_length_and_last_modified(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store()
    store.write("d/f.txt", b"12345")
    obj = store.stat("d/f.txt")
    assert obj.content_length == 5
    assert obj.last_modified is not None and obj.last_modified.tzinfo is not None
    directory = store.stat("d/")
    assert directory.is_dir and directory.path == "d/"


def test_large_ranged_read_matches(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store()
    content = secrets.token_bytes(9 << 20)
    store.write("big.bin", content)
    assert store.read("big.bin") == content
    assert store.read("big.bin", offset=12345, size=5 << 20) == content[12345 : 12345 + (5 << 20)]
    with store.open_reader("big.bin", offset=7) as reader:
        assert reader.read() == content[7:]


def test_copy_streams_large_object(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store()
    content = secrets.token_bytes(6 << 20)
    store.write("src.bin", content)
    store.copy("src.bin", "nested/dst.bin")
    assert store.read("nested/dst.bin") == content


def test_append_adds_to_the_end(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store()
    store.append("log.txt", b"one,")
    obj = store.append("log.txt", iter([b"two,", b"three"]))
    assert obj.content_length == len(b"one,two,three")
    assert store.read("log.txt") == b"one,two,three"


def test_failed_append_leaves_object_as_it_was(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store()
    store.write("log.txt", b"kept")
    with pytest.raises(StorageError):
        store.append("log.txt", b"too long", size=3)

    def failing() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        store.append("log.txt", failing())
    assert store.read("log.txt") == b"kept"


def test_delete_directory_and_non_empty_directory(
    open_store: Callable[..., SftpStorage],
) -> None:
    store = open_store()
    store.create_dir("empty/")
    store.delete("empty/")
    with pytest.raises(NotFoundError):
        store.stat("empty/")
    store.write("full/x.txt", b"x")
    with pytest.raises(storager.ObjectModeInvalidError):
        store.delete("full/")
    store.delete("x-missing/")
    store.delete("full/x.txt/")  # names no directory: nothing to do
    assert store.read("full/x.txt") == b"x"


def test_threads_share_one_store(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store()
    payloads = {f"t/{i}.bin": secrets.token_bytes(200_000 + i) for i in range(24)}

    def round_trip(key: str) -> bool:
        store.write(key, payloads[key])
        with store.open_reader(key) as reader:
            streamed = reader.read()
        return store.read(key) == payloads[key] == streamed

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(round_trip, payloads))
    assert {o.path for o in store.list("t/")} == set(payloads)


def test_lost_connection_reconnects_on_next_operation(
    open_store: Callable[..., SftpStorage],
) -> None:
    store = open_store()
    store.write("before.txt", b"1")
    pool = store._pool
    assert pool is not None and pool._client is not None
    transport = pool._client.get_transport()
    assert transport is not None
    transport.close()  # as if the server dropped the connection
    # The next operation sees the dead transport and connects again.
    assert store.read("before.txt") == b"1"


def test_closed_store_raises_storage_error(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store()
    store.close()
    store.close()
    with pytest.raises(StorageError):
        store.read("a.txt")


def test_concurrent_closes_are_safe(open_store: Callable[..., SftpStorage]) -> None:
    store = open_store()
    threads = [threading.Thread(target=store.close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store._pool is not None and store._pool._closed


def test_writes_interleaved_with_reads_on_one_channel_finish(
    open_store: Callable[..., SftpStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    # paramiko drops pipelined write acknowledgements that another call reads first;
    # a writer that left them outstanding would then wait forever. Force one channel.
    store = open_store()
    content = secrets.token_bytes(5 << 20)
    store.write("src.bin", content)
    monkeypatch.setattr(_connection, "CHANNELS_MAX", 1)
    single = open_store()
    with single.open_reader("src.bin") as reader:
        # The reader's chunks are read between the writer's chunks, on one channel.
        single.write("streamed.bin", reader)
    single.copy("src.bin", "copied.bin")
    assert single.read("streamed.bin") == single.read("copied.bin") == content
    # Another thread's calls read between the writer's chunks, on the same channel.
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            single.stat("src.bin")

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        chunk = secrets.token_bytes(256 << 10)
        single.write("polled.bin", (chunk for _ in range(64)))
    finally:
        done.set()
        poller.join()
    assert single.stat("polled.bin").content_length == 64 * len(chunk)
    assert single._pool is not None and len(single._pool._channels) == 1
