"""An AsyncMirror's multipart upload: one upload on every target, completed on all or none.

The rules and the encoding of ids and etags are the sync Mirror's
(``storager.combinators._mirror_multipart``, decided in ``_mirror_policy``), so an
upload created through a sync Mirror can be completed through an AsyncMirror over the
async views of the same targets, and back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from storager._async_protocols import AsyncSegmenter
from storager._async_types import AsyncWriteData
from storager._object import Multipart, Object, Part
from storager.aio.combinators._base import _END, _prime
from storager.aio.combinators._mirror_write import AsyncMirrorBase, Closing
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
    """The AsyncSegmenter mixin of AsyncMirror (the sync Mirror's rules)."""

    def _raise(self, op: str, path: str, names: Names, outcome: Outcome) -> None:
        error = outcome_error(op, path, names, outcome)
        if error is not None:
            raise error

    def _segmenter(self, name: str) -> AsyncSegmenter:
        return cast(AsyncSegmenter, self._targets[name])

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        """Start an upload on every target; if one fails, abort the others'."""
        names, how = self._select("create_multipart", path, pairs, WRITE_MODES)
        outcome: Outcome = {}
        try:
            outcome = await self._each(
                names,
                how,
                lambda n: self._segmenter(n).create_multipart(path, **pairs),
                stop=True,
                outcome=outcome,
            )
        except asyncio.CancelledError:  # abort the uploads it started, then go on
            await self._abort_created(outcome)
            raise
        if any(e is not None for _, e in outcome.values()):
            await self._abort_created(outcome)
            self._raise("create_multipart", path, names, outcome)
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
        ups = uploads_of(op, multipart, self._targets)
        how = upload_mode(op, multipart, pairs, self._write_mode)
        names = list(ups)
        if isinstance(data, bytes | bytearray | memoryview):
            payload = data
            outcome = await self._each(
                names,
                how,
                lambda n: self._segmenter(n).write_multipart(ups[n], number, payload, **pairs),
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
                lambda n, s, chunks: cast(AsyncSegmenter, s).write_multipart(
                    ups[n], number, chunks, **pairs
                ),
                [],
            )
        return combined_part(names, parts)

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        """Complete on every target; roll back where it completed if another failed."""
        op = "complete_multipart"
        ups = uploads_of(op, multipart, self._targets)
        how = upload_mode(op, multipart, pairs, self._write_mode)
        names = list(ups)

        async def after_failure(outcome: Outcome) -> None:
            for name in aborts_after_failed_completion(outcome, names):
                with contextlib.suppress(Exception):
                    await self._segmenter(name).abort_multipart(ups[name])

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
        ups = uploads_of(op, multipart, self._targets)
        how = upload_mode(op, multipart, pairs, self._write_mode)
        names = list(ups)
        outcome = await self._each(
            names,
            how,
            lambda n: self._segmenter(n).abort_multipart(ups[n], **pairs),
            stop=False,
        )
        self._raise(op, multipart.path, names, outcome)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        return self._list_multipart(multipart, pairs)

    async def _list_multipart(
        self, multipart: Multipart, pairs: dict[str, Any]
    ) -> AsyncIterator[Part]:
        """List the parts of the first target's upload."""
        op = "list_multipart"
        ups = uploads_of(op, multipart, self._targets)
        upload_mode(op, multipart, pairs, self._write_mode)
        name, up = next(iter(ups.items()))
        first, rest = await _prime(self._segmenter(name).list_multipart(up, **pairs))
        served_by.set(name)
        async with contextlib.aclosing(Closing(rest)):
            if first is _END:
                return
            yield cast(Part, first)
            async for part in rest:
                yield part
