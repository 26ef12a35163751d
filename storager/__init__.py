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
