"""The base every generated service class extends: pairs, paths, errors, metadata.

A service is three layers: this base (shared machinery), the generated class in
``services/<name>/_generated.py`` (typed public methods that validate pairs, resolve
paths and map errors, then call an abstract ``_op`` method), and the hand-written
class that implements the ``_op`` methods and ``_map_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from storager._async_twin import HasAsyncView
from storager._capability import Capability
from storager._errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    OperationTimeoutError,
    PairInvalidError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    ServiceInternalError,
    StorageError,
    UnexpectedError,
)
from storager._names import claim_name
from storager._object import StorageMeta
from storager._pairs import PairSpec, unsupported
from storager._paths import join_dir, normalize_work_dir, relative_to, resolve
from storager._protocols import Storager
from storager._streams import source_error

__all__ = ["ConnectionForm", "Service", "http_status_error", "map_os_error"]

logger = logging.getLogger("storager.service")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConnectionForm:
    """How a service's connection string maps onto its init pairs.

    ``scheme://user@host:port/path?pair=value``: each of ``host``, ``path``, ``user``
    and ``port`` names the init pair that URL part fills, or is ``""`` when the
    service takes nothing there (a value there is then an error). ``aliases`` are
    other schemes of the same service, each with the init pairs it sets, as text
    (``rediss`` sets ``tls=true``).
    """

    scheme: str
    example: str
    host: str = ""
    path: str = ""
    user: str = ""
    port: str = ""
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class Service(HasAsyncView, Storager):
    """Shared machinery of every service; see the module docstring."""

    service_name: ClassVar[str] = ""
    capability: ClassVar[Capability]
    init_pairs: ClassVar[Mapping[str, PairSpec]] = {}
    connection: ClassVar[ConnectionForm]

    _work_dir: str = "/"
    _name: str = ""
    _loose: bool = False
    _closed: bool = False
    #: Set by the ``exclusive_names`` pair: the generated code then checks each name an
    #: operation creates (``storager._names``).
    _exclusive_names: bool = False
    #: The instance's capability when its pairs change it (else the class's).
    _own_capability: Capability | None = None

    # -- construction -----------------------------------------------------------------

    def _begin_init(
        self, loose_pairs: bool, work_dir: str | None, extra: Mapping[str, Any]
    ) -> None:
        """Validate what every service shares; called first by generated ``__init__``."""
        if type(loose_pairs) is not bool:
            raise PairInvalidError(
                "new", self.service_name, "", "pair 'loose_pairs' must be a bool"
            )
        self._loose = loose_pairs
        if extra and not loose_pairs:
            unsupported("new", self.service_name, "", extra)
        if work_dir is not None and not isinstance(work_dir, str):
            raise PairInvalidError("new", self.service_name, "", "pair 'work_dir' must be a str")
        self._work_dir = normalize_work_dir(work_dir, self.service_name)

    def _set_exclusive_names(self, on: bool) -> None:
        """Apply the ``exclusive_names`` pair; the capability reports it per store."""
        self._exclusive_names = on
        self._own_capability = replace(self.capability, exclusive_names=on)

    # -- the parts of Storager every service shares -------------------------------------

    def metadata(self) -> StorageMeta:
        """Return the store's service, name, work_dir and capability."""
        capability = self._own_capability or self.capability
        return StorageMeta(self.service_name, self._name, self._work_dir, capability)

    def close(self) -> None:
        """Release resources; closing twice is fine."""
        if not self._closed:
            self._closed = True
            try:
                self._close()
            finally:
                self._drop_async_view()

    def _close(self) -> None:
        """Release the service's resources (connections, clients)."""

    def __enter__(self: T) -> T:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A store holds open connections, file descriptors and credentials: a pickle of it
        # would carry secrets in clear and restore dead sockets. Processes share the
        # connection string instead.
        raise TypeError(
            f"cannot pickle {self!r}: a store holds connections and credentials; "
            "pickle its connection string and call storager.open() on the other side"
        )

    def __repr__(self) -> str:
        # Only what identifies the store: never credentials or other pairs.
        name = f" name={self._name!r}" if self._name else ""
        return f"<{type(self).__name__} {self.service_name}{name} work_dir={self._work_dir!r}>"

    # -- helpers for generated code -----------------------------------------------------

    def _abs_path(self, op: str, path: str) -> str:
        return resolve(op, self.service_name, self._work_dir, path)

    def _abs_dir(self, op: str, path: str) -> str:
        return join_dir(op, self.service_name, self._work_dir, path)

    def _rel(self, path: str) -> str:
        """Return a store-absolute path as the caller sees it."""
        return relative_to(self._work_dir, path)

    def _claim_name(self, op: str, path: str) -> None:
        """Refuse a name taken by the other kind (file or directory); see ``_names``."""
        claim_name(self, self.service_name, op, path)

    def _probe_object(self, op: str, path: str) -> bool:
        """Return whether an object (not a directory) has the store-absolute path.

        A service that takes the ``exclusive_names`` pair answers it with one request.
        """
        raise NotImplementedError(f"{self.service_name} cannot check names")

    def _probe_children(self, op: str, prefix: str) -> bool:
        """Return whether any key starts with ``prefix`` (a directory path).

        A service that takes the ``exclusive_names`` pair answers it with one request.
        """
        raise NotImplementedError(f"{self.service_name} cannot check names")

    def _reject_pairs(self, op: str, path: str, pairs: Mapping[str, Any]) -> None:
        """Raise for pairs the service does not accept, unless the store is loose."""
        if not self._loose:
            unsupported(op, self.service_name, path, pairs)

    def _map_iter(self, iterator: Iterator[T], op: str, path: str) -> Iterator[T]:
        """Pass ``iterator`` through, mapping the errors it raises."""
        try:
            yield from iterator
        except StorageError:
            raise
        except Exception as exc:
            raise self._translate(exc, op, path)  # noqa: B904 - _translate chains the cause

    def _translate(self, exc: Exception, op: str, path: str) -> BaseException:
        """Return what to raise for ``exc``: the caller's own source error, or a mapped one.

        An exception the caller's data source raised (see ``iter_chunks``) goes back to
        the caller unchanged, however the service wrapped it; anything else goes through
        ``_map_error`` with ``exc`` chained as the cause.
        """
        own = source_error(exc)
        if own is not None:
            return own
        mapped = self._map_error(exc, op, path)
        mapped.__cause__ = exc
        return mapped

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        """Turn a vendor or OS error into the storager error it means.

        Services override this: it is the one place their vendor errors are mapped.
        The default understands the builtin OSError family.
        """
        return map_os_error(exc, op, self.service_name, path)


