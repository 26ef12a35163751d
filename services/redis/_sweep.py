"""The sweep: deleting the chunks of generations no manifest uses any more.

A generation becomes *doomed* when the last manifest using it lets go (an overwrite, a
delete), when its write fails, when its writer has not been heard from for the grace
period (it died mid-object), or, for an object written with an expiry, at that expiry.
The sweep first drops the index entries of expired objects, then deletes the chunks of
every generation doomed at least ``grace`` seconds ago with ``UNLINK`` (the server frees
them in the background), and forgets the generation. Sweeping twice at once is harmless:
deleting a key twice is a no-op, and a doomed generation can never be used again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError

from storager.services.redis._keys import Keys
from storager.services.redis._link import Link
from storager.services.redis._plan import Plan, RoundTrip, run
from storager.services.redis._scripts import Scripts

__all__ = ["SweepReport", "Sweeper", "discard", "unlink_chunks"]

logger = logging.getLogger("storager.services.redis")

#: Generations claimed per round trip, and chunk keys unlinked per pipeline.
_GENERATIONS_PER_ROUND = 64
_KEYS_PER_PIPELINE = 1024
#: Expired index entries the prune script looks at per call.
_PRUNED_PER_ROUND = 100


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep removed.

    Attributes:
        generations: How many generations it deleted.
        chunks: How many chunk keys it unlinked (keys that no longer existed count too).
    """

    generations: int
    chunks: int


class Sweeper:
    """Deletes doomed generations of one namespace."""

    def __init__(self, link: Link, keys: Keys) -> None:
        self._link = link
        self._keys = keys

    def sweep(self, grace: float, *, rounds: int | None = None) -> SweepReport:
        """Delete what is doomed since ``grace`` seconds, ``rounds`` batches at most."""
        keys = self._keys
        while (
            Scripts.prune(self._link, [keys.index, keys.expiring], [keys.manifest_prefix])
            >= _PRUNED_PER_ROUND
        ):
            pass
        generations = chunks = 0
        done = 0
        while rounds is None or done < rounds:
            done += 1
            reply = Scripts.claim(
                self._link,
                [self._keys.pending, self._keys.doomed, self._keys.chunk_counts],
                [repr(float(grace)), _GENERATIONS_PER_ROUND],
            )
            claimed = [(reply[i], int(reply[i + 1])) for i in range(0, len(reply), 2)]
            if not claimed:
                break
            for generation, count in claimed:
                run(unlink_chunks(keys, generation, count), self._link)
                chunks += count
            Scripts.forget(
                self._link,
                [self._keys.doomed, self._keys.chunk_counts],
                [generation for generation, _ in claimed],
            )
            generations += len(claimed)
            if len(claimed) < _GENERATIONS_PER_ROUND:
                break
        return SweepReport(generations, chunks)


def unlink_chunks(keys: Keys, generation: bytes, count: int) -> Plan[None]:
    """Return the plan that UNLINKs chunks 0 to ``count - 1`` of ``generation``."""
    for start in range(0, count, _KEYS_PER_PIPELINE):
        yield RoundTrip(
            "pipeline",
            [
                ("UNLINK", keys.chunk(generation, number))
                for number in range(start, min(count, start + _KEYS_PER_PIPELINE))
            ],
        )


def discard(keys: Keys, generation: bytes | None, count: int) -> Plan[None]:
    """Return the plan that drops a generation whose write failed; best effort.

    The generation was never visible. Whatever this cannot delete now stays doomed,
    for the next sweep; None (an inline write) has nothing to drop.
    """
    if generation is None:
        return
    try:
        yield from Scripts.abandon.steps([keys.pending, keys.doomed], [generation])
        yield from unlink_chunks(keys, generation, count)
        yield from Scripts.forget.steps([keys.doomed, keys.chunk_counts], [generation])
    except (RedisError, OSError):
        logger.debug("could not discard generation %s now; the sweep will", generation)
