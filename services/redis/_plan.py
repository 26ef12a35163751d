"""Plans: a multi-step exchange with Redis written once, run by a sync or an async driver.

A plan is a generator that yields each thing it needs done and is sent what came of
it: a :class:`RoundTrip` on the link (sent its reply), or :data:`NEXT_PIECE`, the next
piece of the caller's data (sent the piece, or None at the end). An error raised while
doing a step is thrown into the plan at that ``yield``, so the plan's own ``try`` blocks
decide what a failure discards. The plan holds the policy (what to send, in which
order, what to undo); a driver holds only the I/O: :func:`run` calls a sync
:class:`~storager.services.redis._link.Link` and iterator, :func:`arun` awaits an
:class:`~storager.services.redis._link.AsyncLink` and async iterator. The sync store
and its async twin run the same plans, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from enum import Enum
from typing import Any, Literal, NamedTuple, TypeVar

from storager.services.redis._link import AsyncLink, Command, Link

__all__ = ["NEXT_PIECE", "Piece", "Plan", "RoundTrip", "Step", "arun", "run"]

T = TypeVar("T")

Piece = bytes | bytearray | memoryview


class RoundTrip(NamedTuple):
    """One round trip on the link (a tuple: made on every step, so made cheaply).

    Attributes:
        kind: ``call`` (one command, its reply), ``pipeline`` or ``transaction`` (the
            replies as ``Link.pipeline`` and ``Link.transaction`` return them).
        commands: The commands; exactly one for ``call``.
    """

    kind: Literal["call", "pipeline", "transaction"]
    commands: Sequence[Command]

    @classmethod
    def call(cls, *args: Any) -> RoundTrip:
        """Return the round trip of one command."""
        return cls("call", (args,))


class _NextPiece(Enum):
    NEXT_PIECE = "next piece"


#: The step that asks for the next piece of the caller's data.
NEXT_PIECE = _NextPiece.NEXT_PIECE

Step = RoundTrip | _NextPiece
Plan = Generator[Step, Any, T]


def _start(link: Link | AsyncLink, step: RoundTrip) -> Any:
    """Send ``step`` on ``link``: its reply from a Link, an awaitable of it from an AsyncLink."""
    if step.kind == "call":
        return link.call(*step.commands[0])
    if step.kind == "pipeline":
        return link.pipeline(step.commands)
    return link.transaction(step.commands)


def run(plan: Plan[T], link: Link, data: Callable[[], Iterator[Piece]] | None = None) -> T:
    """Carry out ``plan`` over ``link``; return what the plan returns.

    ``data`` opens the caller's data when the plan first asks for a piece (a small
    write, taken whole, never opens it); the plan is fed its pieces, then None.

    Raises:
        Whatever the plan raises (a step's error is thrown into the plan first).
    """
    sent: Any = None
    error: BaseException | None = None
    pieces: Iterator[Piece] | None = None
    while True:
        try:
            step = plan.send(sent) if error is None else plan.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        error = None
        try:
            if step is NEXT_PIECE:
                if pieces is None:
                    assert data is not None, "this plan needs the caller's data"
                    pieces = data()
                sent = next(pieces, None)
            else:
                sent = _start(link, step)
        except BaseException as exc:  # the plan decides; it re-raises what it cannot handle
            error = exc


async def arun(
    plan: Plan[T], link: AsyncLink, data: Callable[[], AsyncIterator[Piece]] | None = None
) -> T:
    """Carry out ``plan`` over the async ``link``, as :func:`run` does."""
    sent: Any = None
    error: BaseException | None = None
    pieces: AsyncIterator[Piece] | None = None
    while True:
        try:
            step = plan.send(sent) if error is None else plan.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        error = None
        try:
            if step is NEXT_PIECE:
                if pieces is None:
                    assert data is not None, "this plan needs the caller's data"
                    pieces = data()
                sent = await anext(pieces, None)
            else:
                sent = await _start(link, step)
        except BaseException as exc:
            error = exc
