"""The link to Redis: commands, pipelines and transactions, standalone or cluster.

Every module of the service talks to Redis through a :class:`Link`, in Redis's own
terms: a command is a tuple of its name and arguments, a reply is what the server
sent (RESP2: bytes, int, None or a list of them). Two links exist:

- :class:`ServerLink`, for a standalone server, keeps its connections (redis-py's
  ``Connection``) on a stack of its own, sends packed commands itself, and batches
  the small requests of concurrent threads into shared round trips (``_lane``). redis-py's
  client path (``Redis.execute_command`` over a connection pool) spends about as much
  Python time per command as the round trip does (pool bookkeeping, per-call
  observability, response callbacks); a small object's write, read or stat is one
  round trip, so that time is most of what the service costs on top of the server.
  It also packs commands itself (:func:`pack_commands`), with one buffer per round
  trip instead of redis-py's encoder call per argument.
  ``benchmarks/redis_peers.py`` measures the result against redis-py's own client.
- :class:`ClusterLink`, for Redis Cluster, hands commands to redis-py's
  ``RedisCluster``, which routes each by its keys' slot and follows redirections.

Errors are redis-py's (``ResponseError`` and its kin, ``ConnectionError``,
``TimeoutError``); ``_errors`` maps them.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

from redis import exceptions as rx

from storager.services.redis._lane import Buffer, Lane
from storager.services.redis._reply_wait import DEFAULT_WINDOW, ReplyWait

__all__ = ["AsyncLink", "ClusterLink", "Command", "Link", "ServerLink", "pack_commands"]

Command = Sequence[Any]

#: Arguments longer than this are sent as buffers of their own, not copied.
_COPY_LIMIT = 16 << 10
#: This process's id, kept up to date by an at-fork hook: links compare it with the
#: id they were made in on every call, and os.getpid() is a system call each time.
_process_id = os.getpid()


def _note_fork() -> None:
    global _process_id
    _process_id = os.getpid()


os.register_at_fork(after_in_child=_note_fork)


def pack_commands(commands: Sequence[Command]) -> list[Buffer]:
    """Return ``commands`` in RESP, as few buffers as possible, large values uncopied.

    Arguments are bytes-like, str (sent as UTF-8) or int.

    Raises:
        redis.exceptions.DataError: An argument of another type.
    """
    out: list[Buffer] = []
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for arg in command:
            kind = type(arg)
            if kind is str:
                arg = arg.encode()
            elif kind is int:
                arg = b"%d" % arg
            elif kind is not bytes:
                if not isinstance(arg, bytes | bytearray | memoryview):
                    raise rx.DataError(f"cannot send a {kind.__name__} to Redis")
                view = memoryview(arg)
                if view.nbytes <= _COPY_LIMIT:
                    arg = view.tobytes()
                else:
                    parts.append(b"$%d\r\n" % view.nbytes)
                    out += (b"".join(parts), arg)
                    parts = [b"\r\n"]
                    continue
            if len(arg) > _COPY_LIMIT:
                parts.append(b"$%d\r\n" % len(arg))
                out += (b"".join(parts), arg)
                parts = [b"\r\n"]
            else:
                parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    out.append(b"".join(parts))
    return out


class Link(ABC):
    """How the service sends commands to Redis."""

    @abstractmethod
    def call(self, *args: Any) -> Any:
        """Send one command; return its reply.

        Raises:
            redis.exceptions.ResponseError: The server answered with an error.
        """

    @abstractmethod
    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one round trip (not atomically); return their replies.

        Raises:
            redis.exceptions.ResponseError: The first error any command answered with,
                once every reply is read.
        """

    @abstractmethod
    def transaction(self, commands: Sequence[Command]) -> list[Any]:
        """Run ``commands`` atomically (``MULTI``/``EXEC``) in one round trip.

        Returns:
            Each command's reply; a command that failed while the transaction ran
            (the others still ran) has its ``ResponseError`` in its place.

        Raises:
            redis.exceptions.ResponseError: The server refused to queue a command (an
                unknown command, OOM...), so nothing ran.
        """

    @abstractmethod
    def close(self) -> None:
        """Close every connection; the link must not be used afterwards."""


class AsyncLink(Protocol):
    """How the async store sends commands: :class:`Link`'s methods, awaited."""

    async def call(self, *args: Any) -> Any: ...

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]: ...

    async def transaction(self, commands: Sequence[Command]) -> list[Any]: ...

    async def aclose(self) -> None: ...


