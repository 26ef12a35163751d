"""Pairs: typed, named options declared in definitions/pairs.toml.

Generated service code calls the ``check_*`` functions on every pair a caller gives,
so a wrong type is a :class:`PairInvalidError` naming the operation, the service and
the pair, never a confusing failure deep in a vendor SDK. Values of secret pairs
never appear in messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from storager._errors import (
    ConnectionStringInvalidError,
    PairInvalidError,
    PairUnsupportedError,
)

__all__ = [
    "PairSpec",
    "check_bool",
    "check_choice",
    "check_int",
    "check_io_callback",
    "check_str",
    "check_str_map",
    "parse_text_value",
    "unsupported",
]


@dataclass(frozen=True, slots=True)
class PairSpec:
    """One init pair a service accepts, as codegen declares it.

    Attributes:
        name: The pair's name.
        type: One of ``str``, ``int``, ``bool``, ``float``, ``str_map``, ``io_callback``.
        description: What the pair means.
        required: Whether the store cannot start without it.
        secret: Whether its value must never be shown.
        choices: The allowed values, when the pair is an enumeration.
    """

    name: str
    type: str
    description: str
    required: bool = False
    secret: bool = False
    choices: tuple[str, ...] = ()


def check_str(op: str, service: str, path: str, name: str, value: object) -> None:
    """Raise PairInvalidError unless ``value`` is a str."""
    if type(value) is not str and not isinstance(value, str):
        raise PairInvalidError(op, service, path, f"pair {name!r} must be a str")


def check_int(op: str, service: str, path: str, name: str, value: object) -> None:
    """Raise PairInvalidError unless ``value`` is a non-negative int (not a bool)."""
    if type(value) is bool or not isinstance(value, int):
        raise PairInvalidError(op, service, path, f"pair {name!r} must be an int")
    if value < 0:
        raise PairInvalidError(op, service, path, f"pair {name!r} must not be negative")


def check_bool(op: str, service: str, path: str, name: str, value: object) -> None:
    """Raise PairInvalidError unless ``value`` is a bool."""
    if type(value) is not bool:
        raise PairInvalidError(op, service, path, f"pair {name!r} must be a bool")


def check_float(op: str, service: str, path: str, name: str, value: object) -> None:
    """Raise PairInvalidError unless ``value`` is a non-negative number."""
    if type(value) is bool or not isinstance(value, int | float):
        raise PairInvalidError(op, service, path, f"pair {name!r} must be a number")
    if value < 0:
        raise PairInvalidError(op, service, path, f"pair {name!r} must not be negative")


def check_str_map(op: str, service: str, path: str, name: str, value: object) -> None:
    """Raise PairInvalidError unless ``value`` maps str to str."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise PairInvalidError(op, service, path, f"pair {name!r} must map str to str")


def check_io_callback(op: str, service: str, path: str, name: str, value: object) -> None:
    """Raise PairInvalidError unless ``value`` is callable."""
    if not callable(value):
        raise PairInvalidError(op, service, path, f"pair {name!r} must be callable")


def check_choice(
    op: str, service: str, path: str, name: str, value: object, choices: tuple[str, ...]
) -> None:
    """Raise PairInvalidError unless ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise PairInvalidError(op, service, path, f"pair {name!r} must be one of {allowed}")


CHECKS = {
    "str": check_str,
    "int": check_int,
    "bool": check_bool,
    "float": check_float,
    "str_map": check_str_map,
    "io_callback": check_io_callback,
}


def unsupported(op: str, service: str, path: str, pairs: Mapping[str, Any]) -> None:
    """Raise PairUnsupportedError naming every pair in ``pairs``."""
    names = ", ".join(repr(name) for name in sorted(pairs))
    word = "pair" if len(pairs) == 1 else "pairs"
    raise PairUnsupportedError(
        op, service, path, f"{word} {names} not supported by {service} for {op}"
    )


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_text_value(service: str, spec: PairSpec, text: str) -> object:
    """Parse a connection-string value by its pair's declared type.

    Raises:
        ConnectionStringInvalidError: The text is not a value of that type.
    """
    shown = "***" if spec.secret else repr(text)
    try:
        if spec.type == "str":
            value: object = text
        elif spec.type == "int":
            value = int(text, 10)
            if value < 0:
                raise ValueError(text)
        elif spec.type == "float":
            value = float(text)
        elif spec.type == "bool":
            lowered = text.lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(text)
            value = lowered in _TRUE
        else:
            raise ConnectionStringInvalidError(
                "open", service, "", f"pair {spec.name!r} cannot be given in a connection string"
            )
    except ValueError:
        raise ConnectionStringInvalidError(
            "open", service, "", f"pair {spec.name!r}: {shown} is not a valid {spec.type}"
        ) from None
    if spec.choices and value not in spec.choices:
        raise ConnectionStringInvalidError(
            "open", service, "", f"pair {spec.name!r}: {shown} is not one of {spec.choices}"
        )
    return value
