"""sftp: private keys protected by a passphrase, against sshd (item 5 of issue 8).

paramiko takes a key's passphrase as bytes only; a str passphrase used to be refused
as "not a private key", so no encrypted key ever worked.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

import storager
from storager import PairInvalidError, PermissionDeniedError, StorageError
from storager.services.sftp import SftpStorage
from tests.servers.sshd import SSHDServer

pytestmark = pytest.mark.sftp

PASSPHRASE = "pass-" + secrets.token_hex(6)


def _keygen(path: Path, passphrase: str, *options: str) -> str:
    """Write an encrypted key pair; return its public line."""
    subprocess.run(
        ["ssh-keygen", "-q", *options, "-N", passphrase, "-C", "enc", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text()


@pytest.fixture(scope="module")
def keys(sshd_server: SSHDServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An authorised ed25519 key (OpenSSH format) and an RSA key (PEM), both encrypted."""
    folder = tmp_path_factory.mktemp("keys")
    made = {"ed25519": folder / "ed25519", "rsa": folder / "rsa"}
    sshd_server.authorize_key(_keygen(made["ed25519"], PASSPHRASE, "-t", "ed25519"))
    sshd_server.authorize_key(
        _keygen(made["rsa"], PASSPHRASE, "-t", "rsa", "-b", "2048", "-m", "PEM")
    )
    return made


def url(server: SSHDServer, key: Path, credential: str | None) -> str:
    query = f"private_key={quote(str(key))}&known_hosts={quote(str(server.known_hosts_path))}"
    if credential is not None:
        query += "&credential=" + quote(credential, safe="")
    return f"sftp://{server.username}@{server.host}:{server.port}{server.root_dir}?{query}"


def shown(exc: BaseException, log: str) -> list[str]:
    """Everything an error and its causes show, plus the log."""
    texts = [log]
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_an_encrypted_key_works_with_its_passphrase(
    sshd_server: SSHDServer, keys: dict[str, Path], kind: str
) -> None:
    name = f"enc-{kind}-{secrets.token_hex(3)}.txt"
    with storager.open(url(sshd_server, keys[kind], f"passphrase:{PASSPHRASE}")) as store:
        assert isinstance(store, SftpStorage)
        store.write(name, b"unlocked")
        assert store.read(name) == b"unlocked"
    assert (sshd_server.root_dir / name).read_bytes() == b"unlocked"
    # The same from pairs, without a connection string.
    with SftpStorage(
        host=sshd_server.host,
        port=sshd_server.port,
        user=sshd_server.username,
        root=str(sshd_server.root_dir),
        private_key=str(keys[kind]),
        known_hosts=str(sshd_server.known_hosts_path),
        credential=f"passphrase:{PASSPHRASE}",
    ) as store:
        assert store.read(name) == b"unlocked"


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_a_wrong_passphrase_is_refused_without_echoing_it(
    sshd_server: SSHDServer, keys: dict[str, Path], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-" + secrets.token_hex(6)
    with caplog.at_level(logging.DEBUG), pytest.raises(PermissionDeniedError) as info:
        storager.open(url(sshd_server, keys[kind], f"passphrase:{wrong}"))
    assert info.value.op == "new"
    assert "passphrase" in info.value.reason and "private_key" in info.value.reason
    assert isinstance(info.value, PermissionError)
    assert all(
        wrong not in text and PASSPHRASE not in text for text in shown(info.value, caplog.text)
    )


def test_an_encrypted_key_without_a_passphrase_says_so(
    sshd_server: SSHDServer, keys: dict[str, Path]
) -> None:
    with pytest.raises(PermissionDeniedError, match="encrypted: give credential 'passphrase"):
        storager.open(url(sshd_server, keys["ed25519"], None))


def test_a_passphrase_for_a_plain_key_is_ignored(sshd_server: SSHDServer) -> None:
    with storager.open(url(sshd_server, sshd_server.client_key_path, "passphrase:unused")) as store:
        assert isinstance(store, SftpStorage)
        name = f"plain-{secrets.token_hex(3)}.txt"
        store.write(name, b"plain")
        assert store.read(name) == b"plain"


def test_a_file_that_is_no_key_stays_a_pair_error(sshd_server: SSHDServer, tmp_path: Path) -> None:
    public = sshd_server.client_key_path.with_suffix(".pub")
    with pytest.raises(PairInvalidError, match="private_key") as info:
        storager.open(url(sshd_server, public, f"passphrase:{PASSPHRASE}"))
    assert isinstance(info.value, StorageError)
    assert PASSPHRASE not in str(info.value)
