"""The base protocol and the optional capability protocols.

A store is a :class:`Storager`; what else it can do is told by ``isinstance``
against the small capability protocols (``isinstance(store, Copier)``). They are
``Protocol`` classes, so type checkers treat them structurally, but at run time the
check is nominal: a class is a ``Copier`` when it inherits ``Copier`` (generated
services do, from their service.toml; combinators pick a subclass per set of
capabilities their children allow). A structural runtime check costs 3-7 µs on
Python 3.11 because it inspects every member; the nominal check walks the MRO in C
in under 0.15 µs, yes or no (see benchmarks/).
"""

from __future__ import annotations

from abc import ABCMeta
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, Self, TypedDict, runtime_checkable

from storager._object import Multipart, Object, Part, StorageMeta

__all__ = [
    "Appender",
    "Copier",
    "Direr",
    "IoCallback",
    "Linker",
    "Mover",
    "NoOtherPairs",
    "Presigner",
    "Reader",
    "Segmenter",
    "Storager",
    "WriteData",
]

#: What ``write`` accepts: bytes-like, a binary file object, or an iterable of bytes.
WriteData = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]

#: What ``open_reader`` returns: a binary file (the async side's is ``AsyncReader``).
Reader = BinaryIO
#: Called with the number of bytes moved each time a chunk is read or written.
IoCallback = Callable[[int], None]


class NoOtherPairs(TypedDict):
    """The pairs a service method takes beyond those it names: none, for a type checker.

    Generated service methods name every pair the service accepts and end in
    ``**pairs: Unpack[NoOtherPairs]``, so a misspelt pair is a type error on a service
    class. At run time the catch-all still receives unknown pairs: a store opened with
    ``loose_pairs=True`` ignores them, any other raises ``PairUnsupportedError``.
    """


if TYPE_CHECKING:
    _ProtocolMeta = ABCMeta
else:
    _ProtocolMeta = type(Protocol)


class _CapabilityMeta(_ProtocolMeta):
    """Protocol metaclass whose ``isinstance`` is the plain nominal (MRO) check.

    The protocols are also marked ``@runtime_checkable`` so that type checkers accept
    ``isinstance(store, Copier)`` and narrow on it; the check itself stays this one.
    """

    # type's own checks walk the MRO in C: no Python frame, no cache to fill.
    __instancecheck__ = type.__instancecheck__
    __subclasscheck__ = type.__subclasscheck__


@runtime_checkable
class Storager(Protocol, metaclass=_CapabilityMeta):
    """The operations every store has.

    Every operation takes a path (relative to the store's ``work_dir``, or absolute
    within the store) and keyword *pairs*; a pair the service does not accept raises
    :class:`~storager.PairUnsupportedError` unless the store was opened with
    ``loose_pairs=True``.

    Here pairs are open (``**pairs: Any``): which pairs are valid depends on the service
    a connection string picks at run time, and combinators pass pairs through. The
    service classes (``FsStorage``, ``S3Storage``...) name each pair they accept, with
    its type, so on them a misspelt or mistyped pair is a type error.
    """

    def metadata(self) -> StorageMeta:
        """Return the store's service, name, work_dir and capability."""
        ...

    def list(self, path: str = "", **pairs: Any) -> Iterator[Object]:
        """List objects lazily, page by page.

        With ``list_mode="dir"`` (the default) yield the files and directories one
        level under ``path``; with ``list_mode="prefix"`` yield every object whose key
        starts with ``path``. Each object is yielded exactly once.
        """
        ...

    def read(self, path: str, **pairs: Any) -> bytes:
        """Read a whole object, or the range given by ``offset`` and ``size``."""
        ...

    def open_reader(self, path: str, **pairs: Any) -> BinaryIO:
        """Open an object for streaming: a seekable binary reader with ``readinto``."""
        ...

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        """Write an object whole, replacing any object at ``path``.

        ``data`` may be bytes, a binary file object or an iterable of bytes; it is
        streamed in chunks, so memory stays bounded whatever the object's size. When
        ``size`` is given the data must have exactly that length.
        """
        ...

    def stat(self, path: str, **pairs: Any) -> Object:
        """Return the object's metadata, or raise ``NotFoundError``."""
        ...

    def delete(self, path: str, **pairs: Any) -> None:
        """Delete an object; deleting a missing object succeeds."""
        ...

    def close(self) -> None:
        """Release connections and other resources; the store is unusable after."""
        ...

    def __enter__(self) -> Self:
        """Return the store, so ``with storager.open(url) as store:`` closes it after."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        self.close()


@runtime_checkable
class Copier(Protocol, metaclass=_CapabilityMeta):
    """A store that copies objects without the client moving the bytes when it can."""

    def copy(self, src: str, dst: str, **pairs: Any) -> None:
        """Copy ``src`` to ``dst``, replacing ``dst`` if it exists."""
        ...


@runtime_checkable
class Mover(Protocol, metaclass=_CapabilityMeta):
    """A store that moves (renames) objects."""

    def move(self, src: str, dst: str, **pairs: Any) -> None:
        """Move ``src`` to ``dst``, replacing ``dst``; ``src`` is gone afterwards."""
        ...


@runtime_checkable
class Segmenter(Protocol, metaclass=_CapabilityMeta):
    """A store that uploads one object in parts (multipart upload)."""

    def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        """Start a multipart upload of ``path``; nothing is visible until completed."""
        ...

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        """Upload part ``number`` (from 1); uploading a number again replaces it."""
        ...

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        """Join ``parts`` in order into the object, which becomes visible whole."""
        ...

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        """Abandon the upload and drop its parts; nothing is left behind."""
        ...

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]:
        """List the parts uploaded so far, by increasing number."""
        ...


@runtime_checkable
class Appender(Protocol, metaclass=_CapabilityMeta):
    """A store that appends to objects."""

    def append(self, path: str, data: WriteData, **pairs: Any) -> Object:
        """Append ``data`` to the object at ``path``, creating it when missing."""
        ...


@runtime_checkable
class Direr(Protocol, metaclass=_CapabilityMeta):
    """A store with directories that can be created explicitly."""

    def create_dir(self, path: str, **pairs: Any) -> Object:
        """Create the directory ``path`` (and its parents); existing is fine."""
        ...


@runtime_checkable
class Linker(Protocol, metaclass=_CapabilityMeta):
    """A store with symbolic links."""

    def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        """Create a link at ``path`` pointing to ``target`` (a path in the store)."""
        ...


@runtime_checkable
class Presigner(Protocol, metaclass=_CapabilityMeta):
    """A store that hands out signed URLs a plain HTTP client can use."""

    def presign_read(self, path: str, **pairs: Any) -> str:
        """Return a URL that GETs the object until ``expire`` seconds have passed."""
        ...

    def presign_write(self, path: str, **pairs: Any) -> str:
        """Return a URL that PUTs the object until ``expire`` seconds have passed."""
        ...


#: Every capability protocol by the name service.toml uses for it.
CAPABILITIES: dict[str, type] = {
    "Copier": Copier,
    "Mover": Mover,
    "Segmenter": Segmenter,
    "Appender": Appender,
    "Direr": Direr,
    "Linker": Linker,
    "Presigner": Presigner,
}
