"""How the command line shows objects (progress: _progress.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from storager._object import Object, ObjectMode

__all__ = ["kind", "object_fields", "object_json", "stat_text"]


def kind(obj: Object) -> str:
    """Return ``dir``, ``link`` or ``file``."""
    if ObjectMode.DIR in obj.mode:
        return "dir"
    if ObjectMode.LINK in obj.mode:
        return "link"
    return "file"


def _plain(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ObjectMode):
        return [m.name for m in ObjectMode if m in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def object_fields(obj: Object, path: str) -> dict[str, Any]:
    """Return every field of ``obj`` as JSON-ready values, ``path`` shown as given."""
    fields: dict[str, Any] = {"path": path, "type": kind(obj)}
    for name in Object.__dataclass_fields__:
        if name != "path":
            fields[name] = _plain(getattr(obj, name))
    return fields


def object_json(obj: Object, path: str) -> str:
    """Return ``obj`` as one line of JSON."""
    return json.dumps(object_fields(obj, path), ensure_ascii=False, sort_keys=False)


def stat_text(obj: Object, path: str) -> str:
    """Return ``obj`` as ``field: value`` lines, leaving out what the service did not say."""
    lines = []
    for name, value in object_fields(obj, path).items():
        if value is None or value == {}:
            continue
        if name == "mode":
            value = "|".join(value)
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False)
        lines.append(f"{name}: {value}")
    return "\n".join(lines)
