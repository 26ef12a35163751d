"""The redis service's link to a standalone server: its connection stack, its packing
of commands, and the staged commit, against a real redis-server."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis import exceptions as rx

import storager
from storager import AlreadyExistsError, ObjectModeInvalidError
from storager.services.redis import RedisStorage
from storager.services.redis._lane import Lane, _Request
from storager.services.redis._link import ServerLink, pack_commands
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """redis-py on the standalone server, to look behind the service."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()


@pytest.fixture
def link_to(redis_server: RedisServer) -> Iterator[Callable[..., ServerLink]]:
    """Open ServerLinks on the standalone server; closed after the test."""
    opened: list[ServerLink] = []

    def open_(max_connections: int = 4, wait: float = 5.0) -> ServerLink:
        link = ServerLink(
            redis.Connection,
            max_connections,
            wait,
            host=redis_server.host,
            port=redis_server.port,
            socket_timeout=10,
        )
        opened.append(link)
        return link

    yield open_
    for link in opened:
        link.close()


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStorage]:
    """A store in a fresh namespace."""
    opened = storager.open(redis_server.url(), namespace=f"t-{secrets.token_hex(4)}")
    assert isinstance(opened, RedisStorage)
    yield opened
    opened.close()


def staged_keys(raw: redis.Redis, store: RedisStorage) -> list[Any]:
    """The staged manifests left in the store's namespace (there should be none)."""
    return list(raw.scan_iter(match=f"{{{store._keys.namespace}}}:s:*", count=1000))


