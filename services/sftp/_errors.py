"""The one place the sftp service turns paramiko, SFTP and socket errors into storager errors.

paramiko reports SFTP status codes as ``IOError``: ``SFTP_NO_SUCH_FILE`` and
``SFTP_PERMISSION_DENIED`` carry ``errno.ENOENT`` / ``errno.EACCES`` (so they arrive as
``FileNotFoundError`` / ``PermissionError``); every other status is an ``IOError`` with
the server's text and no errno. SSH-level failures are ``SSHException`` subclasses.

Reasons never quote a vendor message that could hold secrets: authentication and key
errors get fixed words, and only SFTP status texts (which name no credentials) are kept.
"""

from __future__ import annotations

import errno
import logging
import socket

import paramiko

from storager._errors import (
    NotFoundError,
    OperationTimeoutError,
    PathInvalidError,
    PermissionDeniedError,
    ServiceInternalError,
    StorageError,
    UnexpectedError,
)
from storager._service import map_os_error

__all__ = ["KeyPassphraseError", "UnknownHostKeyError", "map_sftp_error"]

logger = logging.getLogger("storager.services.sftp")


class UnknownHostKeyError(paramiko.SSHException):
    """The server's host key is not known, and accepting unknown hosts was not opted in."""

    def __init__(self, host: str, key_name: str, fingerprint: str) -> None:
        self.host = host
        self.key_name = key_name
        self.fingerprint = fingerprint
        super().__init__(f"unknown host key for {host}")


class KeyPassphraseError(paramiko.AuthenticationException):
    """The private key is encrypted and the passphrase given does not decrypt it."""

    def __init__(self) -> None:
        super().__init__("the passphrase does not decrypt the private key")


_CONNECTION_LOST = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, EOFError)


def map_sftp_error(exc: Exception, op: str, service: str, path: str) -> StorageError:
    """Return the storager error that ``exc``, raised by paramiko or a socket, means."""
    if isinstance(exc, UnknownHostKeyError):
        return PermissionDeniedError(
            op,
            service,
            path,
            f"unknown host key for {exc.host} ({exc.key_name} {exc.fingerprint}): add it to "
            "known_hosts, pass it as host_key, or opt in with accept_unknown_host=true",
        )
    if isinstance(exc, paramiko.BadHostKeyException):
        return PermissionDeniedError(op, service, path, "host key mismatch")
    if isinstance(exc, paramiko.PasswordRequiredException):
        return PermissionDeniedError(
            op, service, path, "private key is encrypted: give credential 'passphrase:...'"
        )
    if isinstance(exc, KeyPassphraseError):
        return PermissionDeniedError(
            op, service, path, "credential 'passphrase:...' does not decrypt private_key"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return PermissionDeniedError(op, service, path, "authentication failed")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return ServiceInternalError(op, service, path, "cannot connect to the server")
    if isinstance(exc, paramiko.ChannelException):
        return ServiceInternalError(op, service, path, "the server refused a new channel")
    if isinstance(exc, paramiko.SSHException):
        # "Server connection dropped", "SSH session not active", negotiation failures.
        logger.debug("ssh error in %s %s: %s", op, path, type(exc).__name__)
        return ServiceInternalError(op, service, path, "ssh connection failed or was lost")
    if isinstance(exc, UnicodeError):
        # paramiko encodes names as UTF-8; the guard refuses such paths first.
        shown = path.encode("utf-8", "backslashreplace").decode("utf-8")
        return PathInvalidError(op, service, shown, "path is not valid UTF-8")
    if isinstance(exc, socket.timeout | TimeoutError):
        return OperationTimeoutError(op, service, path)
    if isinstance(exc, _CONNECTION_LOST):
        return ServiceInternalError(op, service, path, "connection lost")
    if isinstance(exc, socket.gaierror):
        return ServiceInternalError(op, service, path, "cannot resolve the server's host name")
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOENT:
            return NotFoundError(op, service, path)
        if exc.errno is None and exc.args:
            # An SFTP status without an errno: the server's own words ("Failure",
            # "Operation unsupported"...).
            text = str(exc.args[0])
            if isinstance(exc, ConnectionError):
                return ServiceInternalError(op, service, path, "connection lost")
            return UnexpectedError(op, service, path, f"sftp: {text}")
    return map_os_error(exc, op, service, path)
