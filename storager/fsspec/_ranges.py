"""Coalescing byte ranges: ``cat_ranges`` fetches nearby ranges of one file in one read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["RangePlan", "coalesce", "counts_from_end", "read_window"]

#: A merged read never grows past this many bytes.
MAX_BLOCK = 64 << 20


@dataclass(slots=True)
class RangePlan:
    """The reads to make, and where each requested range lies in them.

    Attributes:
        reads: ``(path, start, end)`` of each read; ``None`` bounds as the caller gave them.
        picks: For each requested range, ``(read index, offset in it, length or None)``.
    """

    reads: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    picks: list[tuple[int, int, int | None]] = field(default_factory=list)

    def slices(self, fetched: Sequence[bytes | BaseException]) -> list[bytes | BaseException]:
        """Cut each requested range out of the fetched reads (errors stay errors)."""
        out: list[bytes | BaseException] = []
        for index, offset, length in self.picks:
            data = fetched[index]
            if isinstance(data, BaseException):
                out.append(data)
            elif length is None:
                out.append(data[offset:])
            else:
                out.append(data[offset : offset + length])
        return out


def coalesce(
    paths: Sequence[str],
    starts: Sequence[int | None],
    ends: Sequence[int | None],
    max_gap: int,
    max_block: int = MAX_BLOCK,
) -> RangePlan:
    """Plan the reads for the ranges ``[starts[i], ends[i])`` of ``paths[i]``.

    Ranges of one file with non-negative bounds that lie within ``max_gap`` bytes of each
    other (overlapping included) are merged into one read of at most ``max_block`` bytes;
    any other range (open-ended, or counted from the end) is read as given.
    """
    plan = RangePlan()
    plan.picks = [(0, 0, None)] * len(paths)
    bounded: dict[str, list[tuple[int, int, int]]] = {}
    for i, (path, start, end) in enumerate(zip(paths, starts, ends, strict=True)):
        begin = start or 0
        if end is None or end < 0 or begin < 0:
            plan.picks[i] = (len(plan.reads), 0, None)
            plan.reads.append((path, start, end))
        else:
            bounded.setdefault(path, []).append((begin, max(begin, end), i))
    for path, ranges in bounded.items():
        ranges.sort()
        group: list[tuple[int, int, int]] = []
        group_end = 0
        for begin, end, i in ranges:
            if group and (begin - group_end > max_gap or end - group[0][0] > max_block):
                _emit(plan, path, group, group_end)
                group = []
            group_end = max(group_end, end) if group else end
            group.append((begin, end, i))
        if group:
            _emit(plan, path, group, group_end)
    return plan


def counts_from_end(start: int | None, end: int | None) -> bool:
    """Whether the range ``[start, end)`` needs the file's size (a negative bound)."""
    return (start is not None and start < 0) or (end is not None and end < 0)


def read_window(start: int | None, end: int | None, size: int | None) -> dict[str, int] | None:
    """Return the ``offset``/``size`` pairs of a read of ``[start, end)``, as slicing would.

    Negative bounds count from the end of a file of ``size`` bytes (give it when
    :func:`counts_from_end` says so); ``None`` means the whole file. Returns ``{}`` for
    the whole file, and ``None`` when the range is empty.
    """
    if size is not None:
        start = max(0, size + start) if start is not None and start < 0 else start
        end = max(0, size + end) if end is not None and end < 0 else end
    offset = start or 0
    if end is None:
        return {"offset": offset} if offset else {}
    if end <= offset:
        return None
    return {"offset": offset, "size": end - offset}


def _emit(plan: RangePlan, path: str, group: list[tuple[int, int, int]], end: int) -> None:
    index = len(plan.reads)
    first = group[0][0]
    plan.reads.append((path, first, end))
    for begin, stop, i in group:
        plan.picks[i] = (index, begin - first, stop - begin)
