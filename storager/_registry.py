"""The service registry and connection strings: ``storager.open(url, **pairs)``."""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from storager._errors import ConnectionStringInvalidError, ServiceNotRegisteredError
from storager._pairs import parse_text_value
from storager._protocols import Storager
from storager._service import Service

__all__ = [
    "open",
    "parse_connection_string",
    "redact_url",
    "register",
    "reload_entry_points",
    "service_class",
]

ENTRY_POINT_GROUP = "storager.services"

_lock = threading.Lock()
_registered: dict[str, type[Service]] = {}
_entry_points_loaded = False
_from_entry_points: set[str] = set()


def register(scheme: str, cls: type[Service]) -> None:
    """Register a service class under a connection-string scheme.

    Third-party packages usually declare an entry point in the ``storager.services``
    group instead (``myscheme = "mypackage.module:MyStorage"``); this is for code that
    builds services at run time.
    """
    with _lock:
        _registered[scheme] = cls


def service_class(scheme: str) -> type[Service]:
    """Return the service class registered for ``scheme``.

    Raises:
        ServiceNotRegisteredError: No built-in service, registration or entry point
            provides the scheme.
    """
    cls = _registered.get(scheme)
    if cls is not None:
        return cls
    from storager.services import BUILTIN

    if scheme in BUILTIN:
        module_name, class_name = BUILTIN[scheme]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ServiceNotRegisteredError(
                "open",
                scheme,
                "",
                f"service needs packages that are not installed ({exc.name}); "
                f"install storager[{_extra(scheme)}]",
            ) from exc
        cls = cast(type[Service], getattr(module, class_name))
        register(scheme, cls)
        return cls
    _load_entry_points()
    cls = _registered.get(scheme)
    if cls is None:
        raise ServiceNotRegisteredError("open", scheme, "", f"no service for scheme {scheme!r}")
    return cls


def _extra(scheme: str) -> str:
    return {"azblob": "azure", "rediss": "redis"}.get(scheme, scheme)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    # Imported here: importlib.metadata costs more than the rest of the registry, and
    # only a scheme that is not built in needs it.
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _registered:
            continue
        try:
            loaded = ep.load()
        except Exception as exc:
            raise ServiceNotRegisteredError(
                "open", ep.name, "", f"entry point {ep.value!r} failed to load"
            ) from exc
        register(ep.name, loaded)
        _from_entry_points.add(ep.name)
    _entry_points_loaded = True


def reload_entry_points() -> None:
    """Forget the services loaded from entry points, so the next lookup scans again.

    For code that installs a plugin at run time, and for tests. Services given to
    :func:`register` and the built-in ones stay.
    """
    global _entry_points_loaded
    with _lock:
        for name in _from_entry_points:
            _registered.pop(name, None)
        _from_entry_points.clear()
        _entry_points_loaded = False


def redact_url(url: str, public_keys: frozenset[str] | None = None) -> str:
    """Return ``url`` with its password and every query value not known to be public hidden.

    A query value is shown only when its key, percent-decoded, names a pair declared
    non-secret: ``public_keys``, or, when that is None, the non-secret init pairs of the
    service registered for the URL's scheme. Any other value (a secret pair, a typo such
    as ``CREDENTIAL=``, a percent-encoded key, an unknown scheme) shows as ``***``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable connection string>"
    if public_keys is None:
        public_keys = _public_keys(parts.scheme.lower())
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostport}"
    query = "&".join(
        f"{key}={value}" if unquote(key) in public_keys else f"{shown_key(key)}=***"
        for key, _, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    out = f"{parts.scheme}://{netloc}{parts.path}"
    return f"{out}?{query}" if query else out


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def shown_key(key: str) -> str:
    """Return a query key as an error may show it: plain names whole, anything else hidden.

    A key that is not a short plain name may be a value pasted in the wrong place.
    """
    return key if _PLAIN_KEY.fullmatch(key) else "<key>"


def _public_keys(scheme: str) -> frozenset[str]:
    """Return the names of the non-secret init pairs of ``scheme``'s service, if known."""
    try:
        specs = service_class(scheme).init_pairs
    except Exception:  # an unknown or broken scheme: show no value at all
        return frozenset()
    return frozenset(name for name, spec in specs.items() if not spec.secret)


def parse_connection_string(url: str) -> tuple[type[Service], dict[str, Any]]:
    """Split a connection string into its service class and typed init pairs.

    The form is ``scheme://[user@]host[:port]/path?pair=value&...``; which pair each
    URL part fills is the service's ``connection`` form. Values are percent-decoded
    and parsed with the pair's declared type.

    Raises:
        ConnectionStringInvalidError: Malformed URL, unknown or repeated key, bad value,
            or a URL part the service does not take.
        ServiceNotRegisteredError: Unknown scheme.
    """
    if not isinstance(url, str) or ":" not in url:
        shown = redact_url(url, frozenset()) if isinstance(url, str) else repr(type(url))
        raise ConnectionStringInvalidError("open", "", shown, "expected scheme://...")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConnectionStringInvalidError(
            "open", "", redact_url(url, frozenset()), f"malformed URL ({exc})"
        ) from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise ConnectionStringInvalidError(
            "open", "", redact_url(url, frozenset()), "missing scheme"
        )
    cls = service_class(scheme)
    specs = cls.init_pairs
    shown = redact_url(url, frozenset(name for name, spec in specs.items() if not spec.secret))
    form = cls.connection
    pairs: dict[str, Any] = {
        name: parse_text_value(scheme, specs[name], text)
        for name, text in form.aliases.get(scheme, {}).items()
    }

    def put(part: str, target: str, text: str | None) -> None:
        if not text:
            return
        if not target:
            raise ConnectionStringInvalidError(
                "open", scheme, shown, f"{scheme} takes no {part} (form: {form.example})"
            )
        pairs[target] = parse_text_value(scheme, specs[target], unquote(text))

    if parts.password is not None:
        raise ConnectionStringInvalidError(
            "open", scheme, shown, "passwords in the URL are refused; use the credential pair"
        )
    put("user", form.user, parts.username)
    put("host", form.host, parts.hostname)
    put("port", form.port, str(port) if port is not None else None)
    if parts.path:
        put("path", form.path, parts.path)
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConnectionStringInvalidError("open", scheme, shown, "malformed query") from None
    for key, text in query:
        if key not in specs:
            known = ", ".join(sorted(specs))
            raise ConnectionStringInvalidError(
                "open", scheme, shown, f"unknown key {shown_key(key)!r} (known: {known})"
            )
        if key in pairs:
            raise ConnectionStringInvalidError(
                "open", scheme, shown, f"key {shown_key(key)!r} given twice"
            )
        pairs[key] = parse_text_value(scheme, specs[key], text)
    return cls, pairs


def open(url: str, **pairs: Any) -> Storager:
    """Open a store from a connection string.

    Pairs given as keywords win over the same pairs in the string.

    Example:
        >>> store = storager.open("fs:///tmp/data?work_dir=/photos/")
        >>> store.write("a.txt", b"hello")

    Raises:
        ConnectionStringInvalidError: The string is malformed or has unknown keys.
        ServiceNotRegisteredError: No service handles the scheme.
        PairRequiredError: A pair the service needs is missing.
    """
    cls, url_pairs = parse_connection_string(url)
    merged: Mapping[str, Any] = {**url_pairs, **pairs}
    return cls(**merged)
