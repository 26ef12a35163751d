"""A worker reading a request body never waits for good on an event loop that stopped."""

from __future__ import annotations

import asyncio
import threading

from storager.gateway._body import BodyStream, ClientDisconnected, Payload


def test_a_body_read_gives_up_when_the_event_loop_stops_mid_request() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    first_message_asked = threading.Event()

    async def receive() -> dict[str, object]:
        first_message_asked.set()
        await asyncio.sleep(3600)  # the client sends nothing yet
        return {"type": "http.request", "body": b"", "more_body": False}

    body = BodyStream(receive, loop, Payload({}, None))
    outcome: list[BaseException] = []

    def worker() -> None:
        try:
            list(body)
        except BaseException as exc:  # the test reports whatever came out
            outcome.append(exc)

    reader = threading.Thread(target=worker, daemon=True)
    reader.start()
    assert first_message_asked.wait(5)
    loop.call_soon_threadsafe(loop.stop)  # the server goes away mid-request
    runner.join(5)
    reader.join(10)
    assert not reader.is_alive(), "the worker still waits on a loop that stopped"
    assert len(outcome) == 1 and isinstance(outcome[0], ClientDisconnected)
    loop.close()
