"""Where a value sits in a tree file, ``${VAR}`` expansion, and the value converters.

Every error about a tree file names the file and the node path (``trees.photos.targets.a``)
and says what was wrong. Values taken from the environment are never shown: every
message this package raises is scrubbed of them first.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from storager._errors import (
    ConnectionStringInvalidError,
    InvalidArgumentError,
    PairInvalidError,
    PairRequiredError,
    PathInvalidError,
    StorageError,
)

__all__ = [
    "Converter",
    "Environment",
    "Where",
    "boolean",
    "error_class",
    "error_text",
    "integer",
    "log_level",
    "logger_named",
    "number",
    "optional",
    "record",
    "size",
    "string",
    "table_of",
    "tagged",
]

#: Turns a value read from the file (after ``${VAR}`` expansion) into a constructor argument.
Converter = Callable[[object, "Where"], Any]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Where:
    """A place in a tree file: the file's name and the TOML path of a node or value."""

    file: str
    node: str = ""

    def key(self, name: str) -> Where:
        """Return the place of ``name`` inside this table (quoted as TOML would need)."""
        # A quoted key as TOML writes it (JSON's escapes are TOML's): one line, always.
        shown = name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)
        return Where(self.file, f"{self.node}.{shown}" if self.node else shown)

    def item(self, index: int) -> Where:
        """Return the place of element ``index`` of this array."""
        return Where(self.file, f"{self.node}[{index}]")

    def error(
        self, reason: str, cls: type[InvalidArgumentError] = ConnectionStringInvalidError
    ) -> InvalidArgumentError:
        """Return the error for this place: ``load FILE: NODE: reason``."""
        return cls("load", "", self.file, f"{self.node}: {reason}" if self.node else reason)


# -- ${VAR} ------------------------------------------------------------------------------

# "$$" is a literal "$"; "${NAME}" is looked up; "${" anything else is refused.
_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Environment:
    """Expands ``${NAME}`` from a mapping, and remembers the values it handed out.

    The only thing expansion does is look a name up: no defaults, no nesting, no
    commands, and a value is never expanded again. :meth:`scrub` hides every value
    handed out so far from a message.
    """

    variables: Mapping[str, str]
    _revealed: set[str] = field(default_factory=set)

    def expand(self, value: object, where: Where, *, url: bool = False) -> Any:
        """Return ``value`` with every ``${NAME}`` in its strings replaced.

        Args:
            value: A value from the file; tables and arrays are expanded throughout.
            where: Its place, for errors.
            url: Percent-encode each value but its ``/``, so that it stays within its
                part of a connection string: a ``&``, ``=``, ``?``, ``#``, ``@`` or ``:``
                in a secret cannot add a pair, a host or a user.

        Raises:
            ConnectionStringInvalidError: An unset variable (named, never a value), or
                ``${`` not followed by a plain name and ``}``.
        """
        if isinstance(value, str):
            return self._expand_text(value, where, url)
        if isinstance(value, dict):
            return {k: self.expand(v, where.key(k), url=url) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, where.item(i), url=url) for i, v in enumerate(value)]
        return value

    def _expand_text(self, text: str, where: Where, url: bool) -> str:
        if "$" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            if token == "$$":
                return "$"
            name = match.group(1)
            if name is None:
                raise where.error("'${' without a closing '}'; write $${ for a literal ${")
            if not _NAME.fullmatch(name):
                shown = name if len(name) <= 40 else name[:40] + "..."
                raise where.error(
                    f"${{{shown}}} is not a variable: only ${{NAME}} is expanded (letters, "
                    "digits and _), with no defaults or commands; write $$ for a literal $"
                )
            found = self.variables.get(name)
            if found is None:
                raise where.error(f"environment variable {name} is not set")
            if found:
                self._revealed.add(found)
            return quote(found, safe="/") if url else found

        return _TOKEN.sub(replace, text)

    def scrub(self, text: str) -> str:
        """Return ``text`` with every value taken from the environment shown as ``***``."""
        for value in sorted(self._revealed, key=len, reverse=True):
            for form in {value, quote(value, safe="/"), quote(value, safe=""), repr(value)}:
                text = text.replace(form, "***")
        return text

    def reveals(self, text: str) -> bool:
        """Return whether ``text`` contains a value taken from the environment."""
        return self.scrub(text) != text


# -- converters --------------------------------------------------------------------------


def _kind(value: object) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def string(value: object, where: Where) -> str:
    """A string."""
    if not isinstance(value, str):
        raise where.error(f"expected a string, not {_kind(value)}")
    return value


def integer(value: object, where: Where) -> int:
    """An integer, or a string of one (so that it can come from ``${VAR}``)."""
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise where.error("expected an integer; the string given is not one") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an integer, not {_kind(value)}")
    return value


