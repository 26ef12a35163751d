"""Polling after an answer: the loop stays awake for its window, then sleeps; an idle
server spends nothing; `storager serve` and the test gateway run with it."""

from __future__ import annotations

import asyncio
import functools
import pickle
import subprocess
import time
import urllib.request

import pytest

from storager.gateway._busy_poll import BusyPoll, BusyPollingHttpTools, poller_of
from storager.gateway._server import DEFAULT_BUSY_POLL, uvicorn_options
from tests.gateway.conftest import Gateway
from tests.gateway.test_serve import BIN, _Process


def test_the_loop_polls_for_its_window_after_an_answer_then_stops() -> None:
    async def scenario() -> tuple[bool, bool, float]:
        poller = BusyPoll(asyncio.get_running_loop(), 0.02)
        poller.extend()
        polling_at_once = poller.polling
        await asyncio.sleep(0.005)
        still_polling = poller.polling  # inside its window
        began = time.perf_counter()
        while poller.polling and time.perf_counter() - began < 1.0:
            await asyncio.sleep(0.001)
        return polling_at_once, still_polling and not poller.polling, time.perf_counter() - began

    at_once, then_stopped, took = asyncio.run(scenario())
    assert at_once and then_stopped
    assert took < 0.5  # it ran out about 15 ms later, not never


def test_an_idle_loop_spends_no_cpu_once_the_window_has_passed() -> None:
    async def scenario() -> float:
        poller = BusyPoll(asyncio.get_running_loop(), 0.01)
        poller.extend()
        await asyncio.sleep(0.05)  # past the window
        assert not poller.polling
        cpu = time.process_time()
        await asyncio.sleep(0.5)  # idle: the loop sleeps in its selector
        return time.process_time() - cpu

    # A loop still polling would spend ~0.5 s of CPU here.
    assert asyncio.run(scenario()) < 0.15


def test_each_answer_restarts_the_window_and_one_callback_polls() -> None:
    async def scenario() -> tuple[bool, int]:
        loop = asyncio.get_running_loop()
        poller = BusyPoll(loop, 0.03)
        for _ in range(5):
            poller.extend()
            await asyncio.sleep(0.01)
        polling = poller.polling  # 10 ms after the last of answers 10 ms apart
        scheduled = len(getattr(loop, "_ready", []))  # the default loop's ready queue
        return polling, scheduled

    polling, scheduled = asyncio.run(scenario())
    assert polling
    assert scheduled <= 1  # one poll callback, not one per answer


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
        from storager.gateway import _busy_poll

        assert first not in _busy_poll._pollers and second not in _busy_poll._pollers
    finally:
        third.close()


def test_a_window_must_be_positive_and_zero_turns_polling_off() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="positive"):
            BusyPoll(loop, 0)
    finally:
        loop.close()
    with pytest.raises(ValueError, match="negative"):
        uvicorn_options(-1e-6)
    assert uvicorn_options(0)["http"] == "auto"
    http = uvicorn_options()["http"]
    assert http.func is BusyPollingHttpTools
    assert http.keywords == {"busy_poll_window": DEFAULT_BUSY_POLL}


def test_the_protocol_setting_survives_the_trip_to_worker_processes() -> None:
    # --workers pickles uvicorn's config to spawned processes.
    http = pickle.loads(pickle.dumps(uvicorn_options(2e-4)["http"]))
    assert isinstance(http, functools.partial)
    assert http.func is BusyPollingHttpTools and http.keywords == {"busy_poll_window": 2e-4}


def test_the_test_gateway_answers_through_the_polling_protocol(
    gateway: Gateway, prefix: str
) -> None:
    s3 = gateway.client()
    s3.put_object(Bucket="mem", Key=f"{prefix}k", Body=b"polled")
    for _ in range(20):  # answers back to back, each extending the window
        assert s3.get_object(Bucket="mem", Key=f"{prefix}k")["Body"].read() == b"polled"
    from storager.gateway import _busy_poll

    assert any(not loop.is_closed() for loop in _busy_poll._pollers)


def test_serve_refuses_a_negative_window() -> None:
    done = subprocess.run(
        [str(BIN / "storager"), "serve", "memory://", "--anonymous", "--busy-poll-us", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--busy-poll-us cannot be negative" in done.stderr


def test_serve_with_polling_off_answers_as_with_it_on() -> None:
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
