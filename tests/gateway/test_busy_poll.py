"""Polling after an answer: the loop stays awake for its window, then sleeps; an idle
server spends nothing; store calls in threads pause it; `storager serve` and the test
gateway run with it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import pickle
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from storager.gateway import _busy_poll
from storager.gateway._busy_poll import MAX_WINDOW, BusyPoll, paused, poller_of
from storager.gateway._limiter import ThreadLimiter
from storager.gateway._polling_protocol import BusyPollingHttpTools
from storager.gateway._server import DEFAULT_BUSY_POLL, uvicorn_options
from tests.gateway.conftest import Gateway
from tests.gateway.test_serve import BIN, _Process


async def _until_stopped(poller: BusyPoll, limit: float = 5.0) -> float:
    """Seconds until the poller stops (``limit`` if it never does)."""
    began = time.perf_counter()
    while poller.polling and time.perf_counter() - began < limit:
        await asyncio.sleep(0.001)
    return time.perf_counter() - began


def test_the_loop_polls_until_the_window_ends_then_stops() -> None:
    async def scenario() -> tuple[bool, bool, float, float]:
        poller = BusyPoll(asyncio.get_running_loop(), MAX_WINDOW)
        poller.extend()
        at_once = poller.polling
        poller.until = time.perf_counter() + 60  # a window no pause on a busy host outlasts
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # turns of the loop: the poll re-scheduled itself
        still = poller.polling
        poller.until = 0.0  # the window ends
        ended = await _until_stopped(poller)
        poller.extend()  # a real window (10 ms), left to run out
        ran_out = await _until_stopped(poller)
        return at_once, still, ended, ran_out

    at_once, still, ended, ran_out = asyncio.run(scenario())
    assert at_once and still
    assert ended < 5.0 and ran_out < 5.0  # it stopped each time, not never


def test_an_idle_loop_spends_no_cpu_once_the_window_has_passed() -> None:
    async def scenario() -> float:
        poller = BusyPoll(asyncio.get_running_loop(), 0.001)
        poller.extend()
        await _until_stopped(poller)
        assert not poller.polling
        cpu = time.process_time()
        await asyncio.sleep(0.5)  # idle: the loop sleeps in its selector
        return time.process_time() - cpu

    # A loop still polling would spend ~0.5 s of CPU here.
    assert asyncio.run(scenario()) < 0.15


def test_each_answer_moves_the_window_on_and_one_callback_polls() -> None:
    async def scenario() -> tuple[list[float], int]:
        loop = asyncio.get_running_loop()
        poller = BusyPoll(loop, MAX_WINDOW)
        ends = []
        for _ in range(3):
            poller.extend()
            ends.append(poller.until)
            await asyncio.sleep(0)
        scheduled = len(getattr(loop, "_ready", []))  # the default loop's ready queue
        await _until_stopped(poller)
        return ends, scheduled

    ends, scheduled = asyncio.run(scenario())
    assert ends == sorted(ends) and ends[0] < ends[-1]
    assert scheduled <= 1  # one poll callback, not one per answer


def test_store_calls_in_threads_pause_the_polling() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        poller = poller_of(loop, MAX_WINDOW)
        limiter = ThreadLimiter(2)
        started, release = threading.Event(), threading.Event()

        def store_call() -> None:
            started.set()
            release.wait(10)

        try:
            poller.extend()
            poller.until = time.perf_counter() + 60  # polling would go on unpaused
            call = asyncio.ensure_future(limiter.run(store_call))
            while not started.is_set():
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)
            await asyncio.sleep(0)  # the poll already scheduled saw the call and stopped
            during = poller.polling
            poller.extend()  # an answer meanwhile does not start it either
            answered_during = poller.polling
            release.set()
            await call
            poller.extend()  # once no call runs, an answer starts it again
            return during, answered_during, poller.polling
        finally:
            release.set()
            limiter.close()
            poller.until = 0.0
            await _until_stopped(poller)

    during, answered_during, after = asyncio.run(scenario())
    assert not during and not answered_during
    assert after


def test_paused_counts_nothing_on_a_loop_without_a_poller() -> None:
    async def scenario() -> None:
        with paused():
            pass

    asyncio.run(scenario())  # no poller: nothing to hold, nothing raised


def test_one_poller_per_loop_and_none_kept_for_closed_loops() -> None:
    first = asyncio.new_event_loop()
    second = asyncio.new_event_loop()
    try:
        assert poller_of(first, 1e-4) is poller_of(first, 1e-4)
        assert poller_of(second, 1e-4) is not poller_of(first, 1e-4)
    finally:
        first.close()
        second.close()
    third = asyncio.new_event_loop()
    try:
        poller_of(third, 1e-4)
        assert first not in _busy_poll._pollers and second not in _busy_poll._pollers
    finally:
        third.close()


def test_a_window_must_be_positive_and_bounded_and_zero_turns_polling_off() -> None:
    loop = asyncio.new_event_loop()
    try:
        for window in (0, -1e-6, MAX_WINDOW * 2):
            with pytest.raises(ValueError, match="window"):
                BusyPoll(loop, window)
    finally:
        loop.close()
    for window in (-1e-6, MAX_WINDOW * 2):
        with pytest.raises(ValueError, match="window"):
            uvicorn_options(window)
    assert uvicorn_options(0)["http"] == "auto"
    http = uvicorn_options()["http"]
    assert http.func is BusyPollingHttpTools
    assert http.keywords == {"busy_poll_window": DEFAULT_BUSY_POLL}
    assert uvicorn_options()["ws"] == "none"  # an upgrade never leaves the gateway's protocol


def test_the_protocol_setting_survives_the_trip_to_worker_processes() -> None:
    # --workers pickles uvicorn's config to spawned processes.
    http = pickle.loads(pickle.dumps(uvicorn_options(2e-4)["http"]))
    assert isinstance(http, functools.partial)
    assert http.func is BusyPollingHttpTools and http.keywords == {"busy_poll_window": 2e-4}


def test_the_test_gateway_polls_after_its_answers(gateway: Gateway, prefix: str) -> None:
    s3 = gateway.client()
    s3.put_object(Bucket="mem", Key=f"{prefix}k", Body=b"polled")
    before = time.perf_counter()
    for _ in range(5):
        assert s3.get_object(Bucket="mem", Key=f"{prefix}k")["Body"].read() == b"polled"
    # The gateway's loop (in its own thread) extended its poller as it answered.
    assert any(p.until > before for p in list(_busy_poll._pollers.values()))


def test_an_answer_that_closes_its_connection_starts_no_polling(gateway: Gateway) -> None:
    port = int(gateway.endpoint.rpartition(":")[2])
    time.sleep(0.05)  # every window of earlier answers has run out
    before = max((p.until for p in list(_busy_poll._pollers.values())), default=0.0)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/healthz", headers={"Connection": "close"})
        answer = connection.getresponse()
        assert answer.status == 200
        answer.read()
    finally:
        connection.close()
    after = max((p.until for p in list(_busy_poll._pollers.values())), default=0.0)
    assert after == before  # nothing to wait for on a connection that is closing
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:  # the same request on a connection kept open does start it
        connection.request("GET", "/healthz")
        connection.getresponse().read()
    finally:
        connection.close()
    assert max(p.until for p in list(_busy_poll._pollers.values())) > before


@pytest.mark.parametrize("window", ["-1", "10001"])
def test_serve_refuses_a_window_out_of_bounds(window: str) -> None:
    done = subprocess.run(
        [str(BIN / "storager"), "serve", "memory://", "--anonymous", "--busy-poll-us", window],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--busy-poll-us must be 0 to 10000" in done.stderr


def test_serve_answers_alike_with_polling_off_and_on() -> None:
    answers = []
    for window in ("0", "300"):
        served = _Process(["memory://", "--bucket", "b", "--anonymous", "--busy-poll-us", window])
        try:
            base = f"http://127.0.0.1:{served.port}/v1/b/k"
            put = urllib.request.Request(base, data=b"body " + window.encode(), method="PUT")
            urllib.request.urlopen(put, timeout=10).close()
            with urllib.request.urlopen(base, timeout=10) as got:
                answers.append(got.read())
        finally:
            served.stop()
    assert answers == [b"body 0", b"body 300"]


def test_overlapping_requests_stop_the_polling_and_keep_it_off_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_busy_poll, "QUIET", 60.0)  # no pause on a busy host outlasts it

    async def scenario() -> dict[str, bool]:
        poller = BusyPoll(asyncio.get_running_loop(), MAX_WINDOW)
        seen: dict[str, bool] = {}
        poller.began()
        poller.answered(more_may_come=True)  # a lone request: the loop polls after it
        seen["alone"] = poller.polling and poller.until > 0
        poller.began()
        poller.began()
        poller.answered(more_may_come=True)  # another still in progress
        seen["overlap stops it"] = poller.until == 0.0
        await _until_stopped(poller)
        poller.answered(more_may_come=True)  # the last of them, within QUIET
        seen["quiet after"] = not poller.polling and poller.in_progress == 0
        poller.began()
        poller.answered(more_may_come=True)  # a lone one, still within QUIET
        seen["still quiet"] = not poller.polling
        poller.quiet_until = 0.0  # QUIET has passed
        poller.began()
        poller.answered(more_may_come=True)  # lone again, once QUIET has passed
        seen["resumed"] = poller.polling and poller.until > 0
        return seen

    seen = asyncio.run(scenario())
    assert seen == {
        "alone": True,
        "overlap stops it": True,
        "quiet after": True,
        "still quiet": True,
        "resumed": True,
    }


class _Holding:
    """An ASGI app that answers nothing until ``release``; it records the loop's poller."""

    def __init__(self) -> None:
        self.arrived = 0
        self.finished = 0
        self.gate: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.poller: BusyPoll | None = None

    def release(self) -> None:
        assert self.loop is not None and self.gate is not None
        self.loop.call_soon_threadsafe(self.gate.set)

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        self.loop = asyncio.get_running_loop()
        self.poller = _busy_poll._pollers[self.loop]
        self.gate = self.gate or asyncio.Event()
        if scope["type"] != "http":  # a websocket: refused (closed before it is accepted)
            await send({"type": "websocket.close"})  # type: ignore[operator]
            return
        self.arrived += 1
        try:
            await self.gate.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
            await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]
        finally:
            self.finished += 1