#: What an HTTP status means, for every service that speaks HTTP. Services map their
#: vendor's error codes first and fall back on this; a service whose vendor gives a
#: status another meaning (S3 and Azure answer 503 when throttling) says so before it.
_HTTP_STATUS_ERRORS: Mapping[int, type[StorageError]] = {
    400: InvalidArgumentError,
    401: PermissionDeniedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: OperationTimeoutError,
    411: InvalidArgumentError,
    412: PreconditionFailedError,
    413: InvalidArgumentError,
    416: InvalidArgumentError,
    429: RateLimitedError,
}


def http_status_error(status: int) -> type[StorageError] | None:
    """Return the storager error class an HTTP status means, or None if it means none."""
    cls = _HTTP_STATUS_ERRORS.get(status)
    if cls is None and 500 <= status <= 599:
        return ServiceInternalError
    return cls


def map_os_error(exc: Exception, op: str, service: str, path: str) -> StorageError:
    """Map the builtin OSError family (and timeouts) to storager errors."""
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(op, service, path)
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(op, service, path)
    if isinstance(exc, FileExistsError):
        return AlreadyExistsError(op, service, path)
    if isinstance(exc, IsADirectoryError):
        return ObjectModeInvalidError(op, service, path, "is a directory")
    if isinstance(exc, NotADirectoryError):
        return ObjectModeInvalidError(op, service, path, "a parent is not a directory")
    if isinstance(exc, TimeoutError):
        return OperationTimeoutError(op, service, path)
    logger.debug("unmapped %s error in %s %s: %r", service, op, path, exc)
    return UnexpectedError(op, service, path, type(exc).__name__)
