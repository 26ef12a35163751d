"""A Mirror's policy, with no I/O: shared by the sync ``Mirror`` and ``AsyncMirror``.

Everything here decides; nothing waits. Which targets a call reaches and in what mode,
what a failed read or change reports, which targets a failed change rolls back and in
what words, what a snapshot saved (``Saved``) and the metadata a restore writes back,
and how a multipart upload's id and parts encode each target's. The Mirror itself is
written once, async, and its sync form derived (``codegen/unasync.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

from storager._errors import InvalidArgumentError, NotFoundError, OutcomeUnknownError
from storager._object import Multipart, Part
from storager.combinators._base import check_names
from storager.combinators._mirror_errors import (
    WRITE_MODES,
    FeedAborted,
    MirrorError,
    check_mode,
    describe_error,
    mirror_error,
)

__all__ = [
    "Names",
    "Outcome",
    "Saved",
    "Spools",
    "Touched",
    "aborts_after_failed_completion",
    "all_paths",
    "close_spools",
    "combined_part",
    "encode_uploads",
    "fetch_error",
    "outcome_error",
    "parts_for",
    "paths_of",
    "restore_pairs",
    "rollback_plan",
    "select_targets",
    "upload_mode",
    "uploads_of",
]

Names = list[str]
#: Each target's result, or the error it raised.
Outcome = dict[str, tuple[Any, BaseException | None]]
#: The paths a change may alter: the same on every target, or per target name.
Touched = Names | Mapping[str, Names]

_TAG = "mirror-"


# -- which targets, which mode ------------------------------------------------------------


def select_targets(
    op: str,
    path: str,
    pairs: dict[str, Any],
    modes: Sequence[str],
    *,
    order: Sequence[str],
    known: Iterable[str],
    write_mode: str,
    read_mode: str,
) -> tuple[Names, str]:
    """Take ``targets=`` and ``how=`` out of ``pairs``; return the names and the mode."""
    names = pairs.pop("targets", None)
    how = pairs.pop("how", None)
    if names is None:
        chosen = list(order)
    else:
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise InvalidArgumentError(op, "mirror", path, "targets must be a list of names")
        check_names(op, "mirror", names, known)
        chosen = list(dict.fromkeys(names))
    if how is None:
        how = write_mode if modes is WRITE_MODES else read_mode
    else:
        check_mode(op, "how", how, modes)
    return chosen, cast(str, how)


# -- what a failure reports ---------------------------------------------------------------


def fetch_error(
    op: str, path: str, names: Names, errors: Mapping[str, BaseException]
) -> MirrorError:
    """The error of a read that no target answered: "not found" when none had it."""
    ordered = {n: errors[n] for n in names if n in errors}
    if all(isinstance(e, NotFoundError) for e in ordered.values()):
        outcomes = {n: "not found" for n in ordered}
    else:
        outcomes = {n: describe_error(e) for n, e in ordered.items()}
    return mirror_error(op, path, outcomes, ordered)


def outcome_error(op: str, path: str, names: Names, outcome: Outcome) -> MirrorError | None:
    """The error of a call that changes nothing to roll back, or None if all went well."""
    errors = {n: e for n, (_, e) in outcome.items() if e is not None}
    if not errors:
        return None
    words = {n: "ok" if e is None else describe_error(e) for n, (_, e) in outcome.items()}
    words.update({n: "not attempted" for n in names if n not in outcome})
    return mirror_error(op, path, {n: words[n] for n in names}, errors)


# -- rollback -----------------------------------------------------------------------------


def paths_of(touched: Touched, name: str) -> Names:
    """The paths a change may alter on target ``name``."""
    return list(touched.get(name, ())) if isinstance(touched, Mapping) else list(touched)


def all_paths(touched: Touched) -> Names:
    """Every path a change may alter, on any target."""
    if isinstance(touched, Mapping):
        return [p for paths in touched.values() for p in paths]
    return list(touched)


@dataclass(slots=True)
class Saved:
    """What a path held on a target before a change: its bytes and its metadata."""

    spool: IO[bytes]
    content_type: str | None
    user_metadata: Mapping[str, str]


#: Per target, per path: what it held before a change (None: nothing).
Spools = dict[str, dict[str, Saved | None]]


def close_spools(snapshots: Spools) -> None:
    """Let go of every saved previous version (a spool may be a temporary file)."""
    for snaps in snapshots.values():
        for saved in snaps.values():
            if saved is not None:
                saved.spool.close()


def rollback_plan(
    outcome: Mapping[str, tuple[Any, BaseException | None]], touched: Touched, rollback: str
) -> tuple[dict[str, str], Names]:
    """Decide what a failed change does on each target it reached.

    Returns the words of every target that is left as it is, and the names of those
    to roll back (their words are the caller's: ``ok (rolled back)`` or how it failed).
    A target that may yet take the change (an OutcomeUnknownError elsewhere) must not
    be left alone with it: the targets that succeeded keep it, and say so.
    """
    words: dict[str, str] = {}
    undo: Names = []
    unknown = any(isinstance(err, OutcomeUnknownError) for _, err in outcome.values())
    for name, (_, err) in outcome.items():
        if err is not None:
            words[name] = "cancelled" if isinstance(err, FeedAborted) else describe_error(err)
        elif not paths_of(touched, name):
            words[name] = "ok"
        elif unknown:
            words[name] = "ok (kept: the outcome on another target is unknown)"
        elif rollback == "none":
            words[name] = "ok (not rolled back)"
        else:
            undo.append(name)
    return words, undo


def restore_pairs(
    accepted: Iterable[str], content_type: str | None, user_metadata: Mapping[str, str]
) -> dict[str, Any]:
    """The pairs a restore writes with the saved bytes: the metadata the target accepts."""
    accepted = frozenset(accepted)
    pairs: dict[str, Any] = {}
    if content_type is not None and "content_type" in accepted:
        pairs["content_type"] = content_type
    if user_metadata and "user_metadata" in accepted:
        pairs["user_metadata"] = dict(user_metadata)
    return pairs


# -- multipart: one id for the targets' uploads --------------------------------------------


def _encode(value: object) -> str:
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return _TAG + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(text: str) -> Any:
    """Return what :func:`_encode` encoded, or None when ``text`` is not one of ours."""
    if not text.startswith(_TAG):
        return None
    body = text[len(_TAG) :]
    try:
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        return None


def uploads_of(op: str, multipart: Multipart, known: Iterable[str]) -> dict[str, Multipart]:
    """Return each target's upload of ``multipart``, or raise NotFoundError."""
    known = frozenset(known)
    decoded = _decode(multipart.upload_id)
    ups: dict[str, Multipart] = {}
    if isinstance(decoded, dict) and decoded:
        for name, value in decoded.items():
            if name not in known:
                break
            if isinstance(value, str):
                ups[name] = Multipart(multipart.path, value)
            elif (
                isinstance(value, list)
                and len(value) == 2
                and all(isinstance(v, str) for v in value)
            ):
                ups[name] = Multipart(value[0], value[1])
            else:
                break
        else:
            return ups
    raise NotFoundError(op, "mirror", multipart.path, "no such multipart upload")


def upload_mode(op: str, multipart: Multipart, pairs: dict[str, Any], write_mode: str) -> str:
    """Take ``how=`` out of ``pairs``; an upload's targets are fixed at its creation."""
    if "targets" in pairs:
        raise InvalidArgumentError(
            op, "mirror", multipart.path, "an upload's targets are fixed by create_multipart"
        )
    how = pairs.pop("how", None)
    if how is None:
        return write_mode
    check_mode(op, "how", how, WRITE_MODES)
    return cast(str, how)


def encode_uploads(names: Names, ups: Mapping[str, Multipart]) -> Multipart:
    """The Mirror's upload: the first target's path, and every target's id in one."""
    main = ups[names[0]].path
    encoded = {
        n: ups[n].upload_id if ups[n].path == main else [ups[n].path, ups[n].upload_id]
        for n in names
    }
    return Multipart(main, _encode(encoded))


def combined_part(names: Names, parts: Mapping[str, Part]) -> Part:
    """One part for the targets' parts: their etag if common, else each one's encoded."""
    first = parts[names[0]]
    etags = {n: p.etag for n, p in parts.items()}
    etag = first.etag if len(set(etags.values())) == 1 else _encode(etags)
    return Part(first.number, first.size, etag)


def parts_for(name: str, parts: Sequence[Part]) -> list[Part]:
    """The parts as target ``name`` knows them (its own etags)."""
    out = []
    for part in parts:
        etags = _decode(part.etag)
        etag = etags.get(name, "") if isinstance(etags, dict) else part.etag
        out.append(Part(part.number, part.size, etag))
    return out


def aborts_after_failed_completion(outcome: Outcome, names: Names) -> Names:
    """The targets whose upload a failed completion aborts (none: the uploads stay).

    When no target completed, the uploads stay for another try; when one may yet
    complete (an unknown outcome), aborting would race it. Otherwise the upload is
    over: abort it where it did not complete.
    """
    if all(err is not None for _, err in outcome.values()):
        return []
    if any(isinstance(err, OutcomeUnknownError) for _, err in outcome.values()):
        return []
    return [n for n in names if n not in outcome or outcome[n][1] is not None]
