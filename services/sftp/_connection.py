"""One SSH connection per store: host key checks, authentication, a small pool of SFTP channels.

paramiko's ``SFTPClient`` must not be used from several threads at once, so the store
opens up to :data:`CHANNELS_MAX` SFTP channels over its one SSH transport, each with
its own lock. An operation takes a channel (an idle one first, opening a new one while
under the limit, else the least busy) and holds the channel's lock around each SFTP
call, never while it runs the caller's code (reading the data to write, for example).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import paramiko

from storager.services.sftp._errors import KeyPassphraseError, UnknownHostKeyError

__all__ = ["CHANNELS_MAX", "Channel", "ConnectOptions", "Pool", "parse_credential"]

logger = logging.getLogger("storager.services.sftp")

#: At most this many SFTP channels per store (OpenSSH allows 10 sessions by default).
CHANNELS_MAX = 4
CONNECT_TIMEOUT = 30.0
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


class OptionError(ValueError):
    """An init pair's value is unusable; the message names the pair, never its value."""


@dataclass(frozen=True)
class ConnectOptions:
    """Everything needed to connect; secrets are left out of ``repr``."""

    host: str
    port: int
    user: str
    private_key: str | None
    known_hosts: str | None
    host_key: str | None
    accept_unknown_host: bool
    password: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)


def parse_credential(credential: str | None) -> tuple[str | None, str | None]:
    """Return ``(password, passphrase)`` from ``password:...`` or ``passphrase:...``.

    Raises:
        OptionError: Another form was given (the message does not show it).
    """
    if credential is None:
        return None, None
    kind, sep, secret = credential.partition(":")
    if sep and kind == "password":
        return secret, None
    if sep and kind == "passphrase":
        return None, secret
    raise OptionError("pair 'credential' must be 'password:...' or 'passphrase:...'")


def _host_key_name(host: str, port: int) -> str:
    # The name paramiko looks the server up by, as OpenSSH writes it in known_hosts.
    return host if port == 22 else f"[{host}]:{port}"


def _parse_host_key(line: str) -> paramiko.PKey:
    fields = line.split()
    # Either "type base64 [comment]" (a .pub line) or "hosts type base64 [comment]".
    if len(fields) >= 3 and not fields[1].startswith("AAAA"):
        fields = fields[1:]
    if len(fields) < 2:
        raise OptionError("pair 'host_key' must be a public key line, 'ssh-ed25519 AAAA...'")
    try:
        blob = base64.b64decode(fields[1], validate=True)
        return paramiko.PKey.from_type_string(fields[0], blob)
    except (binascii.Error, ValueError, paramiko.SSHException) as exc:
        raise OptionError(
            "pair 'host_key' is not a public key paramiko understands ('ssh-ed25519 AAAA...')"
        ) from exc


def _read_key(local: str, passphrase: bytes | None) -> paramiko.PKey | None:
    """Return the key, or None when it could not be read with this passphrase."""
    try:
        # The stubs say str, but paramiko passes it to cryptography, which wants bytes.
        return paramiko.PKey.from_path(local, passphrase)  # type: ignore[arg-type]
    except (paramiko.SSHException, ValueError, TypeError):
        # paramiko (through cryptography) says "password was not given", "incorrect
        # password", "not encrypted" or "not a private key" with these types alike.
        return None


def _load_private_key(path: str, passphrase: str | None) -> paramiko.PKey:
    """Load a private key file, decrypting it with ``passphrase`` when it is encrypted.

    Raises:
        OptionError: No key file, or not a key paramiko can read.
        paramiko.PasswordRequiredException: The key is encrypted and no passphrase given.
        KeyPassphraseError: The key is encrypted and the passphrase does not decrypt it.
    """
    local = os.path.expanduser(path)
    if not os.path.isfile(local):
        raise OptionError("pair 'private_key': no file at that path")
    # paramiko takes the passphrase as bytes only (a str is refused as "not a key").
    secret = passphrase.encode("utf-8", "surrogatepass") if passphrase is not None else None
    key = _read_key(local, secret)
    if key is not None:
        return key
    # Tell the failures apart without showing paramiko's words: is the key encrypted?
    unencrypted = _read_key(local, None) if secret is not None else None
    if unencrypted is not None:
        return unencrypted  # a passphrase given for a key that needs none
    if _is_encrypted(local):
        if secret is None:
            raise paramiko.PasswordRequiredException("private key file is encrypted")
        raise KeyPassphraseError
    raise OptionError("pair 'private_key' is not a private key paramiko can read")