def _wait_for(condition: object, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _assert_a_lone_request_polls(port: int, poller: BusyPoll) -> None:
    """Nothing is left counted: a lone request makes the loop poll again."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/after")
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert poller.in_progress == 0 and poller.until > 0


def test_a_server_answering_requests_that_overlap_does_not_poll() -> None:
    from tests.gateway.conftest import _Served

    app = _Holding()
    served = _Served(app, lifespan="off")
    try:
        answers: list[int] = []

        def get() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
            try:
                connection.request("GET", "/held")
                answers.append(connection.getresponse().status)
            finally:
                connection.close()

        clients = [threading.Thread(target=get) for _ in range(2)]
        for client in clients:
            client.start()
        _wait_for(lambda: app.arrived == 2)  # both in progress at once
        released = time.perf_counter()
        app.release()
        for client in clients:
            client.join(10)
        assert answers == [200, 200]
        poller = app.poller
        assert poller is not None and poller.in_progress == 0
        assert poller.quiet_until > released  # they overlapped: no polling a while
    finally:
        served.stop()


def test_a_request_whose_client_left_is_not_counted_in_progress() -> None:
    from tests.gateway.conftest import _Served

    app = _Holding()
    served = _Served(app, lifespan="off")
    try:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(b"GET /left HTTP/1.1\r\nHost: x\r\n\r\n")
            _wait_for(lambda: app.arrived == 1)
            assert app.poller is not None and app.poller.in_progress == 1
        poller = app.poller
        _wait_for(lambda: poller.in_progress == 0)  # the server saw the client leave
        app.release()  # the app answers into a closed connection: counted once only
        _wait_for(lambda: app.finished == 1)
        assert poller.in_progress == 0
        _assert_a_lone_request_polls(served.port, poller)
    finally:
        served.stop()


@pytest.mark.parametrize("ws", ["none", "websockets"])
def test_a_request_pipelined_before_an_upgrade_is_not_left_counted(ws: str) -> None:
    # "none" is how the gateway serves (an upgrade is answered as plain HTTP); with a
    # websocket protocol the connection is handed over, and this one never sees its end.
    from tests.gateway.conftest import _Served

    app = _Holding()
    served = _Served(app, lifespan="off", ws=ws)
    try:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(
                b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            _wait_for(lambda: app.arrived == 1)
            app.release()
            _wait_for(lambda: app.finished >= 1)
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass
        poller = app.poller
        assert poller is not None
        _wait_for(lambda: poller.in_progress == 0)
        poller.quiet_until = 0.0
        _assert_a_lone_request_polls(served.port, poller)
    finally:
        served.stop()
