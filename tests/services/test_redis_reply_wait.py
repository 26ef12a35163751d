"""Waiting for a reply: a thread polls its socket for a short window before it sleeps,
stops polling for a server slower than the window, and resumes when replies are quick
again; ``busy_poll_us`` sets the window (0: off)."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import storager
from storager import PairInvalidError
from storager.services.redis import RedisStorage
from storager.services.redis._reply_wait import DEFAULT_WINDOW, MAX_WINDOW, ReplyWait
from tests.servers.redis import RedisServer


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def _alone() -> bool:
    return False


def test_a_reply_within_the_window_is_found_by_polling(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    wait = ReplyWait(MAX_WINDOW)
    looks: list[bool] = []

    def reply_comes_now() -> bool:  # called between polls that found nothing yet
        if not looks:
            theirs.sendall(b"+OK\r\n")
        looks.append(False)
        return False

    assert wait.poll(ours, reply_comes_now) is None
    assert looks == [False]  # one empty poll, then the reply was found by the next
    assert wait.polling  # it came within the window: polling stays on
    assert ours.recv(16, socket.MSG_DONTWAIT) == b"+OK\r\n"


def test_no_reply_within_the_window_turns_polling_off_until_a_quick_one(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    wait = ReplyWait(0.001)
    before = time.perf_counter()
    assert wait.poll(ours, _alone) is None  # nothing comes: the whole window, then gives up
    assert time.perf_counter() - before >= 0.001
    assert not wait.polling  # and the reply that comes later, after a sleep, cannot
    theirs.sendall(b"+OK\r\n")  # turn it on: the caller is not asked to report it
    began = wait.poll(ours, _alone)  # off: the caller blocks at once, and reports
    assert began is not None and not wait.polling
    wait.slept(began - 1.0)  # a reply a second after its request: stays off
    assert not wait.polling
    wait.slept(time.perf_counter())  # one within the window even to a sleeper: on again
    assert wait.polling


def test_other_requests_in_flight_end_the_polling_but_leave_it_on(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _ = pair
    wait = ReplyWait(MAX_WINDOW)
    looks: list[bool] = []

    def crowded() -> bool:
        looks.append(True)
        return True

    assert wait.poll(ours, crowded) is None
    assert looks == [True]  # gave up at the first look
    assert wait.polling  # the server was not slow: the next request polls again


def test_a_window_of_zero_never_polls_and_bounds_are_checked(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _ = pair
    wait = ReplyWait(0)
    assert not wait.polling and wait.poll(ours, _alone) is None  # nothing to report either
    for window in (-1e-6, MAX_WINDOW * 2):
        with pytest.raises(ValueError, match="window"):
            ReplyWait(window)


@pytest.mark.redis
def test_a_slow_reply_stops_the_polling_of_a_store(redis_server: RedisServer) -> None:
    store = storager.open(redis_server.url(), namespace=f"t-{secrets.token_hex(4)}")
    assert isinstance(store, RedisStorage)
    try:
        replies = store._link._replies  # type: ignore[attr-defined]
        assert replies.window == DEFAULT_WINDOW
        replies.polling = True
        # BLPOP of a list nobody fills answers nil after 50 ms: a server slower than
        # the window, for one reply.
        assert store._link.call("BLPOP", f"t-{secrets.token_hex(4)}:none", "0.05") is None
        assert not replies.polling
        store.write("k", b"still served")
        assert store.read("k") == b"still served"
    finally:
        store.close()


@pytest.mark.redis
@pytest.mark.parametrize("window", ["0", "10000"])
def test_busy_poll_us_sets_the_window_and_the_store_works_alike(
    redis_server: RedisServer, window: str
) -> None:
    store = storager.open(
        redis_server.url(busy_poll_us=window), namespace=f"t-{secrets.token_hex(4)}"
    )
    try:
        assert store._link._replies.window == int(window) / 1e6  # type: ignore[attr-defined]
        done: list[bytes] = []

        def work(n: int) -> None:
            store.write(f"k{n}", b"v%d" % n)
            done.append(store.read(f"k{n}"))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(done) == sorted(b"v%d" % n for n in range(8))
    finally:
        store.close()


@pytest.mark.redis
@pytest.mark.parametrize("window", [-1, 10001])
def test_busy_poll_us_out_of_bounds_is_refused(redis_server: RedisServer, window: int) -> None:
    with pytest.raises(PairInvalidError, match="busy_poll_us"):
        storager.open(redis_server.url(), busy_poll_us=window)