def _is_encrypted(local: str) -> bool:
    """Return whether a key file is encrypted (OpenSSH's or PEM's own markers)."""
    try:
        with open(local, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    if b"Proc-Type: 4,ENCRYPTED" in head or b"BEGIN ENCRYPTED PRIVATE KEY" in head:
        return True
    if b"BEGIN OPENSSH PRIVATE KEY" not in head:
        return False
    lines = head.decode("ascii", "replace").splitlines()
    body = "".join(line.strip() for line in lines if line and not line.startswith("-----"))
    try:
        blob = base64.b64decode(body[:200] + "=" * (-len(body[:200]) % 4))
    except (binascii.Error, ValueError):
        return False
    # "openssh-key-v1\0", then the cipher name as an SSH string: "none" when not encrypted.
    magic = b"openssh-key-v1\x00"
    if not blob.startswith(magic) or len(blob) < len(magic) + 4:
        return False
    size = int.from_bytes(blob[len(magic) : len(magic) + 4], "big")
    cipher = blob[len(magic) + 4 : len(magic) + 4 + size]
    return cipher != b"none"


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise UnknownHostKeyError(hostname, key.get_name(), key.fingerprint)


class _AcceptUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        # Never silent: the caller opted in, and the key accepted is on record.
        logger.warning(
            "accepting unknown host key for %s: %s %s (accept_unknown_host=true)",
            hostname,
            key.get_name(),
            key.fingerprint,
        )


def connect(options: ConnectOptions) -> paramiko.SSHClient:
    """Open an authenticated SSH connection, verifying the server's host key.

    Raises:
        OptionError: A pair's value is unusable (key files, host_key).
        UnknownHostKeyError, paramiko.BadHostKeyException: The host key is not trusted.
        paramiko.AuthenticationException: No authentication method was accepted.
        OSError, paramiko.SSHException: The connection failed.
    """
    client = paramiko.SSHClient()
    keys = client.get_host_keys()
    if options.host_key is not None:
        pinned = _parse_host_key(options.host_key)
        keys.add(_host_key_name(options.host, options.port), pinned.get_name(), pinned)
    if options.known_hosts is not None or options.host_key is None:
        path = os.path.expanduser(options.known_hosts or DEFAULT_KNOWN_HOSTS)
        if os.path.isfile(path):
            try:
                keys.load(path)
            except (OSError, paramiko.SSHException, ValueError) as exc:
                raise OptionError("pair 'known_hosts': the file could not be read") from exc
        elif options.known_hosts is not None:
            raise OptionError("pair 'known_hosts': no file at that path")
    client.set_missing_host_key_policy(
        _AcceptUnknown() if options.accept_unknown_host else _RefuseUnknown()
    )
    pkey = None
    if options.private_key is not None:
        pkey = _load_private_key(options.private_key, options.passphrase)
    explicit = pkey is not None or options.password is not None
    try:
        client.connect(
            options.host,
            port=options.port,
            username=options.user,
            pkey=pkey,
            password=options.password,
            allow_agent=not explicit,
            look_for_keys=not explicit,
            timeout=CONNECT_TIMEOUT,
            banner_timeout=CONNECT_TIMEOUT,
            auth_timeout=CONNECT_TIMEOUT,
        )
    except BaseException:
        client.close()
        raise
    return client


def default_user() -> str:
    """Return the local user's name, as ssh does when no user is given."""
    return getpass.getuser()


class Channel:
    """One SFTP session; hold ``lock`` around every call on ``sftp``."""

    __slots__ = ("lock", "sftp", "users")

    def __init__(self, sftp: paramiko.SFTPClient) -> None:
        self.sftp = sftp
        self.lock = threading.RLock()
        self.users = 0


class Pool:
    """The store's SSH connection and its SFTP channels; see the module docstring.

    A connection found dead when a channel is taken is opened again, so an operation
    that failed with a retryable "connection lost" may succeed when retried.
    """

    def __init__(self, options: ConnectOptions) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = connect(options)
        self._channels: list[Channel] = []
        self._closed = False
        try:
            self._channels.append(self._new_channel())
        except BaseException:
            self.close()
            raise

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport() if self._client is not None else None
        if transport is None or not transport.is_active():
            raise paramiko.SSHException("SSH session not active")
        return transport

    def _new_channel(self) -> Channel:
        sftp = paramiko.SFTPClient.from_transport(self._transport())
        if sftp is None:
            raise paramiko.SSHException("the server did not start the sftp subsystem")
        return Channel(sftp)

    def acquire(self) -> Channel:
        """Take a channel for one operation; give it back with :meth:`release`."""
        with self._lock:
            if self._closed:
                raise paramiko.SSHException("store is closed")
            client = self._client
            transport = client.get_transport() if client is not None else None
            if transport is None or not transport.is_active():
                self._reconnect()
            idle = next((ch for ch in self._channels if ch.users == 0), None)
            if idle is None and len(self._channels) < CHANNELS_MAX:
                idle = self._new_channel()
                self._channels.append(idle)
            chosen = idle or min(self._channels, key=lambda ch: ch.users)
            chosen.users += 1
            return chosen

    def release(self, channel: Channel) -> None:
        """Give back a channel taken with :meth:`acquire`."""
        with self._lock:
            channel.users -= 1

    @contextmanager
    def channel(self) -> Iterator[Channel]:
        """Take a channel for the ``with`` block."""
        channel = self.acquire()
        try:
            yield channel
        finally:
            self.release(channel)

    def _reconnect(self) -> None:
        logger.info(
            "sftp connection to %s:%s lost; reconnecting", self._options.host, self._options.port
        )
        self._drop()
        self._client = connect(self._options)

    def _drop(self) -> None:
        for ch in self._channels:
            try:
                ch.sftp.close()
            except Exception:  # closing a dead channel may fail in any way
                logger.debug("closing an sftp channel failed", exc_info=True)
        self._channels = []
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        """Close every channel and the connection; closing twice is fine."""
        with self._lock:
            self._closed = True
            self._drop()
