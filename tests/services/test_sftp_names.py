"""sftp: names the server cannot take are PathInvalidError, naming the operation and path.

paramiko encodes names as UTF-8 (a lone surrogate raised a bare UnicodeEncodeError) and
sshd answered a name over 255 bytes with "Bad message" (an UnexpectedError).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from storager import PathInvalidError
from storager.services.sftp import SftpStorage
from tests.servers.sshd import SSHDServer

pytestmark = pytest.mark.sftp


@pytest.fixture
def store(sshd_server: SSHDServer) -> Iterator[SftpStorage]:
    root = sshd_server.root_dir / f"names-{secrets.token_hex(4)}"
    root.mkdir()
    opened = SftpStorage(
        host=sshd_server.host,
        port=sshd_server.port,
        user=sshd_server.username,
        root=str(root),
        private_key=str(sshd_server.client_key_path),
        known_hosts=str(sshd_server.known_hosts_path),
    )
    yield opened
    opened.close()


BAD_NAMES = {
    "surrogate": "a\udcff",
    "surrogate dir": "d\ud800/f.txt",
    "256 bytes": "x" * 256,
    "256 bytes in utf-8": "é" * 128,
    "long dir": "d/" + "y" * 300 + "/f.txt",
}

OPS: dict[str, Callable[[SftpStorage, str], object]] = {
    "write": lambda s, p: s.write(p, b"x"),
    "read": lambda s, p: s.read(p),
    "open_reader": lambda s, p: s.open_reader(p),
    "stat": lambda s, p: s.stat(p),
    "delete": lambda s, p: s.delete(p),
    "list": lambda s, p: list(s.list(p + "/")),
    "list prefix": lambda s, p: list(s.list(p, list_mode="prefix")),
    "append": lambda s, p: s.append(p, b"x"),
    "create_dir": lambda s, p: s.create_dir(p + "/"),
}


@pytest.mark.parametrize("op", OPS, ids=list(OPS))
@pytest.mark.parametrize("kind", BAD_NAMES, ids=list(BAD_NAMES))
def test_a_name_the_server_cannot_take_is_a_path_error(
    store: SftpStorage, kind: str, op: str
) -> None:
    path = BAD_NAMES[kind]
    with pytest.raises(PathInvalidError) as info:
        OPS[op](store, path)
    error = info.value
    assert error.op == op.split()[0]
    assert isinstance(error, ValueError)
    # The message can be printed and logged: surrogates are escaped, never raw.
    message = str(error)
    message.encode("utf-8")
    assert ("surrogate" in error.reason) if "surrogate" in kind else ("255 bytes" in error.reason)
    shown = path.encode("utf-8", "backslashreplace").decode("utf-8")
    assert shown.rstrip("/") in error.path


def test_copy_and_move_name_the_bad_side(store: SftpStorage) -> None:
    store.write("ok.txt", b"ok")
    with pytest.raises(PathInvalidError, match=r"copy sftp:/a\\udcff"):
        store.copy("ok.txt", "a\udcff")
    with pytest.raises(PathInvalidError, match="longer than 255 bytes"):
        store.move("ok.txt", "z" * 256)
    assert store.read("ok.txt") == b"ok"


def test_names_up_to_255_bytes_work(store: SftpStorage) -> None:
    for name in ("n" * 255, "é" * 127, "d/" + "m" * 255 + "/f.txt"):
        store.write(name, b"fits")
        assert store.read(name) == b"fits"
        assert store.stat(name).content_length == 4
        store.delete(name)
