"""A Mirror's multipart upload: one upload on every target, completed on all or none.

The Mirror keeps no state for an upload: its ``upload_id`` encodes each target's
upload (``mirror-`` and base64url JSON of ``{name: id}``, or ``{name: [path, id]}``
when a target's path differs), so an upload survives a restart of the process and
works through any Mirror over the same targets. Likewise a part's ``etag`` is the
targets' common etag, or an encoding of each target's when they differ.

- ``create_multipart`` creates one upload per target; if one fails, the others are
  aborted.
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
from collections.abc import Iterator, Sequence
from typing import Any, cast

from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter, WriteData
from storager.combinators._base import prime, served_by
from storager.combinators._mirror_errors import (
    WRITE_MODES,
)
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
from storager.combinators._mirror_write import MirrorBase

__all__ = ["MirrorSegmenter"]


class MirrorSegmenter(MirrorBase, Segmenter):
    """The Segmenter mixin of Mirror (see the module docstring)."""

    def _uploads(self, op: str, multipart: Multipart) -> dict[str, Multipart]:
        """Return each target's upload of ``multipart``, or raise NotFoundError."""
        return uploads_of(op, multipart, self._targets)

    def _how(self, op: str, multipart: Multipart, pairs: dict[str, Any]) -> str:
        return upload_mode(op, multipart, pairs, self._write_mode)

    def _raise(self, op: str, path: str, names: Names, outcome: Outcome) -> None:
        error = outcome_error(op, path, names, outcome)
        if error is not None:
            raise error

    def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        """Start an upload on every target; if one fails, abort the others'."""
        names, how = self._select("create_multipart", path, pairs, WRITE_MODES)
        with self._traced("create_multipart", path):
            outcome = self._each(
                names,
                how,
                lambda n: self._on(
                    n,
                    "create_multipart",
                    path,
                    lambda s: cast(Segmenter, s).create_multipart(path, **pairs),
                ),
                stop=True,
            )
            if any(e is not None for _, e in outcome.values()):
                for name, (mp, err) in outcome.items():
                    if err is None:
                        with contextlib.suppress(Exception):
                            cast(Segmenter, self._targets[name]).abort_multipart(mp)
                self._raise("create_multipart", path, names, outcome)
            return encode_uploads(names, {n: cast(Multipart, outcome[n][0]) for n in names})

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        """Write part ``number`` to every target; a stream is read once."""
        op = "write_multipart"
        ups = self._uploads(op, multipart)
        how = self._how(op, multipart, pairs)
        names = list(ups)
        with self._traced(op, multipart.path):
            if isinstance(data, bytes | bytearray | memoryview):
                payload = data
                outcome = self._each(
                    names,
                    how,
                    lambda n: self._on(
                        n,
                        op,
                        multipart.path,
                        lambda s: cast(Segmenter, s).write_multipart(
                            ups[n], number, payload, **pairs
                        ),
                    ),
                    stop=False,
                )
                self._raise(op, multipart.path, names, outcome)
                parts = {n: cast(Part, result) for n, (result, _) in outcome.items()}
            else:
                parts = self._fan_out(
                    op,
                    multipart.path,
                    data,
                    names,
                    pairs,
                    lambda n, s, chunks: cast(Segmenter, s).write_multipart(
                        ups[n], number, chunks, **pairs
                    ),
                    [],
                )
        return combined_part(names, parts)

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        """Complete on every target; roll back where it completed if another failed."""
        op = "complete_multipart"
        ups = self._uploads(op, multipart)
        how = self._how(op, multipart, pairs)
        names = list(ups)

        def after_failure(outcome: Outcome) -> None:
            for name in aborts_after_failed_completion(outcome, names):
                with contextlib.suppress(Exception):
                    cast(Segmenter, self._targets[name]).abort_multipart(ups[name])

        with self._traced(op, multipart.path):
            return self._mutate(
                op,
                multipart.path,
                {n: [mp.path] for n, mp in ups.items()},
                names,
                how,
                lambda n, s: cast(Segmenter, s).complete_multipart(
                    ups[n], parts_for(n, parts), **pairs
                ),
                on_failure=after_failure,
            )

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        """Abort on every target, even after one fails."""
        op = "abort_multipart"
        ups = self._uploads(op, multipart)
        how = self._how(op, multipart, pairs)
        names = list(ups)
        with self._traced(op, multipart.path):
            outcome = self._each(
                names,
                how,
                lambda n: self._on(
                    n,
                    op,
                    multipart.path,
                    lambda s: cast(Segmenter, s).abort_multipart(ups[n], **pairs),
                ),
                stop=False,
            )
            self._raise(op, multipart.path, names, outcome)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]:
        """List the parts of the first target's upload."""
        op = "list_multipart"
        ups = self._uploads(op, multipart)
        self._how(op, multipart, pairs)
        name, up = next(iter(ups.items()))
        with self._traced(op, multipart.path):
            parts = self._on(
                name,
                op,
                multipart.path,
                lambda s: prime(cast(Segmenter, s).list_multipart(up, **pairs)),
            )
        served_by.set(name)
        return parts