class ServerLink(Link):
    """A standalone server, over connections the link keeps on a stack.

    Small commands and transactions (a read, a stat, a commit) go through the link's
    :class:`~storager.services.redis._lane.Lane`: a thread alone sends at once, and
    threads that find another sending have their requests sent together in the next
    round trip (auto-pipelining). Pipelines (batches of chunks, pages of a listing)
    and large requests take a connection of their own. Taking and returning an idle
    connection is a ``list.pop``/``append`` (atomic under the GIL); only a thread that
    finds none idle takes the lock, to open a new connection while fewer than
    ``max_connections`` exist or to wait for one. A child process (``os.fork``) starts
    with no connection and an empty lane: it never shares a socket with its parent.
    """

    #: Commands and transactions packed into at most this many bytes go on the lane
    #: (0: none do; ``benchmarks/redis_peers.py --lane-off`` compares).
    lane_limit = 64 << 10

    def __init__(
        self,
        connection_class: Any,
        max_connections: int,
        wait: float,
        *,
        busy_poll: float = DEFAULT_WINDOW,
        **kwargs: Any,
    ):
        self._connection_class = connection_class
        self._kwargs = kwargs
        self._max = max_connections
        self._wait = wait
        self._idle: list[Any] = []
        self._made = 0
        self._waiting = 0
        self._closed = False
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._pid = _process_id
        self._lane = Lane(self._round_trip, wait)
        self._replies = ReplyWait(busy_poll)

    def call(self, *args: Any) -> Any:
        reply = self._exchange((args,), shared=True)[0]
        if isinstance(reply, rx.ResponseError):
            raise reply
        return reply

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        replies = self._exchange(commands, shared=False)
        for reply in replies:
            if isinstance(reply, rx.ResponseError):
                raise reply
        return replies

    def transaction(self, commands: Sequence[Command]) -> list[Any]:
        replies = self._exchange([("MULTI",), *commands, ("EXEC",)], shared=True)
        for reply in replies[:-1]:
            if isinstance(reply, rx.ResponseError):
                raise reply  # refused while queueing: EXEC discarded everything
        result = replies[-1]
        if isinstance(result, rx.ResponseError):
            raise result
        return list(result)

    def _exchange(self, commands: Sequence[Command], *, shared: bool) -> list[Any]:
        """Send ``commands`` at once and read every reply, errors kept in place.

        A ``shared`` request (a command, a transaction) that is small goes on the lane
        (``_lane``), batched with other threads' requests on one connection; a large
        one, or a pipeline (a batch of chunks, a page of a listing), takes a
        connection of its own, so it never holds up the small requests of others.
        """
        buffers = pack_commands(commands)
        if shared and len(buffers) == 1 and len(buffers[0]) <= self.lane_limit:
            if self._pid != _process_id:
                self._forget_parents_connections()
            return self._lane.exchange(buffers, len(commands))
        return self._round_trip(buffers, len(commands))

    def _round_trip(self, buffers: list[Buffer], count: int) -> list[Any]:
        """Send packed commands on one connection; read ``count`` replies, errors in place."""
        connection = self._take()
        try:
            connection.send_packed_command(buffers, False)
            began = self._replies.poll(connection._sock, self._crowded)
            replies: list[Any] = []
            for _ in range(count):
                try:
                    replies.append(connection.read_response())
                except rx.ResponseError as exc:
                    replies.append(exc)
                if began is not None:  # the first reply, read with polling off
                    self._replies.slept(began)
                    began = None
            return replies
        except BaseException:
            connection.disconnect()
            raise
        finally:
            self._give(connection)

    def _crowded(self) -> bool:
        """Whether other requests are in flight (connections taken besides the
        caller's) or queued on the lane."""
        return self._made - len(self._idle) > 1 or self._lane.crowded()

    def _take(self) -> Any:
        if self._pid != _process_id:
            self._forget_parents_connections()
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._take_slowly()
        if connection.is_connected:
            self._check_idle(connection)
        return connection

    def _check_idle(self, connection: Any) -> None:
        """Reconnect an idle connection the server closed (or that holds stray data).

        A readable idle socket means EOF or a reply nobody read; either way the
        connection is made afresh before a command goes out on it, so a server restart
        or idle timeout does not fail the next command (nor make a commit's outcome
        unknown). Costs one poll of the socket, as redis-py's pool does.
        """
        try:
            if not connection.can_read():
                return
        except (rx.ConnectionError, rx.TimeoutError, OSError):
            pass
        connection.disconnect()
        try:
            connection.connect()
        except BaseException:
            self._give(connection)
            raise

    def _forget_parents_connections(self) -> None:
        """Start afresh in a forked child: the parent's sockets stay the parent's."""
        # Not under the lock: another thread of the parent may have held it at the fork.
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._idle = []
        self._made = 0
        self._waiting = 0
        self._pid = _process_id
        self._lane.reset()

    def _take_slowly(self) -> Any:
        deadline = time.monotonic() + self._wait
        with self._lock:
            if self._closed:
                raise rx.ConnectionError("the store is closed")
            self._waiting += 1
            try:
                while True:
                    with contextlib.suppress(IndexError):
                        return self._idle.pop()
                    if self._made < self._max:
                        self._made += 1
                        break
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._returned.wait(left):
                        raise rx.MaxConnectionsError(
                            "No connection available: all max_connections in use"
                        )
            finally:
                self._waiting -= 1
        try:
            return self._connection_class(**self._kwargs)
        except BaseException:
            with self._lock:
                self._made -= 1
            raise

    def _give(self, connection: Any) -> None:
        if self._closed or self._pid != _process_id:
            connection.disconnect()
            return
        self._idle.append(connection)
        if self._waiting:
            with self._lock:
                self._returned.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                connection.disconnect()


class ClusterLink(Link):
    """Redis Cluster, through redis-py's ``RedisCluster`` (slot routing, redirections)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def call(self, *args: Any) -> Any:
        return self._client.execute_command(*args)

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        return self._run(commands, transaction=False, raise_on_error=True)

    def transaction(self, commands: Sequence[Command]) -> list[Any]:
        return self._run(commands, transaction=True, raise_on_error=False)

    def _run(
        self, commands: Sequence[Command], *, transaction: bool, raise_on_error: bool
    ) -> list[Any]:
        pipe = self._client.pipeline(transaction=transaction)
        try:
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute(raise_on_error=raise_on_error))
        finally:
            pipe.reset()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