def number(value: object, where: Where) -> float | int:
    """A finite number, or a string of one."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise where.error("expected a number; the string given is not one") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"expected a number, not {_kind(value)}")
    if not math.isfinite(value):
        raise where.error("expected a finite number")
    return value


def boolean(value: object, where: Where) -> bool:
    """``true`` or ``false``, or the string of one."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise where.error(f"expected true or false, not {_kind(value)}")
    return value


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?i?B)?\s*")
_UNITS = {"B": 1} | {
    f"{p}{i}B": (1024 if i else 1000) ** (n + 1) for n, p in enumerate("KMGTP") for i in ("", "i")
}


def size(value: object, where: Where) -> int:
    """A byte count: an integer, or a string such as ``"4 MiB"`` or ``"10GB"``."""
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        unit = (match.group(2) or "B") if match else ""
        if not match or unit not in _UNITS:
            raise where.error(
                'expected a byte count such as 4194304, "4 MiB" or "10GB" '
                "(units B, KB, KiB, MB, MiB, GB, GiB, TB, TiB, PB, PiB)"
            )
        amount = float(match.group(1)) if "." in match.group(1) else int(match.group(1))
        return int(amount * _UNITS[unit])
    count = integer(value, where)
    if count < 0:
        raise where.error("a byte count must not be negative")
    return count


_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def log_level(value: object, where: Where) -> int:
    """A logging level: a name (``"INFO"``) or its number."""
    if isinstance(value, str) and value.strip().upper() in _LEVELS:
        return int(logging.getLevelName(value.strip().upper()))
    if isinstance(value, str):
        raise where.error(f"expected a logging level ({', '.join(sorted(_LEVELS))}) or a number")
    return integer(value, where)


def logger_named(value: object, where: Where) -> logging.Logger:
    """A logger, by its name."""
    return logging.getLogger(string(value, where))


def optional(convert: Converter, none: str = "none") -> Converter:
    """Return ``convert`` that also takes the string ``none`` for None (TOML has no null)."""

    def converter(value: object, where: Where) -> Any:
        if value == none:
            return None
        return convert(value, where)

    return converter


def table_of(convert: Converter) -> Converter:
    """Return a converter of a table whose every value ``convert`` takes."""

    def converter(value: object, where: Where) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise where.error(f"expected a table, not {_kind(value)}")
        return {k: convert(v, where.key(k)) for k, v in value.items()}

    return converter


def record(
    build: Callable[..., Any],
    fields: Mapping[str, Converter],
    *,
    skip: frozenset[str] = frozenset(),
) -> Converter:
    """Return a converter of a table into ``build(**fields)``.

    Unknown keys are refused, naming the known ones; an InvalidArgumentError from
    ``build`` (a value out of range) is raised again at the table's place.
    """

    def converter(value: object, where: Where) -> Any:
        if not isinstance(value, dict):
            raise where.error(f"expected a table, not {_kind(value)}")
        given: dict[str, Any] = {}
        for key, item in value.items():
            if key in skip:
                continue
            if key not in fields:
                known = ", ".join(fields) or "none"
                raise where.key(key).error(f"unknown key (known: {known})")
            given[key] = fields[key](item, where.key(key))
        try:
            return build(**given)
        except StorageError as exc:
            raise where.error(exc.reason, error_class(exc)) from exc

    return converter


def tagged(choices: Mapping[str, Converter], tag: str = "kind") -> Converter:
    """Return a converter of a table whose ``tag`` picks the converter of the rest."""

    def converter(value: object, where: Where) -> Any:
        if not isinstance(value, dict):
            raise where.error(f"expected a table with {tag} = ..., not {_kind(value)}")
        name = value.get(tag)
        if name not in choices:
            known = ", ".join(repr(c) for c in choices)
            raise where.key(tag).error(f"expected one of {known}")
        return choices[str(name)](value, where)

    return converter


def error_class(exc: BaseException) -> type[InvalidArgumentError]:
    """Return the class a file error caused by ``exc`` takes.

    A pair a service or combinator refused keeps its class (PairRequiredError,
    PairInvalidError, PathInvalidError); anything else the file got wrong is a
    ConnectionStringInvalidError, which the command line reports as a usage error.
    """
    if isinstance(exc, PairRequiredError | PairInvalidError | PathInvalidError):
        return type(exc)
    return ConnectionStringInvalidError


def error_text(exc: StorageError) -> str:
    """Return ``exc``'s message as ``op service:path: reason``, leaving out empty parts."""
    where = f"{exc.service}:{exc.path}" if exc.path else exc.service
    head = f"{exc.op} {where}" if where else exc.op
    return f"{head}: {exc.reason}"
