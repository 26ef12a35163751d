"""The changes besides writes (delete, copy and move, create_dir), as plans (``_plan``).

Each is one server-side script (``_scripts``) whose refusal becomes the storager error
it means; a copy or move of a missing source first asks whether the name is a
directory. The sync store runs these plans with ``run``, its async twin with ``arun``.
"""

from __future__ import annotations

from collections.abc import Callable

from storager._errors import ObjectModeInvalidError
from storager._object import Object, ObjectMode
from storager.services.redis._errors import map_commit_error
from storager.services.redis._keys import Keys, encode_path, lex_prefix_range
from storager.services.redis._manifest import parse_mtime
from storager.services.redis._plan import Plan, RoundTrip
from storager.services.redis._scripts import Scripts, refusal

__all__ = ["copy_or_move", "create_dir", "delete", "has_children"]

SERVICE = "redis"


def has_children(keys: Keys, path: str) -> Plan[bool]:
    """Return the plan that answers whether anything lies under ``path``.

    A namespace without expiring objects needs only a read; otherwise a script first
    drops the entries of expired objects, which would still imply their directories.
    """
    under = encode_path(path.rstrip("/"))
    low, high = lex_prefix_range(under + b"/")
    first, expiring = yield RoundTrip(
        "pipeline",
        [("ZRANGEBYLEX", keys.index, low, high, "LIMIT", 0, 1), ("ZCARD", keys.expiring)],
    )
    if not first or not expiring:
        return bool(first)
    found = yield from Scripts.has_children.steps(
        [keys.index, keys.expiring], [keys.manifest_prefix, under]
    )
    return bool(found)


def delete(keys: Keys, path: str) -> Plan[None]:
    """Return the plan that deletes the object (or marker) at ``path``, if any."""
    key_path = encode_path(path)
    try:
        yield from Scripts.delete.steps(
            [keys.manifest(key_path), keys.index, keys.refs, keys.doomed, keys.expiring],
            [key_path],
        )
    except Exception as exc:
        raise map_commit_error(exc, "delete", SERVICE, path) from exc


def copy_or_move(keys: Keys, op: str, src: str, dst: str, etag: str) -> Plan[None]:
    """Return the plan of ``op`` (``copy`` or ``move``): a new manifest over the same
    chunks, no data moved, tagged ``etag`` (the store's own form, never an MD5)."""
    src_path, dst_path = encode_path(src), encode_path(dst)
    try:
        reply = yield from Scripts.copy.steps(
            [
                keys.manifest(src_path),
                keys.manifest(dst_path),
                keys.index,
                keys.refs,
                keys.doomed,
                keys.expiring,
            ],
            [src_path, dst_path, etag, op],
        )
    except Exception as exc:
        raise map_commit_error(exc, op, SERVICE, src) from exc
    if reply[0] == b"missing" and (yield from has_children(keys, src)):
        raise ObjectModeInvalidError(op, SERVICE, src, "is a directory")
    if reply[0] != b"ok":
        raise refusal(reply[0], op, SERVICE, src if reply[0] == b"missing" else dst)


def create_dir(keys: Keys, path: str, rel: Callable[[str], str], etag: str) -> Plan[Object]:
    """Return the plan that makes the directory marker of ``path``, tagged ``etag``;
    ``rel`` names it."""
    marker = path if path.endswith("/") else path + "/"
    key_path = encode_path(marker)
    try:
        reply = yield from Scripts.create_dir.steps(
            [keys.manifest(key_path), keys.index, keys.expiring],
            [key_path, etag],
        )
    except Exception as exc:
        raise map_commit_error(exc, "create_dir", SERVICE, path) from exc
    if reply[0] != b"ok":
        raise refusal(reply[0], "create_dir", SERVICE, path)
    return Object(rel(marker), ObjectMode.DIR, last_modified=parse_mtime(reply[1]))
