"""Objects as fsspec sees them: the ``info``/``ls`` dictionaries."""

from __future__ import annotations

from typing import Any

from storager._object import Object

__all__ = ["directory_entry", "entry"]


def entry(obj: Object) -> dict[str, Any]:
    """Return the fsspec entry of ``obj``: always ``name``, ``size`` and ``type``.

    ``name`` has no trailing ``/``; a directory's size is 0 (listings report ``None``);
    ``mtime`` is the timezone-aware last modification time when the service gave one.
    """
    if obj.is_dir:
        info = directory_entry(obj.path)
    else:
        info = {
            "name": obj.path.strip("/"),
            "size": obj.content_length or 0,
            "type": "file",
        }
    if obj.etag is not None:
        info["etag"] = obj.etag
    if obj.last_modified is not None:
        info["mtime"] = obj.last_modified
    if obj.content_type is not None:
        info["content_type"] = obj.content_type
    return info


def directory_entry(path: str) -> dict[str, Any]:
    """Return the entry of a directory (explicit, or implied by the keys under it)."""
    return {"name": path.strip("/"), "size": 0, "type": "directory"}
