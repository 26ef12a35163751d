"""How the command line shows objects and progress."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TextIO

from storager._object import Object, ObjectMode

__all__ = ["Progress", "kind", "object_fields", "object_json", "stat_text"]


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


class Progress:
    """Report bytes copied on stderr, at most ten times a second."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._name = ""
        self._done = 0
        self._total: int | None = None
        self._shown = 0.0
        isatty = getattr(self._stream, "isatty", None)
        # On a terminal one line is redrawn; elsewhere (a log file) one line per object.
        self._live = bool(isatty and isatty())

    def start(self, name: str, total: int | None) -> None:
        """Begin reporting the copy of ``name``, ``total`` bytes if known."""
        self._name, self._done, self._total, self._shown = name, 0, total, 0.0
        if self._live:
            self._show()

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes copied."""
        self._done += n
        now = time.monotonic()
        if self._live and now - self._shown >= 0.1:
            self._shown = now
            self._show()

    def finish(self) -> None:
        """Show the final count and end the line."""
        self._show()
        self._stream.write("\n")
        self._stream.flush()

    def _show(self) -> None:
        if self._total:
            text = f"{self._done}/{self._total} bytes ({100 * self._done // self._total}%)"
        else:
            text = f"{self._done} bytes"
        self._stream.write(f"\r{self._name}: {text}" if self._live else f"{self._name}: {text}")
        self._stream.flush()
