"""A combinator's control flow written once, as a generator of steps, and its two drivers.

The policy cores (Attempts, Switchboard...) already keep the decisions of a combinator
in one place; what stayed written twice is the loop around them: the sync form calls
the child where the async form awaits it. Written as a generator, the loop *yields*
each step that needs I/O (call store 2, probe the primary...) and receives its result
(or has its error thrown in); :func:`drive` runs the steps with plain calls,
:func:`drive_async` awaits them. Neither driver knows the combinator: one loop, two
worlds. (Failover's ``failover_steps`` runs so; see benchmarks/steps.py for what the
indirection costs. Since the combinators became one async source each, with the sync
form derived by ``codegen/unasync.py``, the rewrite does this job for the others:
``drive_async`` in the source becomes ``drive`` in the derived form.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

__all__ = ["Steps", "drive", "drive_async"]

S = TypeVar("S")
T = TypeVar("T")

#: A control flow: yields steps of type S, is sent each step's result, returns T.
Steps = Generator[S, Any, T]


def drive(steps: Steps[S, T], run: Callable[[S], Any]) -> T:
    """Run ``steps`` to its end, doing each step with ``run`` (an error is thrown in)."""
    send = steps.send
    try:
        step = send(None)
        while True:
            try:
                result = run(step)
            except Exception as exc:
                step = steps.throw(exc)
            else:
                step = send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except BaseException:
        steps.close()  # a KeyboardInterrupt or a cancellation: let the loop's finally run
        raise


async def drive_async(steps: Steps[S, T], run: Callable[[S], Awaitable[Any]]) -> T:
    """Run ``steps`` to its end, awaiting each step's ``run`` (an error is thrown in)."""
    send = steps.send
    try:
        step = send(None)
        while True:
            try:
                result = await run(step)
            except Exception as exc:
                step = steps.throw(exc)
            else:
                step = send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except BaseException:
        steps.close()  # a cancellation: let the loop's finally run
        raise
