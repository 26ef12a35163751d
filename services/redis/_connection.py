"""Connecting: the credential, TLS, and the link to a standalone server or a cluster.

redis-py's own retries are turned off (``Retry(NoBackoff(), 0)``): a caller who wants
retries wraps the store in storager's Retry, which knows which errors are safe to retry;
two retry layers would multiply attempts and retry commits whose outcome is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from storager.services.redis._link import ClusterLink, Link, ServerLink
from storager.services.redis._reply_wait import DEFAULT_WINDOW

__all__ = ["ConnectOptions", "OptionError", "connect", "parse_credential"]

DEFAULT_PORT = 6379
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 32


class OptionError(ValueError):
    """An init pair's value is unusable; the message names the pair, never its value."""


@dataclass(frozen=True)
class ConnectOptions:
    """Everything needed to connect; the password is left out of ``repr``."""

    host: str
    port: int
    db: int
    cluster: bool
    tls: bool
    tls_ca_file: str | None
    max_connections: int
    timeout: float
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: Seconds a thread polls for a reply before it sleeps (sync, standalone server).
    busy_poll: float = DEFAULT_WINDOW


def parse_credential(credential: str | None) -> tuple[str | None, str | None]:
    """Return ``(username, password)`` from ``password:SECRET`` or ``user:NAME:SECRET``.

    Raises:
        OptionError: Another form was given (the message does not show it).
    """
    if credential is None:
        return None, None
    kind, sep, rest = credential.partition(":")
    if sep and kind == "password":
        return None, rest
    if sep and kind == "user":
        name, sep, secret = rest.partition(":")
        if sep and name:
            return name, secret
    raise OptionError("pair 'credential' must be 'password:SECRET' or 'user:NAME:SECRET'")


def connect(options: ConnectOptions) -> Link:
    """Return the link to the server or cluster of ``options``.

    Nothing is sent yet for a standalone server; a cluster client asks the seed node
    for the slot map at once.
    """
    common: dict[str, Any] = {
        "username": options.username,
        "password": options.password,
        "socket_timeout": options.timeout,
        "socket_connect_timeout": options.timeout,
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
    }
    if options.cluster:
        if options.db:
            raise OptionError("pair 'db' must be 0 (or absent) with a cluster")
        if options.tls:
            common.update(ssl=True, ssl_ca_certs=options.tls_ca_file)
        return ClusterLink(
            redis.cluster.RedisCluster(
                host=options.host,
                port=options.port,
                max_connections=options.max_connections,
                **common,
            )
        )
    if options.tls:
        common.update(ssl_ca_certs=options.tls_ca_file)
    return ServerLink(
        redis.SSLConnection if options.tls else redis.Connection,
        options.max_connections,
        options.timeout,
        busy_poll=options.busy_poll,
        host=options.host,
        port=options.port,
        db=options.db,
        **common,
    )
