"""storager: one small, typed interface for every storage service.

>>> import storager
>>> store = storager.open("memory://")
>>> store.write("hello.txt", b"hi").content_length
2
>>> store.read("hello.txt")
b'hi'
>>> isinstance(store, storager.Copier)
True
"""

from typing import TYPE_CHECKING

from storager._capability import Capability
from storager._errors import (
    AlreadyExistsError,
    CapabilityInsufficientError,
    ConnectionStringInvalidError,
    InsufficientStorageError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    OperationTimeoutError,
    OutcomeUnknownError,
    PairInvalidError,
    PairRequiredError,
    PairUnsupportedError,
    PathInvalidError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    ServiceInternalError,
    ServiceNotRegisteredError,
    StorageError,
    UnexpectedError,
)
from storager._object import Multipart, Object, ObjectMode, Part, StorageMeta
from storager._protocols import (
    Appender,
    Copier,
    Direr,
    IoCallback,
    Linker,
    Mover,
    Presigner,
    Segmenter,
    Storager,
    WriteData,
)
from storager._registry import open, register

if TYPE_CHECKING:
    from storager._async_protocols import (
        AsyncAppender,
        AsyncCopier,
        AsyncDirer,
        AsyncLinker,
        AsyncMover,
        AsyncPresigner,
        AsyncSegmenter,
        AsyncStorager,
    )
    from storager._async_types import AsyncReader, AsyncWriteData
    from storager.aio import open_async
    from storager.tree import load

__all__ = [
    "AlreadyExistsError",
    "Appender",
    "AsyncAppender",
    "AsyncCopier",
    "AsyncDirer",
    "AsyncLinker",
    "AsyncMover",
    "AsyncPresigner",
    "AsyncReader",
    "AsyncSegmenter",
    "AsyncStorager",
    "AsyncWriteData",
    "Capability",
    "CapabilityInsufficientError",
    "ConnectionStringInvalidError",
    "Copier",
    "Direr",
    "InsufficientStorageError",
    "InvalidArgumentError",
    "IoCallback",
    "Linker",
    "Mover",
    "Multipart",
    "NotFoundError",
    "Object",
    "ObjectMode",
    "ObjectModeInvalidError",
    "OperationTimeoutError",
    "OutcomeUnknownError",
    "PairInvalidError",
    "PairRequiredError",
    "PairUnsupportedError",
    "Part",
    "PathInvalidError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "Presigner",
    "RateLimitedError",
    "Segmenter",
    "ServiceInternalError",
    "ServiceNotRegisteredError",
    "StorageError",
    "StorageMeta",
    "Storager",
    "UnexpectedError",
    "WriteData",
    "load",
    "open",
    "open_async",
    "register",
]

__version__ = "0.1.0"

#: Public names whose modules load on first use: the async views (asyncio alone is a
#: fifth of ``import storager``) and the store trees (which load the combinators) cost
#: half of the import, and a script or the command line that never touches them should
#: not pay for them. ``from storager import open_async`` still works, through
#: ``__getattr__`` below; type checkers see the imports above.
_LAZY_MODULES = {
    "AsyncAppender": "storager._async_protocols",
    "AsyncCopier": "storager._async_protocols",
    "AsyncDirer": "storager._async_protocols",
    "AsyncLinker": "storager._async_protocols",
    "AsyncMover": "storager._async_protocols",
    "AsyncPresigner": "storager._async_protocols",
    "AsyncSegmenter": "storager._async_protocols",
    "AsyncStorager": "storager._async_protocols",
    "AsyncReader": "storager._async_types",
    "AsyncWriteData": "storager._async_types",
    "open_async": "storager.aio",
    "load": "storager.tree",
}

#: Subpackages that ``import storager`` used to load, still reachable as attributes
#: (``storager.aio.async_view`` after a plain ``import storager``).
_LAZY_SUBPACKAGES = frozenset({"aio", "combinators", "tree"})


def __getattr__(name: str) -> object:
    """Import a lazily loaded public name on first use and keep it in the module."""
    import importlib

    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f"storager.{name}")
    module_name = _LAZY_MODULES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'storager' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_MODULES, *_LAZY_SUBPACKAGES})
