"""A Mirror's multipart upload: one upload on every target, completed on all or none.

Written once: ``storager/aio/combinators/_mirror_multipart.py`` is the source of both
forms, and ``python -m codegen`` derives ``storager/combinators/_mirror_multipart.py``
from it. The Mirror keeps no state for an upload: its ``upload_id`` encodes each target's
upload (``mirror-`` and base64url JSON of ``{name: id}``, or ``{name: [path, id]}``
when a target's path differs), so an upload survives a restart of the process and
works through any Mirror over the same targets, sync or async. Likewise a part's
``etag`` is the targets' common etag, or an encoding of each target's when they differ
(``_mirror_policy`` decides both).

- ``create_multipart`` creates one upload per target; if one fails, or the call is
  interrupted, the others are aborted.
- ``write_multipart`` writes the part to every target, reading a stream once.
  A part that failed on one target is simply written again (a number written again
  replaces the part), so nothing is rolled back.
- ``complete_multipart`` completes on every target. When some completed and others
  failed, the completed ones are rolled back like a failed write and the uploads
  left on the others are aborted: the upload is over. When none completed, the
  uploads stay, so the caller may complete again or abort.
- ``abort_multipart`` aborts on every target, even after one fails.
- ``list_multipart`` lists the first target's parts (in the order at creation).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from storager._async_protocols import AsyncSegmenter
from storager._async_types import AsyncWriteData
from storager._object import Multipart, Object, Part
from storager.aio.combinators._mirror_crew import (
    AsyncPrimed,
    Interrupted,
    async_listing,
    async_primed,
    settled,
)
from storager.aio.combinators._mirror_write import AsyncMirrorBase
from storager.combinators._base import served_by
from storager.combinators._mirror_errors import WRITE_MODES
from storager.combinators._mirror_policy import (
    Names,
    Outcome,
    aborts_after_failed_completion,
    combined_part,
    encode_uploads,
    outcome_error,
    parts_for,
    upload_mode,
    uploads_of,
)

__all__ = ["AsyncMirrorSegmenter"]


class AsyncMirrorSegmenter(AsyncMirrorBase, AsyncSegmenter):
    """The Segmenter mixin of Mirror (see the module docstring)."""

    def _uploads(self, op: str, multipart: Multipart) -> dict[str, Multipart]:
        """Return each target's upload of ``multipart``, or raise NotFoundError."""
        return uploads_of(op, multipart, self._targets)

    def _how(self, op: str, multipart: Multipart, pairs: dict[str, Any]) -> str:
        """Take ``how=`` out of ``pairs`` (an upload's targets are fixed at its creation)."""
        return upload_mode(op, multipart, pairs, self._write_mode)

    def _raise(self, op: str, path: str, names: Names, outcome: Outcome) -> None:
        error = outcome_error(op, path, names, outcome)
        if error is not None:
            raise error

    def _segmenter(self, name: str) -> AsyncSegmenter:
        return cast(AsyncSegmenter, self._targets[name])

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        """Start an upload on every target; if one fails, abort the others'."""
        op = "create_multipart"
        names, how = self._select(op, path, pairs, WRITE_MODES)
        outcome: Outcome = {}
        with self._traced(op, path):
            try:
                outcome = await self._each(
                    names,
                    how,
                    lambda n: self._on(
                        n,
                        op,
                        path,
                        lambda s: cast(AsyncSegmenter, s).create_multipart(path, **pairs),
                    ),
                    stop=True,
                    outcome=outcome,
                    settle=True,
                )
            except Interrupted as interruption:  # abort the uploads it started, then go on
                if settled(interruption):
                    await self._abort_created(outcome)
                raise
            if any(e is not None for _, e in outcome.values()):
                await self._abort_created(outcome)
                self._raise(op, path, names, outcome)
        return encode_uploads(names, {n: cast(Multipart, outcome[n][0]) for n in names})

    async def _abort_created(self, outcome: Outcome) -> None:
        """Abort, errors aside, every upload ``create_multipart`` started."""
        for name, (mp, err) in outcome.items():
            if err is None:
                with contextlib.suppress(Exception):
                    await self._segmenter(name).abort_multipart(cast(Multipart, mp))

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        """Write part ``number`` to every target; a stream is read once."""
        op = "write_multipart"
        ups = self._uploads(op, multipart)
        how = self._how(op, multipart, pairs)
        names = list(ups)
        with self._traced(op, multipart.path):
            if isinstance(data, bytes | bytearray | memoryview):
                payload = data
                outcome = await self._each(
                    names,
                    how,
                    lambda n: self._on(
                        n,
                        op,
                        multipart.path,
                        lambda s: cast(AsyncSegmenter, s).write_multipart(
                            ups[n], number, payload, **pairs
                        ),
                    ),
                    stop=False,
                )
                self._raise(op, multipart.path, names, outcome)
                parts = {n: cast(Part, result) for n, (result, _) in outcome.items()}
            else:
                parts = await self._fan_out(
                    op,
                    multipart.path,
                    data,
                    names,
                    pairs,
                    lambda n, s, feed: cast(AsyncSegmenter, s).write_multipart(
                        ups[n], number, feed, **pairs
                    ),
                    [],
                )
        return combined_part(names, parts)

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        """Complete on every target; roll back where it completed if another failed."""
        op = "complete_multipart"
        ups = self._uploads(op, multipart)
        how = self._how(op, multipart, pairs)
        names = list(ups)

        async def after_failure(outcome: Outcome) -> None:
            for name in aborts_after_failed_completion(outcome, names):
                with contextlib.suppress(Exception):
                    await self._segmenter(name).abort_multipart(ups[name])

        with self._traced(op, multipart.path):
            return await self._mutate(
                op,
                multipart.path,
                {n: [mp.path] for n, mp in ups.items()},
                names,
                how,
                lambda n, s: cast(AsyncSegmenter, s).complete_multipart(
                    ups[n], parts_for(n, parts), **pairs
                ),
                on_failure=after_failure,
            )

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        """Abort on every target, even after one fails."""
        op = "abort_multipart"
        ups = self._uploads(op, multipart)
        how = self._how(op, multipart, pairs)
        names = list(ups)
        with self._traced(op, multipart.path):
            outcome = await self._each(
                names,
                how,
                lambda n: self._on(
                    n,
                    op,
                    multipart.path,
                    lambda s: cast(AsyncSegmenter, s).abort_multipart(ups[n], **pairs),
                ),
                stop=False,
            )
            self._raise(op, multipart.path, names, outcome)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        """List the parts of the first target's upload.

        An upload that is not the Mirror's raises at the call; the target is asked at
        the call in sync code, for the first item in async code.
        """
        op = "list_multipart"
        ups = self._uploads(op, multipart)
        self._how(op, multipart, pairs)
        name, up = next(iter(ups.items()))
        return async_listing(lambda: self._list_multipart(multipart, name, up, pairs))

    async def _list_multipart(
        self, multipart: Multipart, name: str, up: Multipart, pairs: dict[str, Any]
    ) -> AsyncPrimed[Part]:
        op = "list_multipart"
        with self._traced(op, multipart.path):
            parts = await self._on(
                name,
                op,
                multipart.path,
                lambda s: async_primed(cast(AsyncSegmenter, s).list_multipart(up, **pairs)),
            )
        served_by.set(name)
        return parts