def test_pack_commands_sends_large_values_without_a_copy() -> None:
    big = memoryview(bytes(64 << 10))
    packed = pack_commands([("SET", b"k", big), ("GET", "k"), ("EXPIRE", "k", 5)])
    assert any(piece is big for piece in packed)
    joined = b"".join(bytes(piece) for piece in packed)
    assert joined.startswith(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$65536\r\n")
    assert joined.endswith(
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$1\r\n5\r\n"
    )


def test_pack_commands_refuses_what_redis_cannot_hold() -> None:
    with pytest.raises(rx.DataError):
        pack_commands([("SET", "k", 1.5)])
    with pytest.raises(rx.DataError):
        pack_commands([("SET", "k", True)])


def test_an_error_reply_in_a_pipeline_keeps_the_connection_in_step(
    link_to: Callable[..., ServerLink],
) -> None:
    link = link_to(max_connections=1)
    key = f"t-{secrets.token_hex(4)}"
    with pytest.raises(rx.ResponseError, match="WRONGTYPE"):
        link.pipeline([("SET", key, b"v"), ("HGET", key, b"f"), ("APPEND", key, b"w")])
    # Every reply was read: the one connection answers the next command, not an old one.
    assert link.call("GET", key) == b"vw"
    link.call("DEL", key)


def test_threads_share_at_most_max_connections(
    link_to: Callable[..., ServerLink], raw: redis.Redis
) -> None:
    link = link_to(max_connections=2)
    name = f"t-{secrets.token_hex(4)}"
    link.call("CLIENT", "SETNAME", name)  # names the first connection only
    before = int(raw.info("clients")["connected_clients"])
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                link.call("INCR", name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert link.call("GET", name) == b"400"
    assert int(raw.info("clients")["connected_clients"]) <= before + 1
    link.call("DEL", name)


def test_no_free_connection_within_the_wait_is_an_error(
    link_to: Callable[..., ServerLink], raw: redis.Redis
) -> None:
    link = link_to(max_connections=1, wait=0.2)
    held = threading.Thread(
        target=link.call, args=("BLPOP", f"t-{secrets.token_hex(4)}", 2), daemon=True
    )
    held.start()
    try:
        deadline = time.monotonic() + 5
        while not int(raw.info("clients")["blocked_clients"]):  # BLPOP holds the connection
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(rx.MaxConnectionsError):
            link.call("PING")
    finally:
        held.join(timeout=10)
    assert link.call("PING") == b"PONG"


def test_closed_link_refuses_new_connections(link_to: Callable[..., ServerLink]) -> None:
    link = link_to()
    assert link.call("PING") == b"PONG"
    link.close()
    with pytest.raises(rx.ConnectionError):
        link.call("PING")


def test_commits_leave_no_staged_manifest(store: RedisStorage, raw: redis.Redis) -> None:
    store.write("a.txt", b"one")
    store.write("a.txt", b"two" * 50_000, content_type="text/plain")
    store.create_dir("d/")
    with pytest.raises(AlreadyExistsError):
        store.write("a.txt", b"three", if_none_match="*")
    with pytest.raises(ObjectModeInvalidError):
        store.write("d", b"x")
    assert store.read("a.txt") == b"two" * 50_000
    assert staged_keys(raw, store) == []


def test_commit_loads_its_script_again_after_a_flush(store: RedisStorage, raw: redis.Redis) -> None:
    store.write("a.txt", b"one")
    raw.script_flush()
    store.write("a.txt", b"two", user_metadata={"k": "v"})
    assert store.read("a.txt") == b"two"
    assert store.stat("a.txt").user_metadata == {"k": "v"}
    assert staged_keys(raw, store) == []


def test_a_forked_child_opens_its_own_connections(store: RedisStorage) -> None:
    store.write("parent.txt", b"before the fork")

    def round_trips(who: str) -> bool:
        # Parent and child at once: on a shared socket their replies would cross.
        for number in range(300):
            value = f"{who} {number}".encode()
            store.write(f"{who}.txt", value)
            if store.read(f"{who}.txt") != value:
                return False
        return True

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            code = 0 if round_trips("child") else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    try:
        parent_ok = round_trips("parent")
        answer = os.read(read, 1)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert parent_ok
    assert answer == b"\x00"
    assert store.read("child.txt") == b"child 299"
    assert store.read("parent.txt") == b"parent 299"


def test_a_connection_the_server_closed_is_made_afresh(
    store: RedisStorage, raw: redis.Redis
) -> None:
    store.write("a.txt", b"one")
    client_id = store._link.call("CLIENT", "ID")  # the store's one idle connection
    assert raw.client_kill_filter(_id=client_id) == 1
    # Neither a failed write nor one whose outcome is unknown: the link reconnects first.
    store.write("a.txt", b"two")
    assert store.read("a.txt") == b"two"
    assert store._link.call("CLIENT", "ID") != client_id


def test_threads_small_requests_share_round_trips_and_get_their_own_replies(
    link_to: Callable[..., ServerLink],
) -> None:
    link = link_to(max_connections=8)
    counter = f"t-{secrets.token_hex(4)}"
    round_trips = 0
    send = link._lane._round_trip

    def counted(buffers: list[Any], count: int) -> list[Any]:
        nonlocal round_trips
        round_trips += 1
        return send(buffers, count)

    link._lane._round_trip = counted
    wrong: list[Any] = []
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i in range(100):
                word = f"{thread}:{i}".encode()
                if link.call("ECHO", word) != word:
                    wrong.append(word)
                if i % 10 == 0:
                    link.transaction([("INCR", counter)])
                if i % 25 == 0:
                    with pytest.raises(rx.ResponseError):
                        link.call("NO-SUCH-COMMAND", word)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert not wrong
    assert link.call("GET", counter) == b"160"
    requests = 16 * (100 + 10 + 4)
    assert round_trips < requests  # threads' requests went out together
    assert link._made == 1  # one batch at a time: one connection was enough
    link.call("DEL", counter)


def test_a_failed_batch_fails_its_requests_and_the_queue_goes_on(
    link_to: Callable[..., ServerLink], raw: redis.Redis
) -> None:
    link = link_to(max_connections=4)
    outcomes: dict[str, Any] = {}

    def run(name: str, *command: Any) -> None:
        try:
            outcomes[name] = link.call(*command)
        except BaseException as exc:
            outcomes[name] = exc

    blocked = threading.Thread(
        target=run, args=("blpop", "BLPOP", f"t-{secrets.token_hex(4)}", 5), daemon=True
    )
    blocked.start()
    deadline = time.monotonic() + 5
    while not int(raw.info("clients")["blocked_clients"]):  # the BLPOP holds the lane
        assert time.monotonic() < deadline
        time.sleep(0.01)
    queued = [
        threading.Thread(target=run, args=(f"echo{n}", "ECHO", f"w{n}"), daemon=True)
        for n in range(3)
    ]
    for thread in queued:
        thread.start()
    time.sleep(0.2)  # they queue behind the BLPOP
    victim = next(client for client in raw.client_list() if client["cmd"] == "blpop")
    raw.client_kill_filter(_id=victim["id"])
    for thread in [blocked, *queued]:
        thread.join(timeout=10)
    assert isinstance(outcomes["blpop"], rx.ConnectionError)
    assert [outcomes[f"echo{n}"] for n in range(3)] == [b"w0", b"w1", b"w2"]
    assert link.call("PING") == b"PONG"


def test_a_thread_that_stops_waiting_passes_its_lead_on() -> None:
    sent: list[bytes] = []

    def round_trip(buffers: list[Any], count: int) -> list[Any]:
        sent.extend(bytes(buffer) for buffer in buffers)
        return [b"ok"] * count

    lane = Lane(round_trip, wait=5.0)
    assert lane._sending.acquire(blocking=False)  # a leader is sending
    first, second = _Request([b"first"], 1), _Request([b"second"], 1)
    lane._queue += [first, second]  # two threads queued behind it
    lane._hand_on()  # the leader is done: the first queued thread leads next
    assert first.lead
    lane._abandon(first)  # but that thread was interrupted before it could lead
    assert second.lead
    assert lane._queue == [second]
    assert second.done.acquire(timeout=1)  # its thread wakes
    lane._lead()  # and leads instead
    lane._hand_on()  # then lets go of the lead, as exchange does in a finally
    assert second.replies == [b"ok"]
    assert sent == [b"second"]
    assert lane._sending.acquire(blocking=False)  # and the lane is free again
    lane._sending.release()


def test_a_leader_interrupted_while_handing_out_replies_releases_every_thread() -> None:
    gate = threading.Event()
    calls: list[int] = []

    class InterruptedOnSecondSlice(list[Any]):
        """Replies whose hand-out is cut by a KeyboardInterrupt (a signal landing in
        the leader's thread), after the first request of the batch has its replies."""

        slices = 0

        def __getitem__(self, index: Any) -> Any:
            InterruptedOnSecondSlice.slices += 1
            if InterruptedOnSecondSlice.slices == 2:
                raise KeyboardInterrupt
            return super().__getitem__(index)

    def round_trip(buffers: list[Any], count: int) -> list[Any]:
        calls.append(count)
        if len(calls) == 1:
            assert gate.wait(10)
            return [b"first"] * count
        return InterruptedOnSecondSlice([b"batch"] * count)

    lane = Lane(round_trip, wait=5.0)
    outcomes: dict[str, Any] = {}

    def exchange(name: str) -> None:
        try:
            outcomes[name] = lane.exchange([name.encode()], 1)
        except BaseException as exc:  # the interrupted leader's KeyboardInterrupt too
            outcomes[name] = exc

    threads = {name: threading.Thread(target=exchange, args=(name,), daemon=True) for name in "ABC"}
    threads["A"].start()  # leads alone, held at the gate
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    threads["B"].start()
    while len(lane._queue) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    threads["C"].start()
    while len(lane._queue) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(lane._queue) == 2  # B and C queued behind A: B leads the batch of both
    gate.set()
    for thread in threads.values():
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads.values())  # none left blocked
    assert outcomes["A"] == [b"first"]
    assert isinstance(outcomes["B"], KeyboardInterrupt)  # the leader's own interruption
    assert isinstance(outcomes["C"], rx.ConnectionError)  # failed, not left waiting
    assert lane.exchange([b"D"], 1) == [b"batch"]  # and the lane was handed on
