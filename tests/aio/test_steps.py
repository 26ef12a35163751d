"""The step drivers: one control flow, run by plain calls and by awaiting, alike."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from storager.combinators._steps import Steps, drive, drive_async


def _flow(log: list[str]) -> Steps[str, str]:
    """Try "a", fall back to "b" on a ValueError; log what the flow saw."""
    try:
        try:
            got = yield "a"
        except ValueError as exc:
            log.append(f"a failed: {exc}")
            got = yield "b"
        log.append(f"got {got}")
        return f"result {got}"
    finally:
        log.append("closed")


def _sync_run(step: str) -> str:
    if step == "a":
        raise ValueError("boom")
    return step.upper()


async def _async_run(step: str) -> str:
    await asyncio.sleep(0)
    return _sync_run(step)


def test_both_drivers_run_the_same_flow_to_the_same_end() -> None:
    sync_log: list[str] = []
    async_log: list[str] = []
    assert drive(_flow(sync_log), _sync_run) == "result B"
    assert asyncio.run(drive_async(_flow(async_log), _async_run)) == "result B"
    assert sync_log == async_log == ["a failed: boom", "got B", "closed"]


def test_an_error_the_flow_does_not_catch_comes_out_of_the_driver() -> None:
    def fail(step: str) -> Any:
        raise KeyError(step)

    async def fail_async(step: str) -> Any:
        fail(step)

    with pytest.raises(KeyError, match="a"):
        drive(_flow([]), fail)
    with pytest.raises(KeyError, match="a"):
        asyncio.run(drive_async(_flow([]), fail_async))


def test_a_cancellation_closes_the_flow_without_throwing_into_it() -> None:
    log: list[str] = []

    async def main() -> None:
        def never(step: str) -> Awaitable[Any]:
            return asyncio.sleep(10)

        task = asyncio.ensure_future(drive_async(_flow(log), never))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert log == ["closed"]  # the flow's finally ran; no except clause saw the cancel

    def interrupted(step: str) -> Any:
        raise KeyboardInterrupt

    log.clear()
    with pytest.raises(KeyboardInterrupt):
        drive(_flow(log), interrupted)
    assert log == ["closed"]
